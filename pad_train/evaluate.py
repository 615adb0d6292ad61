"""Evaluate a student by running what it writes.

For each question of a dataset in the store: write a program, execute it in pad's sandbox
and score it against the gold answer with pad's labels. Decoding (``decode``):

- ``greedy``; ``sample`` (K samples with temperature and a majority vote over the executed
  answers, i.e. self-consistency, when ``samples`` > 1);
- ``stepwise``: step-wise verified beam search (:mod:`pad_train.stepwise`).

``refine_rounds`` R > 0 adds the paper's iterative self-refinement: a program that raised,
did not compile, returned nothing or returned a non-number for a numeric question goes
back to the student with its execution feedback (the refinement prompt it was trained on
with ``sft --task refine``), up to R times. The gold answer is never used to decide.

Every student program is written back to the store (origin ``student``, teacher = the
model, ``eval_run_id``, ``refine_round`` and a parent link to the program it fixes), with
its execution and label, so the review app and SQL show the student's errors exactly like a
teacher's. ``eval_runs`` keeps accuracy (after the last round), the accuracy after each
round, and programs/s per model/dataset/settings.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable

import pandas as pd

from pad_data.results import result_row, results_frame
from pad_data.extract import extract_program
from pad_data.feedback import feedback
from pad_data.labels import label_for, numbers_match, parse_number
from pad_data.sandbox.pool import SandboxPool
from pad_data.store import Store, content_id

from .data import answer_prompt_for, cot_prompt_for, prompt_for, refine_prompt_for
from .sft import load_model

_ANSWER = re.compile(r"answer is\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
DECODES = ("auto", "greedy", "sample", "stepwise")


def cot_answer(text: str) -> float | None:
    """The final answer of a rationale: "... The answer is 42." (else the last number in it)."""
    m = _ANSWER.findall(text) or re.findall(r"-?[\d,]*\.?\d+", text)
    return parse_number(m[-1]) if m else None


def cot_answer_text(text: str) -> str | None:
    """The final text answer of a rationale (coin flip, last letters): "... The answer is nk." -> "nk"."""
    m = re.findall(r"answer is\s*(.*)", text, re.IGNORECASE)
    if not m:
        return None
    answer = m[-1].strip().rstrip(".").strip().strip("\"'").strip()
    return answer or None


@dataclass
class EvalConfig:
    cot: bool = False  # the chain-of-thought baseline: score the final answer of a rationale
    answer_only: bool = False  # the answer-only baseline: score "The answer is X" written straight away
    samples: int = 1
    temperature: float = 0.0
    batch_size: int = 16
    max_new_tokens: int = 256
    timeout: float = 2.0
    memory_mb: int = 512
    limit: int | None = None
    decode: str = "auto"  # auto: greedy, or sample when samples > 1 or temperature > 0
    beams: int = 4  # stepwise
    candidates: int = 4  # stepwise
    verifier: str | None = None  # stepwise: a `pad-train verifier` model directory
    verifier_weight: float = 0.5
    exec_penalty: float = 10.0  # stepwise: subtracted per step whose check failed
    refine_rounds: int = 0

    def decode_name(self) -> str:
        if self.cot or self.answer_only:
            return ("cot" if self.cot else "answer-only") + ("-self-consistency" if self.samples > 1 else "")
        if self.decode == "stepwise":
            return f"stepwise(B={self.beams},C={self.candidates}{',verifier' if self.verifier else ''})"
        if self.decode == "greedy" or (self.decode == "auto" and self.samples == 1 and self.temperature == 0):
            return "greedy"
        return "self-consistency" if self.samples > 1 else "sampling"


def generate_texts(model, tok, seq2seq: bool, prompts: list[str], cfg: EvalConfig, samples: int = 1,
                   sample: bool = False, progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """``samples`` completions per prompt, batched, left-padded for causal LMs."""
    import torch

    device = next(model.parameters()).device
    tok.padding_side = "left" if not seq2seq else "right"
    out: list[list[str]] = []
    window = None if seq2seq else getattr(model.config, "max_position_embeddings", None)
    if window is not None and window <= cfg.max_new_tokens:
        raise ValueError(f"--max-new-tokens {cfg.max_new_tokens} does not fit the model's {window} positions")
    tok.truncation_side = "left"  # a prompt too long for the window keeps its end
    for k in range(0, len(prompts), cfg.batch_size):
        enc = tok(prompts[k:k + cfg.batch_size], return_tensors="pt", padding=True, add_special_tokens=seq2seq,
                  truncation=window is not None, max_length=window - cfg.max_new_tokens if window else None).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=sample,
                                 temperature=cfg.temperature if sample else None, top_p=None, top_k=None,
                                 num_return_sequences=samples, pad_token_id=tok.pad_token_id)
        new = gen if seq2seq else gen[:, enc["input_ids"].shape[1]:]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        out += [texts[i:i + samples] for i in range(0, len(texts), samples)]
        if progress:
            progress(len(out), len(prompts))
    return out


def generate_programs(model, tok, seq2seq: bool, questions: list[str], cfg: EvalConfig,
                      progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """``samples`` completions per question (a program, a rationale with ``cot``, an answer with ``answer_only``)."""
    make_prompt = cot_prompt_for if cfg.cot else answer_prompt_for if cfg.answer_only else prompt_for
    sample = cfg.decode == "sample" or (cfg.decode == "auto" and (cfg.samples > 1 or cfg.temperature > 0))
    return generate_texts(model, tok, seq2seq, [make_prompt(q) for q in questions], cfg, cfg.samples, sample,
                          progress)


def _vote(labels_values: list[tuple[str, object]]) -> int:
    """Index of the sample whose answer most samples agree on (errors never win a vote)."""
    answers = [(str(v) if v is not None else None) for _, v in labels_values]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return 0
    best = counts.most_common(1)[0][0]
    return answers.index(best)


def _needs_fix(execution: dict) -> bool:
    """Refine when running it said so: an error, no answer, or a non-number for a numeric question."""
    return execution["status"] != "ok" or execution["label"] == "non_numeric"


def _accuracy(chains: dict[tuple[str, int], list[dict]], upto: int, vote: bool) -> tuple[int, int]:
    """``(correct, questions)`` using each chain's latest program at or before round ``upto``."""
    by_problem: dict[str, list] = {}
    for (pid, i), steps in chains.items():
        last = [s for s in steps if s["round"] <= upto][-1]["execution"]
        by_problem.setdefault(pid, []).append((i, last["label"], last["value"] if last["status"] == "ok" else None))
    correct = 0
    for samples in by_problem.values():
        samples.sort()
        chosen = samples[_vote([(lab, val) for _, lab, val in samples])] if vote else samples[0]
        correct += chosen[1] == "correct"
    return correct, len(by_problem)


