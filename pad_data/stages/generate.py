"""The generate stage: programs from a teacher, stored with their raw completions.

Every sample has a cache key, ``gen_key = hash(problem, prompt, model, temperature,
max_tokens, sample_idx)``, stored on its program. A run asks the teacher only for samples
whose key is not in the store yet, so a rerun makes zero requests, and an interrupted run
loses nothing: responses are committed as they arrive (group commits a quarter of a second
apart, which leave the store free for readers in between; Ctrl-C commits what was received,
a kill -9 loses at most the last quarter second, which the rerun asks for again).
Requests that still fail after retries go to ``generation_failures`` and are retried by the
next run. If a commit fails, the responses not committed go to a journal beside the store
(``<store>.journal.jsonl``, fsync'd), no new request is sent, and the run fails with the reason;
the next run stores the journal before it plans its requests. The teachers themselves live
in :mod:`pad_data.teachers`.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from pad_data.teachers.embedded import EmbeddedProblem, embedded_problems
from pad_data.rules.extract import extract_program
from pad_data.teachers.prompts import Prompt, load_prompt
from pad_data.store import Store, content_id, problem_id, program_id
from pad_data.store.ids import teacher_program_id
from pad_data.teachers import offline
from pad_data.teachers.base import Teacher, TeacherError, estimate_cost
from pad_data.store.journal import journal_path
from pad_data.store.sqltools import first_line, registered
from pad_data.store.writer import GroupCommitter

COMMIT_INTERVAL_S = 0.25  # responses are small and arrive one by one: commit them soon


def program_rows(pid: str, teacher: str, completions: list[tuple[int, str]],
                 origin: str = "teacher") -> list[dict]:
    """``programs`` rows for ``(sample_idx, completion)`` pairs of one problem."""
    rows = []
    for idx, completion in completions:
        code = extract_program(completion)
        rows.append({"program_id": program_id(pid, code, teacher, idx, origin), "problem_id": pid,
                     "origin": origin, "teacher": teacher, "sample_idx": idx, "program": code,
                     "completion": completion})
    return rows


def generate_offline(store: Store, samples: int = 4, seed: int = 0,
                     problems: list[EmbeddedProblem] | None = None) -> dict:
    """Programs from the offline template teacher for the embedded problems in the store.

    ``problems``: write programs for these embedded problems only [default: the embedded
    set of ``seed``]. Only samples that are missing are written, so rerunning adds nothing.
    """
    problems = embedded_problems(seed) if problems is None else problems
    known = {problem_id(p.dataset, p.question): p for p in problems}
    have = set(map(tuple, store.con.execute(
        "SELECT problem_id, sample_idx FROM programs WHERE teacher = ?", [offline.NAME]).fetchall()))
    in_store = {r[0] for r in store.con.execute(
        "SELECT problem_id FROM problems WHERE dataset LIKE 'pad-%'").fetchall()}
    rows = []
    for pid in sorted(in_store & set(known)):
        todo = [i for i in range(samples) if (pid, i) not in have]
        if todo:
            rows += program_rows(pid, offline.NAME,
                                 [(i, offline.write_program(known[pid], pid, i, seed)[0]) for i in todo])
    with store.transaction():
        added = store.insert_new("programs", pd.DataFrame(rows), "program_id") if rows else 0
    return {"teacher": offline.NAME, "problems": len(in_store & set(known)), "added": added}


def ingest_embedded(store: Store, seed: int = 0, problems: list[EmbeddedProblem] | None = None,
                    split: str = "train") -> dict:
    """Add pad's embedded problems (``pad-arith``, ``pad-coin``, ``pad-letters``) to the store.

    ``problems``: these embedded problems instead of the set of ``seed`` (e.g. made with other
    sizes or lengths), ingested as ``split``. Symbolic problems keep their rationale."""
    rows = [{"problem_id": problem_id(p.dataset, p.question), "dataset": p.dataset, "split": split,
             "question": p.question, "answer": p.answer, "answer_text": p.answer_text,
             "rationale": p.rationale, "source": f"pad-embedded(seed={seed})"}
            for p in (embedded_problems(seed) if problems is None else problems)]
    if not rows:
        return {"read": 0, "added": 0}
    with store.transaction():
        added = store.insert_new("problems", pd.DataFrame(rows), "problem_id")
    return {"read": len(rows), "added": added}


def gen_key(pid: str, prompt_id: str, model: str, temperature: float, max_tokens: int, idx: int) -> str:
    """The cache key of sample ``idx`` of problem ``pid`` under one generation configuration."""
    return content_id("gen", pid, prompt_id, model, repr(float(temperature)), max_tokens, idx)


def completion_rows(model: str, prompt_id: str, pid: str, idxs: list[int], keys: list[str], texts: list[str],
                    prompt_tokens: int | None, completion_tokens: int | None,
                    prices: tuple[float, float] | None, discount: float = 1.0) -> list[dict]:
    """``programs`` rows for the completions ``texts`` of samples ``idxs`` (cache keys ``keys``) of
    problem ``pid``, as live, Ray and Batch API runs store them: the usage of the request is split
    evenly over its samples, and its cost multiplied by ``discount``."""
    k = len(texts)
    pt = prompt_tokens / k if prompt_tokens is not None else None
    ct = completion_tokens / k if completion_tokens is not None else None
    cost = estimate_cost(model, pt, ct, prices)
    rows = []
    for idx, key, text in zip(idxs, keys, texts):
        code = extract_program(text)
        rows.append({"program_id": teacher_program_id(pid, key, code), "problem_id": pid,
                     "origin": "teacher", "teacher": model, "sample_idx": idx, "program": code, "completion": text,
                     "prompt_id": prompt_id, "gen_key": key, "prompt_tokens": pt, "completion_tokens": ct,
                     "cost_usd": None if cost is None else cost * discount})
    return rows


def make_teacher(backend: str, model: str, base_url: str | None = None, max_retries: int = 6,
                 timeout: float = 120.0, backoff_base: float = 0.5) -> Teacher:
    """A teacher for ``backend`` (``openai``: any OpenAI-compatible server; ``hf``: local model)."""
    if backend == "openai":
        from pad_data.teachers.openai_teacher import OpenAITeacher

        return OpenAITeacher(model, base_url=base_url, max_retries=max_retries, timeout=timeout,
                             backoff_base=backoff_base)
    if backend == "hf":
        from pad_data.teachers.hf_teacher import HFTeacher

        return HFTeacher(model)
    raise ValueError(f"unknown backend {backend!r}; choose openai or hf")


def generate(store: Store, teacher: Teacher, dataset: str, samples: int = 4, temperature: float = 0.7,
             max_tokens: int = 512, concurrency: int = 8, prompt: str | None = None,
             split: str | None = None, limit: int | None = None,
             prices: tuple[float, float] | None = None,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Ask ``teacher`` for ``samples`` programs per problem of ``dataset``; store each as it arrives.

    Responses a commit could not store go to the store's journal; the run then stops sending
    requests and raises :class:`CommitError` once the requests in flight are answered (and
    journaled). The next run, or any writable open of the store, stores the journal first."""
    if concurrency < 1:
        raise ValueError("--samples and --concurrency must be >= 1")
    recovered, store.recovered = store.recovered + store.replay_journal(), 0
    p, todo, keys, cached, in_batch = plan(store, teacher.name, dataset, samples, temperature, max_tokens, prompt,
                                           split, limit)
    total = sum(len(t[2]) for t in todo)
    stats = new_stats(total, cached=cached, in_batch=in_batch)
    stats["recovered"] = recovered
    failed_keys = {r[0] for r in store.con.execute("SELECT gen_key FROM generation_failures").fetchall()}

    def reported(_) -> None:
        if progress:
            progress(stats["added"] + stats["failed"], total)

    journal = _Journal(store, stats)
    committer = GroupCommitter(store, lambda st, items: _commit_responses(st, items, stats, failed_keys),
                               interval=COMMIT_INTERVAL_S, on_commit=reported, salvage=journal)
    committer.start()
    t0 = time.perf_counter()
    try:
        asyncio.run(run_requests(teacher, p, todo, keys, temperature, max_tokens, concurrency, prices,
                                 lambda kind, rows: committer.put((kind, rows)), stats,
                                 stop=committer.failed.is_set))
    finally:
        try:
            committer.close()  # everything received is committed (or journaled), also on Ctrl-C
        except Exception as exc:
            raise journal.failure(exc) from exc
    return finish_stats(stats, teacher, p, time.perf_counter() - t0)


