"""A step verifier: a small classifier that says whether a program prefix is still on a correct path.

Trained on labeled programs from the store (``pad-train verifier``), and used as the third,
optional term of step-wise search (``pad-train eval --decode stepwise --verifier DIR``).
Examples are ``prompt_for(question) + the first k lines`` of a program, labeled:

- 1 (a correct step): every prefix of a program labeled ``correct``;
- 0 (a faulty step): for an injected program, every prefix from the first line where it
  differs from its correct parent; for a program that raised or did not compile at line L,
  every prefix that reaches line L; for any other faulty program (a wrong answer with no
  known faulty line), the whole program.
A prefix that is both (shared by a correct and a faulty program) is a correct step.
Prefixes of faulty programs before their faulty line are left out: nothing says whether
they were right. The model is any Hugging Face model with a sequence-classification head
(``AutoModelForSequenceClassification``, 2 labels), trained with a plain loop like ``sft``.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from pad_data.store import Store

from pad_train.data import prompt_for


@dataclass
class VerifierConfig:
    epochs: float = 2.0
    lr: float = 5e-5
    batch_size: int = 16
    max_length: int = 512
    seed: int = 0
    limit: int | None = None  # at most N programs from the store


def _prefixes(program: str) -> list[str]:
    lines = program.rstrip("\n").split("\n")
    return ["\n".join(lines[:k]) + "\n" for k in range(1, len(lines) + 1)]


def step_examples(store: Store, dataset: str | None = None, limit: int | None = None) -> list[tuple[str, int]]:
    """``(prompt + prefix, label)`` pairs from the store's labeled programs (see module docstring)."""
    where, params = ["lp.label IS NOT NULL", "lp.label <> 'unverifiable'", "lp.origin <> 'student'"], []
    if dataset:
        where.append("lp.dataset = ?")
        params.append(dataset)
    rows = store.df(f"""SELECT lp.question, lp.program, lp.label, lp.error_line, lp.status, par.program AS parent
                        FROM labeled_programs lp LEFT JOIN programs par ON par.program_id = lp.parent_program_id
                        WHERE {' AND '.join(where)} ORDER BY lp.program_id"""
                    + (f" LIMIT {int(limit)}" if limit else ""), params)
    labels: dict[str, int] = {}
    for r in rows.itertuples(index=False):
        head, prefixes = prompt_for(r.question), _prefixes(r.program)
        if r.label == "correct":
            faulty_from = None
        elif isinstance(r.parent, str):
            theirs = r.parent.rstrip("\n").split("\n")
            mine = r.program.rstrip("\n").split("\n")
            faulty_from = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
        elif r.status in ("runtime_error", "syntax_error") and pd.notna(r.error_line) and r.error_line:
            faulty_from = min(int(r.error_line), len(prefixes)) - 1
        else:
            faulty_from = len(prefixes) - 1
        for k, prefix in enumerate(prefixes):
            text = head + prefix
            if faulty_from is None:
                labels[text] = 1
            elif k >= faulty_from:
                labels[text] = max(labels.get(text, 0), 0)
    return sorted(labels.items())


def train_verifier(base_model: str, examples: list[tuple[str, int]], out: str | Path,
                   cfg: VerifierConfig | None = None) -> dict:
    """Fine-tune ``base_model`` with a 2-label classification head on ``examples``; save to ``out``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    cfg = cfg or VerifierConfig()
    if len({y for _, y in examples}) < 2:
        raise ValueError("the verifier needs correct and faulty steps: run `pad execute` (and `pad inject-errors`)")
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(base_model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the new classification head is "missing" from the base: expected
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base_model, num_labels=2)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tok.pad_token_id
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    tok.truncation_side = "left"  # keep the newest step
    data = list(examples)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total))
    losses, t0, step, order = [], time.perf_counter(), 0, []
    while step < total:
        if not order:
            order = list(range(len(data)))
            rng.shuffle(order)
        batch = [data[order.pop()] for _ in range(min(cfg.batch_size, len(order)))]
        enc = tok([t for t, _ in batch], return_tensors="pt", padding=True, truncation=True,
                  max_length=cfg.max_length).to(device)
        loss = model(**enc, labels=torch.tensor([y for _, y in batch], device=device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    positives = sum(y for _, y in data)
    (out / "pad_verifier.json").write_text(json.dumps({"base_model": base_model, "config": asdict(cfg),
                                                       "examples": len(data), "correct_steps": positives}, indent=2))
    return {"steps": step, "examples": len(data), "correct_steps": positives, "first_loss": losses[0],
            "last_loss": sum(losses[-10:]) / len(losses[-10:]), "seconds": time.perf_counter() - t0, "out": str(out)}


class Verifier:
    """A trained step verifier: ``score(texts)`` = log P(correct step) for each prompt + prefix."""

    def __init__(self, path: str | Path, max_length: int = 512):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self.tok = AutoTokenizer.from_pretrained(str(path))
            self.model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot load verifier {str(path)!r}: {str(exc).splitlines()[0]}") from None
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.truncation_side = "left"
        self.model.to("cuda" if torch.cuda.is_available() else "cpu")
        self.max_length = max_length

    def score(self, texts: list[str]) -> list[float]:
        import torch

        enc = self.tok(texts, return_tensors="pt", padding=True, truncation=True,
                       max_length=self.max_length).to(self.model.device)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(**enc).logits.float(), dim=-1)[:, 1]
        return logp.tolist()
