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

Evaluation commits as it goes: each batch of problems is stored with its programs, executions
and per-problem result (``eval_items``), and a rerun of the same evaluation (same model files,
data and settings) after a crash, Ctrl-C or kill evaluates only the problems still missing.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from pad_data.rules.answers import cot_answer, cot_answer_text
from pad_data.rules.extract import extract_program
from pad_data.rules.labels import label_for, numbers_match
from pad_data.rules.majority import Answer, majority
from pad_data.stages.feedback import feedback
from pad_data.stages.results import result_row, results_frame
from pad_data.sandbox.pool import SandboxPool
from pad_data.store import Store, content_id
from pad_data.store.ids import student_program_id

from pad_train.data import answer_prompt_for, cot_prompt_for, prompt_for, refine_prompt_for
from pad_train.runs import load_model

DECODES = ("auto", "greedy", "sample", "stepwise")


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


def _answer(execution: dict) -> Answer | None:
    """A sample's answer as votes count it: its number, else its value's text; None when it failed."""
    if execution["status"] != "ok":
        return None
    return execution["value_num"] if execution["value_num"] is not None else execution["value"]


def _vote(answers: list[Answer | None]) -> int:
    """Index of the sample whose answer most samples agree on, by the one majority rule (a tie goes
    to the answer given first; failures never win a vote)."""
    result = majority([a for a in answers if a is not None], ties="first")
    return 0 if result is None else answers.index(result[0])


def _needs_fix(execution: dict) -> bool:
    """Refine when running it said so: an error, no answer, or a non-number for a numeric question."""
    return execution["status"] != "ok" or execution["label"] == "non_numeric"


def _correct_by_round(chains: dict[int, list[dict]], rounds: int, vote: bool) -> list[bool]:
    """Whether one problem is answered correctly after each round ``0..rounds``, from its
    samples' chains (each sample's latest program at or before the round; a vote when ``vote``)."""
    out = []
    for upto in range(rounds + 1):
        last = [[s for s in chains[i] if s["round"] <= upto][-1]["execution"] for i in sorted(chains)]
        chosen = last[_vote([_answer(e) for e in last])] if vote else last[0]
        out.append(chosen["label"] == "correct")
    return out


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


def run_key(model_dir: str, dataset: str, split: str, settings: dict) -> str:
    """What identifies an evaluation run for resuming: the model (and verifier) with a fingerprint
    of their files, the data and every setting. A rerun with the same key continues the run."""
    return content_id("eval", model_dir, _fingerprint(model_dir), _fingerprint(settings.get("verifier")), dataset,
                      split, json.dumps(settings, sort_keys=True))


def _fingerprint(model_dir: str | None) -> str:
    """Name, size and mtime of a local model folder's files (a model retrained in place is a new
    run); empty for a Hub name."""
    path = Path(model_dir) if model_dir else None
    if path is None or not path.is_dir():
        return ""
    return ";".join(f"{f.name}:{st.st_size}:{st.st_mtime_ns}"
                    for f in sorted(path.iterdir()) if f.is_file() for st in [f.stat()])


def _seed(key: str, problem: str) -> None:
    """Seed sampling from the run and the problem, so a resumed run draws what an uninterrupted one does."""
    import torch

    torch.manual_seed(int(content_id("seed", key, problem), 16) % 2**63)