def _commit_responses(st: Store, items: list[tuple[str, list[dict]]], stats: dict, failed_keys: set[str]) -> None:
    """Commit function of the stage: programs received, and requests that failed for good."""
    ok = [r for kind, rows in items if kind == "ok" for r in rows]
    failed = [r for kind, rows in items if kind == "fail" for r in rows]
    stats["added"] += st.add_generated(ok, failed, [r["gen_key"] for r in ok if r["gen_key"] in failed_keys])
    stats["failed"] += len(failed)


class CommitError(RuntimeError):
    """A commit to the store failed during ``pad generate``: what it held went to the journal."""


class _Journal:
    """The salvage of a failed generate: appends what could not be committed to the store's
    journal (:meth:`Store.append_journal`: one line per item, fsync'd) and checks what reached it.
    A write that fails is cut back to its last whole line, so the journal only ever holds whole
    entries: the items in those are kept, the rest lost, and so is everything after (a journal
    that failed once is not trusted again). Only what is verified on disk is reported as kept."""

    def __init__(self, store: Store, stats: dict):
        self.store, self.stats = store, stats
        self.error: BaseException | None = None  # the journal could not be written
        self.lost = 0  # programs neither committed nor journaled: the next run asks (and pays) for them again

    def __call__(self, items: list[tuple[str, list[dict]]]) -> None:
        if self.error is None:
            path = self.store.journal_path
            start = path.stat().st_size if path.exists() else 0
            try:
                self.store.append_journal(items)
            except BaseException as exc:
                self.error = exc
            try:
                whole = _whole_lines(path, start)
            except OSError as exc:  # nothing of this write is known to be on disk
                self.error, whole = self.error or exc, 0
            if self.error is None and whole != len(items):
                self.error = OSError(f"{whole} of the {len(items)} entries written reached the journal")
            self.stats["journaled"] += _programs(items[:whole])
            items = items[whole:]
        self.lost += _programs(items)

    def failure(self, exc: BaseException) -> CommitError:
        reason, journal = first_line(exc), self.store.journal_path
        message = f"could not commit to {self.store.path}: {reason}; stopped sending requests; "
        if self.error is None or self.stats["journaled"]:
            message += (f"{self.stats['journaled']} programs kept in {journal}: the next `pad generate` "
                        "stores them without asking again")
        if self.error is not None:
            message += ("; " if self.stats["journaled"] else "") + (
                f"{self.lost} programs are lost: the journal {journal} could not be written "
                f"({first_line(self.error)}); the next run asks for them again")
        return CommitError(message)


