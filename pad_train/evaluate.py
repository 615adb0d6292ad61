"""Evaluate a student by running what it writes.

For each question of a dataset in the store: generate a program (greedy, or K samples with
temperature and a majority vote over the executed answers, i.e. self-consistency), execute
it in pad's sandbox, and score it against the gold answer with pad's labels. Every student
program is written back to the store (origin ``student``, teacher = the model, with its
execution and label, and ``eval_run_id``), so the review app and SQL show the student's
errors exactly like a teacher's. ``eval_runs`` keeps accuracy per model/dataset/settings.
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

from pad_data.execute import insert_executions, result_row
from pad_data.extract import extract_program
from pad_data.labels import numbers_match, parse_number
from pad_data.sandbox.pool import SandboxPool
from pad_data.store import Store, content_id

from .data import cot_prompt_for, prompt_for

_ANSWER = re.compile(r"answer is\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)


def cot_answer(text: str) -> float | None:
    """The final answer of a rationale: "... The answer is 42." (else the last number in it)."""
    m = _ANSWER.findall(text) or re.findall(r"-?[\d,]*\.?\d+", text)
    return parse_number(m[-1]) if m else None
from .sft import load_model


@dataclass
class EvalConfig:
    cot: bool = False  # the chain-of-thought baseline: score the final answer of a rationale
    samples: int = 1
    temperature: float = 0.0
    batch_size: int = 16
    max_new_tokens: int = 256
    timeout: float = 2.0
    memory_mb: int = 512
    limit: int | None = None


def generate_programs(model, tok, seq2seq: bool, questions: list[str], cfg: EvalConfig,
                      progress: Callable[[int, int], None] | None = None) -> list[list[str]]:
    """``samples`` completions per question, batched, left-padded for causal LMs."""
    import torch

    device = next(model.parameters()).device
    tok.padding_side = "left" if not seq2seq else "right"
    out: list[list[str]] = []
    sample = cfg.samples > 1 or cfg.temperature > 0
    make_prompt = cot_prompt_for if cfg.cot else prompt_for
    window = None if seq2seq else getattr(model.config, "max_position_embeddings", None)
    if window is not None and window <= cfg.max_new_tokens:
        raise ValueError(f"--max-new-tokens {cfg.max_new_tokens} does not fit the model's {window} positions")
    tok.truncation_side = "left"  # a prompt too long for the window keeps its end (the question)
    for k in range(0, len(questions), cfg.batch_size):
        prompts = [make_prompt(q) for q in questions[k:k + cfg.batch_size]]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=seq2seq,
                  truncation=window is not None, max_length=window - cfg.max_new_tokens if window else None).to(device)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=cfg.max_new_tokens, do_sample=sample,
                                 temperature=cfg.temperature if sample else None, top_p=None, top_k=None,
                                 num_return_sequences=cfg.samples, pad_token_id=tok.pad_token_id)
        new = gen if seq2seq else gen[:, enc["input_ids"].shape[1]:]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        out += [texts[i:i + cfg.samples] for i in range(0, len(texts), cfg.samples)]
        if progress:
            progress(len(out), len(questions))
    return out


def _vote(labels_values: list[tuple[str, object]]) -> int:
    """Index of the sample whose answer most samples agree on (errors never win a vote)."""
    answers = [(str(v) if v is not None else None) for _, v in labels_values]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return 0
    best = counts.most_common(1)[0][0]
    return answers.index(best)


def evaluate(store: Store, model_dir: str, dataset: str, split: str = "test", cfg: EvalConfig | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate, execute, score; store the programs and an ``eval_runs`` row; return the summary."""
    import torch

    cfg = cfg or EvalConfig()
    rows = store.df("SELECT problem_id, question, answer, answer_text FROM problems WHERE dataset = ? AND split = ? "
                    "ORDER BY problem_id" + (f" LIMIT {int(cfg.limit)}" if cfg.limit else ""), [dataset, split])
    if rows.empty:
        raise ValueError(f"no problems in {dataset}/{split}; ingest them first")
    model, tok, seq2seq = load_model(model_dir)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    run_id = uuid.uuid4().hex[:12]
    t0 = time.perf_counter()
    completions = generate_programs(model, tok, seq2seq, rows.question.tolist(), cfg, progress)
    gen_s = time.perf_counter() - t0
    if cfg.cot:
        return _score_cot(store, model_dir, dataset, split, rows, completions, cfg, run_id, gen_s)
    items, meta = [], {}
    for (pid, q, gold, gold_text), texts in zip(rows.itertuples(index=False), completions):
        for i, text in enumerate(texts):
            code = extract_program(text)
            prog_id = content_id("program", pid, "student", model_dir, run_id, i, code)
            items.append((prog_id, code))
            meta[prog_id] = (pid, i, text, code, None if pd.isna(gold) else float(gold), gold_text)
    t1 = time.perf_counter()
    with SandboxPool(workers=2, timeout=cfg.timeout, memory_mb=cfg.memory_mb) as pool:
        results = dict(pool.map(items))
        executor = pool.executor_version
    exec_s = time.perf_counter() - t1
    now = pd.Timestamp.now()
    programs, executions = [], []
    by_problem: dict[str, list] = {}
    for prog_id, (pid, i, text, code, gold, gold_text) in meta.items():
        row = result_row(prog_id, results[prog_id], gold, gold_text, cfg.timeout, cfg.memory_mb, executor, now)
        executions.append(row)
        programs.append({"program_id": prog_id, "problem_id": pid, "origin": "student", "teacher": model_dir,
                         "sample_idx": i, "program": code, "completion": text, "eval_run_id": run_id})
        by_problem.setdefault(pid, []).append((i, row["label"], row["value"] if row["status"] == "ok" else None))
    correct = 0
    for pid, samples in by_problem.items():
        samples.sort()
        chosen = samples[_vote([(lab, val) for _, lab, val in samples])] if cfg.samples > 1 else samples[0]
        correct += chosen[1] == "correct"
    n = len(by_problem)
    accuracy = correct / n
    settings = {**asdict(cfg), "decode": "greedy" if cfg.samples == 1 and cfg.temperature == 0 else
                ("self-consistency" if cfg.samples > 1 else "sampling")}
    pps = len(items) / (gen_s + exec_s) if gen_s + exec_s > 0 else 0.0
    with store.transaction():
        store.insert_new("programs", pd.DataFrame(programs), "program_id")
        insert_executions(store, executions)
        store.con.execute("INSERT INTO eval_runs (run_id, model, dataset, split, questions, correct, accuracy, "
                          "settings, programs_per_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [run_id, model_dir, dataset, split, n, correct, accuracy, json.dumps(settings), pps])
    labels = Counter(r["label"] for r in executions)
    return {"run_id": run_id, "questions": n, "correct": correct, "accuracy": accuracy, "labels": dict(labels),
            "generate_s": gen_s, "execute_s": exec_s, "programs_per_s": pps, "settings": settings}


def _score_cot(store: Store, model_dir: str, dataset: str, split: str, rows: pd.DataFrame,
               completions: list[list[str]], cfg: EvalConfig, run_id: str, gen_s: float) -> dict:
    """Score the CoT baseline: the final number of each rationale against the gold answer."""
    correct = 0
    for (_, _, gold, _), texts in zip(rows.itertuples(index=False), completions):
        answers = [cot_answer(t) for t in texts]
        votes = Counter(a for a in answers if a is not None)
        answer = votes.most_common(1)[0][0] if votes else None
        correct += answer is not None and not pd.isna(gold) and numbers_match(answer, float(gold))
    n = len(rows)
    settings = {**asdict(cfg), "decode": "cot" + ("-self-consistency" if cfg.samples > 1 else "")}
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
                  "AS accuracy_pct, round(programs_per_s, 1) AS programs_per_s, created_at, run_id "
                  "FROM eval_runs ORDER BY dataset, accuracy DESC, created_at")
    settings = [json.loads(s) for s in df.pop("settings")]
    df.insert(3, "decode", [s.get("decode") for s in settings])
    df.insert(4, "samples", [s.get("samples") for s in settings])
    return df