def evaluate(store: Store, model_dir: str, dataset: str, split: str = "test", cfg: EvalConfig | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate, execute, (refine,) score; store the programs and an ``eval_runs`` row; return the summary.

    Problems are evaluated a batch at a time (``batch_size`` problems; one with ``stepwise``)
    and each batch is committed with its programs, executions and per-problem results. A run
    stopped part-way (Ctrl-C, kill -9) is resumed by the same call: it evaluates only the
    problems not committed yet, and, since sampling is seeded per batch from the run and the
    batches are the same, ends with the result an uninterrupted run gets."""
    import torch

    cfg = cfg or EvalConfig()
    rows = store.df("SELECT problem_id, question, answer, answer_text, choice FROM problems WHERE dataset = ? AND split = ? "
                    "ORDER BY problem_id" + (f" LIMIT {int(cfg.limit)}" if cfg.limit else ""), [dataset, split])
    if rows.empty:
        raise ValueError(f"no problems in {dataset}/{split}; ingest them first")
    model, tok, seq2seq = load_model(model_dir)
    _check_config(cfg, seq2seq)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    settings = {**asdict(cfg), "decode": cfg.decode_name()}
    key = run_key(model_dir, dataset, split, settings)
    run_id, done = store.eval_resume_point(key)
    run_id = run_id or uuid.uuid4().hex[:12]
    resumed = int(rows.problem_id.isin(done).sum())
    size = 1 if cfg.decode == "stepwise" else max(1, cfg.batch_size)
    finished = resumed
    if progress:
        progress(finished, len(rows))
    with contextlib.ExitStack() as stack:
        if cfg.cot or cfg.answer_only:
            evaluator = _CotBatch(model, tok, seq2seq, cfg)
        else:
            pool = stack.enter_context(SandboxPool(workers=2, timeout=cfg.timeout, memory_mb=cfg.memory_mb))
            evaluator = _ProgramBatch(model, tok, seq2seq, cfg, pool, model_dir, run_id, key)
        for start in range(0, len(rows), size):
            chunk = rows.iloc[start:start + size]
            chunk = chunk[~chunk.problem_id.isin(done)]
            if chunk.empty:
                continue
            _seed(key, rows.problem_id.iloc[start])
            t0 = time.perf_counter()
            items, programs, executions = evaluator(chunk)
            seconds = (time.perf_counter() - t0) / len(items)
            store.add_eval_items([{"run_id": run_id, "run_key": key, **item, "seconds": seconds} for item in items],
                                 programs, results_frame(executions) if executions else None)
            finished += len(chunk)
            if progress:
                progress(finished, len(rows))
    return _finish(store, run_id, key, model_dir, dataset, split, cfg, settings, set(rows.problem_id), resumed)


class _ProgramBatch:
    """Evaluates a batch of problems whole: write programs (or search step-wise), execute them,
    refine the failing ones; returns ``(eval_items rows, programs rows, executions rows)``."""

    def __init__(self, model, tok, seq2seq: bool, cfg: EvalConfig, pool: SandboxPool, model_dir: str, run_id: str,
                 key: str):
        self.model, self.tok, self.seq2seq, self.cfg, self.pool = model, tok, seq2seq, cfg, pool
        self.model_dir, self.run_id, self.key = model_dir, run_id, key
        self.search = None
        if cfg.decode == "stepwise":
            from pad_train.stepwise import StepwiseConfig, StepwiseSearch
            from pad_train.verifier import Verifier

            self.search = StepwiseSearch(model, tok, StepwiseConfig(beams=cfg.beams, candidates=cfg.candidates,
                                                                    temperature=cfg.temperature or 0.8,
                                                                    max_line_tokens=min(64, cfg.max_new_tokens),
                                                                    exec_penalty=cfg.exec_penalty,
                                                                    w_verifier=cfg.verifier_weight),
                                         pool, Verifier(cfg.verifier) if cfg.verifier else None)

    def __call__(self, chunk: pd.DataFrame) -> tuple[list[dict], list[dict], list[dict]]:
        cfg, model_dir, run_id = self.cfg, self.model_dir, self.run_id
        problems = {r.problem_id: r for r in chunk.itertuples(index=False)}
        chains: dict[str, dict[int, list[dict]]] = {pid: {} for pid in problems}
        executor = self.pool.executor_version

        def run(items: list[tuple[str, int, int, str, str | None]]) -> None:
            """Execute ``(problem_id, sample, round, completion, parent)`` items and append them to their chains."""
            now = pd.Timestamp.now()
            progs = {}
            for pid, i, rnd, text, parent in items:
                code = extract_program(text)
                progs[student_program_id(pid, model_dir, run_id, i, rnd, code)] = (pid, i, rnd, text, code, parent)
            results = dict(self.pool.map((k, v[4]) for k, v in progs.items()))
            for prog_id, (pid, i, rnd, text, code, parent) in progs.items():
                gold = problems[pid].answer
                execution = result_row(prog_id, results[prog_id], None if pd.isna(gold) else float(gold),
                                       problems[pid].answer_text, cfg.timeout, cfg.memory_mb, executor, now,
                                       gold_choice=problems[pid].choice)
                chains[pid].setdefault(i, []).append({
                    "round": rnd, "execution": execution,
                    "program": {"program_id": prog_id, "problem_id": pid, "origin": "student", "teacher": model_dir,
                                "sample_idx": i, "program": code, "completion": text, "eval_run_id": run_id,
                                "parent_program_id": parent, "refine_round": rnd}})

        if self.search is not None:
            first = []
            for pid, q in zip(chunk.problem_id, chunk.question):
                _seed(self.key, pid)
                first.append([self.search.search(q).text])
        else:
            first = generate_programs(self.model, self.tok, self.seq2seq, chunk.question.tolist(), cfg)
        run([(pid, i, 0, text, None) for pid, texts in zip(chunk.problem_id, first) for i, text in enumerate(texts)])
        for rnd in range(1, cfg.refine_rounds + 1):
            todo = [((pid, i), steps[-1]) for pid, samples in chains.items() for i, steps in samples.items()
                    if _needs_fix(steps[-1]["execution"])]
            if not todo:
                break
            prompts = [refine_prompt_for(problems[pid].question, last["program"]["program"],
                                         feedback(last["execution"]["status"], last["execution"]["value"],
                                                  last["execution"]["error_type"], last["execution"]["error_message"],
                                                  last["execution"]["error_line"], cfg.timeout))
                       for (pid, _), last in todo]
            fixes = generate_texts(self.model, self.tok, self.seq2seq, prompts, cfg)
            run([(pid, i, rnd, texts[0], last["program"]["program_id"]) for ((pid, i), last), texts in zip(todo, fixes)])
        items, programs, executions = [], [], []
        for pid, samples in chains.items():
            steps = [s for i in sorted(samples) for s in samples[i]]
            correct = _correct_by_round(samples, cfg.refine_rounds, cfg.samples > 1)
            items.append({"problem_id": pid, "correct_by_round": json.dumps(correct),
                          "labels": json.dumps([samples[i][0]["execution"]["label"] for i in sorted(samples)]),
                          "programs": len(steps)})
            programs += [s["program"] for s in steps]
            executions += [s["execution"] for s in steps]
        return items, programs, executions


class _CotBatch:
    """Scores a batch of the CoT (or answer-only) baseline: the final answer of each rationale
    against the gold answer. Numeric golds: "The answer is X" (else the last number), PAL's rule.
    Text golds (coin flip, last letters): the text after the last "answer is", compared as pad's
    labels compare a program's text answer (case-insensitive, trimmed)."""

    def __init__(self, model, tok, seq2seq: bool, cfg: EvalConfig):
        self.model, self.tok, self.seq2seq, self.cfg = model, tok, seq2seq, cfg

    def __call__(self, chunk: pd.DataFrame) -> tuple[list[dict], list[dict], list[dict]]:
        completions = generate_programs(self.model, self.tok, self.seq2seq, chunk.question.tolist(), self.cfg)
        items = []
        for (pid, _, gold, gold_text, _choice), texts in zip(chunk.itertuples(index=False), completions):
            items.append({"problem_id": pid, "correct_by_round": json.dumps([_cot_correct(texts, gold, gold_text)]),
                          "labels": "[]", "programs": len(texts)})
        return items, [], []


def _cot_correct(texts: list[str], gold, gold_text) -> bool:
    """Whether the answer most rationales agree on (the one majority rule) is the gold answer."""
    numeric = not pd.isna(gold)
    read = cot_answer if numeric else cot_answer_text
    result = majority([a for a in map(read, texts) if a is not None], ties="first")
    if result is None:
        return False
    answer = result[0]
    if numeric:
        return bool(numbers_match(answer, float(gold)))
    return isinstance(gold_text, str) and bool(gold_text.strip()) and \
        label_for("ok", "str", answer, None, gold_text)[0] == "correct"


def _finish(store: Store, run_id: str, key: str, model_dir: str, dataset: str, split: str, cfg: EvalConfig,
            settings: dict, problems: set[str], resumed: int) -> dict:
    """The run's result, computed from what is stored (so a resumed run reports what an
    uninterrupted one does), recorded in ``eval_runs``."""
    items = store.eval_items(run_id)
    items = items[items.problem_id.isin(problems)]
    by_problem = [json.loads(c) for c in items.correct_by_round]
    rounds = len(by_problem[0]) if by_problem else 1
    correct_by_round = [sum(c[r] for c in by_problem) for r in range(rounds)]
    n, correct = len(items), correct_by_round[-1]
    accuracy = correct / n
    programs, seconds = int(items.programs.sum()), float(items.seconds.sum())
    pps = programs / seconds if seconds > 0 else 0.0
    text_only = cfg.cot or cfg.answer_only
    by_round = [c / n for c in correct_by_round]
    store.add_eval_run({"run_id": run_id, "model": model_dir, "dataset": dataset, "split": split, "questions": n,
                        "correct": correct, "accuracy": accuracy, "settings": json.dumps(settings),
                        "programs_per_s": pps, "accuracy_by_round": None if text_only else json.dumps(by_round),
                        "run_key": key})
    labels = Counter(label for ls in items.labels for label in json.loads(ls))
    out = {"run_id": run_id, "questions": n, "correct": correct, "accuracy": accuracy, "labels": dict(labels),
           "seconds": seconds, "programs_per_s": pps, "settings": settings, "resumed": resumed,
           "evaluated": n - resumed}
    if text_only:
        return {**out, "generate_s": seconds, "execute_s": 0.0}
    return {**out, "accuracy_by_round": by_round, "programs": programs}


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