def _programs(items: list[tuple[str, list[dict]]]) -> int:
    return sum(len(rows) for kind, rows in items if kind == "ok")


def _whole_lines(path: Path, start: int) -> int:
    """The lines written to the journal past byte ``start``, once a torn last one is cut off and
    the file is fsync'd again: those are on disk whole."""
    with open(path, "r+b") as f:
        f.seek(start)
        tail = f.read()
        end = tail.rfind(b"\n") + 1
        if end != len(tail):
            f.truncate(start + end)
        os.fsync(f.fileno())
    return tail.count(b"\n", 0, end)


def torn_journal_bytes(db: Path) -> int:
    """Bytes after the last whole line of the journal of the store ``db`` (a resolved path): what a
    run killed while writing it left. Recovery cannot read them; their responses are asked for again.
    Read before the store is opened, which replays the journal and removes it."""
    journal = journal_path(db)
    try:
        with open(journal, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - (1 << 20)))
            tail = f.read()
    except OSError:
        return 0
    return len(tail) - tail.rfind(b"\n") - 1 if tail and not tail.endswith(b"\n") else 0


def plan(store: Store, model: str, dataset: str, samples: int, temperature: float, max_tokens: int,
         prompt: str | None = None, split: str | None = None, limit: int | None = None, unsent: bool = False
         ) -> tuple[Prompt, list[tuple[str, str, list[int]]], dict[str, list[str]], int, int]:
    """What a generation run must ask for: ``(prompt, todo, keys, cached, in_batch)``, where ``todo`` is
    ``[(problem_id, question, [missing sample_idx])]`` and ``keys`` the samples' cache keys.
    Samples stored already (``cached`` counts them) and samples of a Batch API job submitted and
    not yet stored (``in_batch``) are left out, so no run, live, Ray or batch, pays for a sample
    twice. A job not yet submitted is checked against the store again right before its upload, so
    only the Batch API path, which resumes such jobs, leaves their samples out too (``unsent``)."""
    if samples < 1:
        raise ValueError("--samples and --concurrency must be >= 1")
    p = load_prompt(prompt, dataset)
    where, params = "dataset = ?", [dataset]
    if split:
        where += " AND split = ?"
        params.append(split)
    problems = store.con.execute(f"SELECT problem_id, question FROM problems WHERE {where} "
                                 f"ORDER BY problem_id" + (f" LIMIT {int(limit)}" if limit else ""),
                                 params).fetchall()
    if not problems:
        raise ValueError(f"no problems in dataset {dataset!r}" + (f" split {split!r}" if split else "")
                         + "; run `pad ingest` first")
    with store.transaction():
        store.insert_new("prompts", pd.DataFrame([{"prompt_id": p.prompt_id, "name": p.name,
                                                   "text": p.text}]), "prompt_id")
    keys = {pid: [gen_key(pid, p.prompt_id, model, temperature, max_tokens, i)
                  for i in range(samples)] for pid, _ in problems}
    sent = "" if unsent else " AND status NOT IN ('new', 'uploaded')"
    with registered(store.con, pd.DataFrame({"k": [k for ks in keys.values() for k in ks]})) as wanted:
        have = {r[0] for r in store.con.execute(
            f"SELECT gen_key FROM programs WHERE gen_key IN (SELECT k FROM {wanted})").fetchall()}
        in_batch = {r[0] for r in store.con.execute(
            f"SELECT k FROM (SELECT unnest(gen_keys) AS k FROM batch_requests WHERE job_id IN "
            f"(SELECT job_id FROM batch_jobs WHERE ingested_at IS NULL{sent})) "
            f"WHERE k IN (SELECT k FROM {wanted})").fetchall()}
    skip = have | in_batch
    todo = [(pid, q, [i for i in range(samples) if keys[pid][i] not in skip]) for pid, q in problems]
    return p, [t for t in todo if t[2]], keys, len(have), len(in_batch)


