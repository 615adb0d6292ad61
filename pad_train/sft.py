"""Supervised fine-tuning: question -> program (or -> rationale for the CoT baseline).

A plain PyTorch loop rather than ``transformers.Trainer``: the data is small and the work
simple, and a visible loop makes the two things that matter explicit: causal LMs learn only
the target (prompt tokens get label -100), and batches are bucketed by length (sorted into
batches of similar length, batches shuffled) so little compute goes to padding. Both causal
LMs (GPT-2, Qwen, ...) and seq2seq models (CodeT5, T5) work.

Checkpoints: ``OUT/checkpoint-<step>`` (model, tokenizer, optimizer, scheduler, RNG state);
``resume=True`` continues from the latest one (none is an error). The final model is saved in
``OUT``. Logs (loss, lr, tokens/s) go to ``OUT/train_log.jsonl`` and the progress bar; the summary
counts the examples ``max_length`` cut. A model name that is neither a local directory nor in
the Hugging Face cache fails at once when the Hub is out of reach (:mod:`pad_train.runs`).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pad_train.data import Example
from pad_train.runs import check_model_source, resume_point


@dataclass
class SFTConfig:
    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 8
    max_length: int = 512
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    bf16: bool = False
    seed: int = 0
    save_every: int = 0  # steps; 0 = at the end of each epoch
    log_every: int = 10


def load_model(name: str):
    """``(model, tokenizer, is_seq2seq)`` for a local directory or a Hub name."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # pad-train shows its own progress
    check_model_source(name)
    try:
        config = AutoConfig.from_pretrained(name)
        tok = AutoTokenizer.from_pretrained(name)
        seq2seq = bool(config.is_encoder_decoder)
        model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, seq2seq


def encode(examples: list[Example], tok, seq2seq: bool, max_length: int) -> tuple[list[dict], int]:
    """Token ids and labels of each example, and how many examples ``max_length`` cut."""
    out, cut = [], 0
    eos = tok.eos_token or ""
    for ex in examples:
        if seq2seq:
            src, tgt = tok(ex.prompt)["input_ids"], tok(ex.target)["input_ids"]
            if len(src) > max_length or len(tgt) > max_length:  # cut as the tokenizer cuts (its end token kept)
                cut += 1
                src = tok(ex.prompt, truncation=True, max_length=max_length)["input_ids"]
                tgt = tok(ex.target, truncation=True, max_length=max_length)["input_ids"]
            out.append({"input_ids": src, "labels": tgt})
        else:
            p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
            t = tok(ex.target + eos, add_special_tokens=False)["input_ids"]
            if len(p) + len(t) > max_length:
                cut += 1
                # too long: keep the end of the prompt (at most half the window) and cut the
                # target, so every example still has something to learn (no all -100 labels)
                t = t[:max_length - min(len(p), max_length // 2)]
                p = p[len(p) - (max_length - len(t)):]
            ids = p + t
            labels = [-100] * len(p) + t  # the prompt is context, not a target
            out.append({"input_ids": ids, "labels": labels})
    return out, cut


def buckets(items: list[dict], batch_size: int, rng: random.Random) -> list[list[dict]]:
    """Batches of similar length, in shuffled order."""
    order = sorted(range(len(items)), key=lambda i: (len(items[i]["input_ids"]), rng.random()))
    batches = [[items[i] for i in order[k:k + batch_size]] for k in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[dict], pad_id: int, seq2seq: bool):
    import torch

    def pad(seqs, value):
        n = max(len(s) for s in seqs)
        return torch.tensor([s + [value] * (n - len(s)) for s in seqs])

    ids = pad([b["input_ids"] for b in batch], pad_id)
    labels = pad([b["labels"] for b in batch], -100)
    attn = pad([[1] * len(b["input_ids"]) for b in batch], 0)
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def train(model_name: str, examples: list[Example], out: str | Path, cfg: SFTConfig,
          resume: bool = False, progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Fine-tune ``model_name`` on ``examples``; returns a summary (steps, losses, tokens/s)."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    resumed = resume_point(out, resume)  # --resume with no checkpoint is an error, not a fresh start
    start_from = Path(resumed) if resumed else None
    model, tok, seq2seq = load_model(str(start_from or model_name))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    data, truncated = encode(examples, tok, seq2seq, cfg.max_length)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) * max(0.0, (total - s) / max(1, total - warmup))
        if s >= warmup else (s + 1) / max(1, warmup))
    step = 0
    if start_from is not None:
        state = torch.load(start_from / "trainer_state.pt", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = state["step"]
        rng.setstate(state["rng"])
    use_bf16 = cfg.bf16 and (device == "cuda" and torch.cuda.is_bf16_supported() or device == "cpu")
    log_path = out / "train_log.jsonl"
    losses: list[float] = []
    tokens = 0
    t0 = time.perf_counter()
    epoch_batches: list = []
    with open(log_path, "a") as log:
        while step < total:
            if not epoch_batches:
                epoch_batches = buckets(data, cfg.batch_size, rng)
                # when resuming mid-epoch, skip the batches already seen
                epoch_batches = epoch_batches[step % steps_per_epoch:] if step % steps_per_epoch else epoch_batches
            batch = collate(epoch_batches.pop(0), tok.pad_token_id, seq2seq)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            tokens += int(batch["attention_mask"].sum())
            logged = step % cfg.log_every == 0 or step == total
            if logged or progress:  # every step to progress (it decides what to show), every log_every to the log
                rate = tokens / (time.perf_counter() - t0)
                rec = {"step": step, "loss": sum(losses[-cfg.log_every:]) / len(losses[-cfg.log_every:]),
                       "lr": sched.get_last_lr()[0], "tokens_per_s": rate, "epoch": step / steps_per_epoch}
                if logged:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                if progress:
                    progress(step, total, rec)
            at_epoch_end = step % steps_per_epoch == 0
            if (cfg.save_every and step % cfg.save_every == 0) or (not cfg.save_every and at_epoch_end):
                _save_checkpoint(out / f"checkpoint-{step}", model, tok, opt, sched, step, rng)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "pad_train.json").write_text(json.dumps({"base_model": model_name, "config": asdict(cfg),
                                                   "examples": len(examples), "seq2seq": seq2seq}, indent=2))
    seconds = time.perf_counter() - t0
    return {"steps": step, "truncated": truncated, "first_loss": losses[0] if losses else None,
            "last_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None,
            "tokens_per_s": tokens / seconds if seconds else 0.0, "seconds": seconds, "out": str(out)}


def _save_checkpoint(path: Path, model, tok, opt, sched, step: int, rng: random.Random) -> None:
    import torch

    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                "rng": rng.getstate()}, path / "trainer_state.pt")