def _check_config(cfg: EvalConfig, seq2seq: bool) -> None:
    if cfg.decode not in DECODES:
        raise ValueError(f"unknown --decode {cfg.decode!r}; choose from {', '.join(DECODES)}")
    if cfg.refine_rounds < 0:
        raise ValueError("--refine-rounds must be >= 0")
    if cfg.cot and cfg.answer_only:
        raise ValueError("choose one of --cot and --answer-only")
    if (cfg.cot or cfg.answer_only) and (cfg.decode == "stepwise" or cfg.refine_rounds):
        raise ValueError(f"{'--cot' if cfg.cot else '--answer-only'} scores answers written as text: it does not "
                         "combine with --decode stepwise or --refine-rounds")
    if cfg.decode == "stepwise":
        if seq2seq:
            raise ValueError("--decode stepwise needs a causal LM (this model is seq2seq)")
        if cfg.samples > 1:
            raise ValueError("--decode stepwise returns one program per question: use --beams, not --samples")
        if cfg.beams < 1 or cfg.candidates < 1:
            raise ValueError("--beams and --candidates must be >= 1")
    elif cfg.verifier:
        raise ValueError("--verifier scores the steps of --decode stepwise")


def evaluate(store: Store, model_dir: str, dataset: str, split: str = "test", cfg: EvalConfig | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate, execute, (refine,) score; store the programs and an ``eval_runs`` row; return the summary."""
    import torch

    cfg = cfg or EvalConfig()
    rows = store.df("SELECT problem_id, question, answer, answer_text FROM problems WHERE dataset = ? AND split = ? "
                    "ORDER BY problem_id" + (f" LIMIT {int(cfg.limit)}" if cfg.limit else ""), [dataset, split])
    if rows.empty:
        raise ValueError(f"no problems in {dataset}/{split}; ingest them first")
    model, tok, seq2seq = load_model(model_dir)
    _check_config(cfg, seq2seq)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    run_id = uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    if cfg.cot or cfg.answer_only:
        completions = generate_programs(model, tok, seq2seq, rows.question.tolist(), cfg, progress)
        return _score_cot(store, model_dir, dataset, split, rows, completions, cfg, run_id, time.perf_counter() - t0)
    problems = {r.problem_id: r for r in rows.itertuples(index=False)}
    chains: dict[tuple[str, int], list[dict]] = {}
    with SandboxPool(workers=2, timeout=cfg.timeout, memory_mb=cfg.memory_mb) as pool:
        executor = pool.executor_version

        def run(items: list[tuple[str, int, int, str, str | None]]) -> None:
            """Execute ``(problem_id, sample, round, completion, parent)`` items and append them to their chains."""
            now = pd.Timestamp.now()
            progs = {}
            for pid, i, rnd, text, parent in items:
                code = extract_program(text)
                key = (pid, "student", model_dir, run_id, i) + ((rnd,) if rnd else ()) + (code,)
                progs[content_id("program", *key)] = (pid, i, rnd, text, code, parent)
            results = dict(pool.map((k, v[4]) for k, v in progs.items()))
            for prog_id, (pid, i, rnd, text, code, parent) in progs.items():
                gold = problems[pid].answer
                execution = result_row(prog_id, results[prog_id], None if pd.isna(gold) else float(gold),
                                       problems[pid].answer_text, cfg.timeout, cfg.memory_mb, executor, now)
                chains.setdefault((pid, i), []).append({
                    "round": rnd, "execution": execution,
                    "program": {"program_id": prog_id, "problem_id": pid, "origin": "student", "teacher": model_dir,
                                "sample_idx": i, "program": code, "completion": text, "eval_run_id": run_id,
                                "parent_program_id": parent, "refine_round": rnd}})

        if cfg.decode == "stepwise":
            from .stepwise import StepwiseConfig, StepwiseSearch

            from .verifier import Verifier

            search = StepwiseSearch(model, tok, StepwiseConfig(beams=cfg.beams, candidates=cfg.candidates,
                                                               temperature=cfg.temperature or 0.8,
                                                               max_line_tokens=min(64, cfg.max_new_tokens),
                                                               exec_penalty=cfg.exec_penalty,
                                                               w_verifier=cfg.verifier_weight),
                                    pool, Verifier(cfg.verifier) if cfg.verifier else None)
            first = []
            for n, q in enumerate(rows.question, 1):
                first.append([search.search(q).text])
                if progress:
                    progress(n, len(rows))
        else:
            first = generate_programs(model, tok, seq2seq, rows.question.tolist(), cfg, progress)
        run([(pid, i, 0, text, None) for pid, texts in zip(rows.problem_id, first) for i, text in enumerate(texts)])
        for rnd in range(1, cfg.refine_rounds + 1):
            todo = [(key, steps[-1]) for key, steps in chains.items() if _needs_fix(steps[-1]["execution"])]
            if not todo:
                break
            prompts = [refine_prompt_for(problems[pid].question, last["program"]["program"],
                                         feedback(last["execution"]["status"], last["execution"]["value"],
                                                  last["execution"]["error_type"], last["execution"]["error_message"],
                                                  last["execution"]["error_line"], cfg.timeout))
                       for (pid, _), last in todo]
            fixes = generate_texts(model, tok, seq2seq, prompts, cfg)
            run([(pid, i, rnd, texts[0], last["program"]["program_id"]) for ((pid, i), last), texts in zip(todo, fixes)])
    seconds = time.perf_counter() - t0
    vote = cfg.samples > 1
    by_round = [_accuracy(chains, r, vote) for r in range(cfg.refine_rounds + 1)]
    correct, n = by_round[-1]
    accuracy = correct / n
    steps = [s for chain in chains.values() for s in chain]
    settings = {**asdict(cfg), "decode": cfg.decode_name()}
    pps = len(steps) / seconds if seconds > 0 else 0.0
    with store.transaction():
        store.insert_new("programs", pd.DataFrame([s["program"] for s in steps]), "program_id")
        store.add_executions(results_frame([s["execution"] for s in steps]))
        store.con.execute("INSERT INTO eval_runs (run_id, model, dataset, split, questions, correct, accuracy, "
                          "settings, programs_per_s, accuracy_by_round) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [run_id, model_dir, dataset, split, n, correct, accuracy, json.dumps(settings), pps,
                           json.dumps([c / q for c, q in by_round])])
    labels = Counter(s["execution"]["label"] for s in steps if s["round"] == 0)
    return {"run_id": run_id, "questions": n, "correct": correct, "accuracy": accuracy, "labels": dict(labels),
            "accuracy_by_round": [c / q for c, q in by_round], "programs": len(steps), "seconds": seconds,
            "programs_per_s": pps, "settings": settings}


def _score_cot(store: Store, model_dir: str, dataset: str, split: str, rows: pd.DataFrame,
               completions: list[list[str]], cfg: EvalConfig, run_id: str, gen_s: float) -> dict:
    """Score the CoT (or answer-only) baseline: the final answer of each rationale against the gold answer.

    Numeric golds: "The answer is X" (else the last number), PAL's rule. Text golds (coin flip,
    last letters): the text after the last "answer is", compared as pad's labels compare a
    program's text answer (case-insensitive, trimmed)."""
    correct = 0
    for (_, _, gold, gold_text), texts in zip(rows.itertuples(index=False), completions):
        numeric = not pd.isna(gold)
        if numeric:
            answers = [cot_answer(t) for t in texts]
        else:
            answers = [cot_answer_text(t) for t in texts]
            answers = [a.lower() if a is not None else None for a in answers]
        votes = Counter(a for a in answers if a is not None)
        answer = votes.most_common(1)[0][0] if votes else None
        if answer is None:
            continue
        if numeric:
            correct += numbers_match(answer, float(gold))
        elif isinstance(gold_text, str) and gold_text.strip():
            correct += label_for("ok", "str", answer, None, gold_text)[0] == "correct"
    n = len(rows)
    settings = {**asdict(cfg), "decode": cfg.decode_name()}
    with store.transaction():
        store.con.execute("INSERT INTO eval_runs (run_id, model, dataset, split, questions, correct, accuracy, "
                          "settings, programs_per_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [run_id, model_dir, dataset, split, n, correct, correct / n, json.dumps(settings),
                           n * cfg.samples / gen_s if gen_s else 0.0])
    return {"run_id": run_id, "questions": n, "correct": correct, "accuracy": correct / n, "labels": {},
            "generate_s": gen_s, "execute_s": 0.0, "programs_per_s": n * cfg.samples / gen_s if gen_s else 0.0,
            "settings": settings}


def report(store: Store) -> pd.DataFrame:
    """Every eval run, best first per dataset, with its decoding settings."""
    df = store.df("SELECT model, dataset, split, settings, questions, correct, round(100 * accuracy, 1) "
                  "AS accuracy_pct, accuracy_by_round, round(programs_per_s, 1) AS programs_per_s, created_at, run_id "
                  "FROM eval_runs ORDER BY dataset, accuracy DESC, created_at")
    settings = [json.loads(s) for s in df.pop("settings")]
    df.insert(3, "decode", [s.get("decode") for s in settings])
    df.insert(4, "samples", [s.get("samples") for s in settings])
    df.insert(5, "refine_rounds", [s.get("refine_rounds", 0) for s in settings])
    # accuracy after each self-refinement round: "40.0 -> 55.0 -> 60.0"
    df["accuracy_by_round"] = [" -> ".join(f"{100 * a:.1f}" for a in json.loads(r)) if isinstance(r, str) else ""
                               for r in df["accuracy_by_round"]]
    return df