def new_stats(total: int, cached: int = 0, in_batch: int = 0) -> dict:
    return {"requested_samples": total, "cached": cached, "in_batch": in_batch, "added": 0, "failed": 0, "requests": 0,
            "prompt_tokens": 0, "completion_tokens": 0, "journaled": 0, "recovered": 0}


def finish_stats(stats: dict, teacher: Teacher, prompt: Prompt, seconds: float) -> dict:
    stats["requests"] = getattr(teacher, "requests", stats["requests"])
    stats.update(seconds=seconds, teacher=teacher.name, prompt=prompt.name,
                 programs_per_s=stats["added"] / seconds if seconds > 0 else 0.0)
    return stats


async def run_requests(teacher: Teacher, prompt: Prompt, todo: list[tuple[str, str, list[int]]],
                       keys: dict[str, list[str]], temperature: float, max_tokens: int, concurrency: int,
                       prices: tuple[float, float] | None, put: Callable[[str, list[dict]], None],
                       stats: dict, stop: Callable[[], bool] | None = None) -> None:
    """Ask ``teacher`` for the missing samples ``todo`` = ``[(problem_id, question, [sample_idx])]``.

    Each response becomes ``programs`` rows handed to ``put("ok", rows)`` the moment it
    arrives; requests that fail for good go to ``put("fail", rows)`` (``generation_failures``
    rows). Used by ``pad generate`` (``put`` feeds the store's group-commit writer) and by the
    Ray engine (``put`` collects a shard's rows). Once ``stop()`` is true no new request is
    sent; the requests in flight still hand their responses to ``put``.
    """
    stop = stop or (lambda: False)
    sem = asyncio.Semaphore(concurrency)

    def store_completion(pid: str, idxs: list[int], comp) -> None:
        put("ok", completion_rows(teacher.name, prompt.prompt_id, pid, idxs, [keys[pid][i] for i in idxs],
                                  comp.texts, comp.prompt_tokens, comp.completion_tokens, prices))
        stats["prompt_tokens"] += comp.prompt_tokens or 0
        stats["completion_tokens"] += comp.completion_tokens or 0

    def record_failure(pid: str, idxs: list[int], error: str, attempts: int) -> None:
        put("fail", [{"gen_key": keys[pid][i], "problem_id": pid, "sample_idx": i,
                      "model": teacher.name, "error": error[:500], "attempts": attempts} for i in idxs])
        stats["last_error"] = error

    async def one_problem(pid: str, question: str, missing: list[int]) -> None:
        text = prompt.render(question)
        while missing:
            n = len(missing) if teacher.supports_n else 1
            async with sem:
                if stop():
                    return
                try:
                    comp = await teacher.complete(text, n, temperature, max_tokens)
                except TeacherError as exc:
                    record_failure(pid, missing, str(exc), getattr(teacher, "max_retries", 0) + 1)
                    return
            got = comp.texts[: len(missing)]
            if not got:
                record_failure(pid, missing, "empty response", comp.attempts)
                return
            if n > 1 and len(got) == 1:
                teacher.supports_n = False  # the server ignores n: one sample per request from now on
            comp.texts = got
            store_completion(pid, missing[: len(got)], comp)
            missing = missing[len(got):]

    try:
        await asyncio.gather(*(one_problem(pid, q, m) for pid, q, m in todo))
    finally:
        await teacher.aclose()
