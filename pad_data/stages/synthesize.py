"""``pad synthesize``: new word problems written by a teacher in the style of a seed dataset.

Request ``i`` shows the teacher ``shots`` problems of the seed dataset, drawn by a seeded RNG
from ``(seed, i)``, through pad's few-shot prompt (``prompts/synthesize/word_problems.txt``)
or a prompt file with an ``{examples}`` placeholder. The reply is parsed (the text after the
last ``New problem:``, its first paragraph, up to an ``Answer:``/``Solution:`` the teacher
added) and judged, in this order:

- ``unparsable``: fewer than 5 words;
- ``contaminated``: too close to a question of a ``reference`` benchmark, by the rule
  ``pad check`` uses (:func:`pad_data.stages.check.coverage`: the same normalized text, or more than
  ``contamination`` of its words covered by word 8-grams of the reference);
- ``duplicate``: the same normalized text as a seed problem or a problem of the new dataset;
- ``near_duplicate``: more than ``near_duplicate`` of its words covered by word 8-grams of one
  seed problem or one problem of the new dataset (one number changed is a near duplicate; a
  problem that only shares phrases with several others is not);
- ``accepted``: stored in ``problems`` (the new dataset, split ``train``, no gold, source
  ``synthesize:MODEL``).

Every reply, accepted or not, is committed as it arrives to ``synth_requests`` under its cache
key ``hash(seed dataset, new dataset, prompt, model, temperature, max_tokens, seed, i)``, with
the seed problems shown, the outcome and what it resembles (``similar_to``: a problem id, or
``FILE:LINE`` of a reference question). A run asks for indices not stored yet, while the
accepted problems of this configuration and the requests in flight are fewer than ``n``, and
never beyond index ``max_requests``: a rerun sends no request, a killed run loses only the
replies in flight, and a request that failed is asked again by the next run.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import pandas as pd

from pad_data.stages.check import NGRAM, coverage, load_reference, ngrams, normalize_text
from pad_data.rules.options import COUNT, CONCURRENCY, FRACTION_OPEN, MAX_TOKENS, SEED, TEMPERATURE, Range, check_names, \
    check_numbers
from pad_data.teachers.prompts import Prompt, load_synthesis_prompt
from pad_data.store import Store, content_id, problem_id
from pad_data.store.sqltools import registered
from pad_data.teachers.base import Completion, Teacher, TeacherError, estimate_cost

OUTCOMES = ("accepted", "contaminated", "duplicate", "near_duplicate", "unparsable")
MIN_WORDS = 5
SHOTS = Range(1, 64, integer=True)
_MARK = re.compile(r"new problem\s*:", re.IGNORECASE)
_LEAD = re.compile(r"^(?:q|question|problem)\s*[:.]\s*", re.IGNORECASE)
_TAIL = re.compile(r"\b(?:answer|solution)\s*:", re.IGNORECASE)


def synth_key(seed_dataset: str, dataset: str, prompt_id: str, model: str, temperature: float,
              max_tokens: int, seed: int, idx: int) -> str:
    return content_id("synth", seed_dataset, dataset, prompt_id, model, repr(float(temperature)), max_tokens,
                      seed, idx)


def parse_problem(text: str) -> str | None:
    """The problem in a teacher's reply (see the module docstring), or None when there is none."""
    parts = _MARK.split(text or "")
    body = parts[-1].strip()
    body = re.split(r"\n\s*\n", body, maxsplit=1)[0]
    body = _TAIL.split(body, maxsplit=1)[0]
    body = _LEAD.sub("", " ".join(body.split())).strip().strip('"“”').strip()
    return body if len(body.split()) >= MIN_WORDS else None


@dataclass
class _Index:
    """Normalized texts and word 8-grams of a set of questions, each with where it came from."""

    exact: dict[str, str] = field(default_factory=dict)
    grams: dict[str, list[str]] = field(default_factory=dict)

    def add(self, question: str, where: str) -> None:
        norm = normalize_text(question)
        self.exact.setdefault(norm, where)
        for g in set(ngrams(norm, NGRAM)):
            self.grams.setdefault(g, []).append(where)

    def contamination(self, norm: str) -> tuple[float, str | None]:
        """``pad check``'s rule: ``(share of the words covered by 8-grams of all the questions
        together, the question sharing the most of them)``."""
        cov = coverage(norm, self.grams.keys(), self.exact.keys())
        if norm in self.exact:
            return cov, self.exact[norm]
        owners = Counter(self.grams[g][0] for g in ngrams(norm, NGRAM) if g in self.grams)
        return cov, min(owners.items(), key=lambda kv: (-kv[1], kv[0]))[0] if owners else None

    def closest(self, norm: str) -> tuple[float, str | None]:
        """``(share of the words covered by 8-grams of one single question, that question)``
        for the question that covers the most."""
        marks: dict[str, set[int]] = {}
        for i, g in enumerate(ngrams(norm, NGRAM)):
            for where in self.grams.get(g, ()):
                marks.setdefault(where, set()).update(range(i, i + NGRAM))
        if not marks:
            return 0.0, None
        where, covered = min(marks.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return len(covered) / len(norm.split()), where


def judge(question: str | None, seen: _Index, reference: _Index, contamination: float,
          near_duplicate: float) -> tuple[str, str | None]:
    """``(outcome, similar_to)`` of one parsed problem against what is known (see the module docstring)."""
    if question is None:
        return "unparsable", None
    norm = normalize_text(question)
    cov, where = reference.contamination(norm)
    if norm in reference.exact or cov > contamination:
        return "contaminated", where
    if norm in seen.exact:
        return "duplicate", seen.exact[norm]
    cov, where = seen.closest(norm)
    if cov > near_duplicate:
        return "near_duplicate", where
    return "accepted", None


def _reference_index(paths: list[str]) -> _Index:
    index = _Index()
    for path in paths:
        for line, q in enumerate(load_reference(path), 1):
            index.add(q, f"{path}:{line}")
    return index


def synthesize(store: Store, teacher: Teacher, seed_dataset: str, dataset: str, n: int = 100, shots: int = 4,
               reference: list[str] | None = None, temperature: float = 1.0, max_tokens: int = 400,
               concurrency: int = 8, prompt: str | None = None, seed: int = 0, split: str | None = None,
               max_requests: int | None = None, contamination: float = 0.8, near_duplicate: float = 0.8,
               prices: tuple[float, float] | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Ask ``teacher`` for new problems in the style of ``seed_dataset`` until ``dataset`` holds
    ``n`` accepted ones from this configuration; returns counts per outcome (this run), ``cached``
    (replies stored before), ``accepted_total``, ``requests``, ``failed`` and tokens."""
    check_numbers(("--n", n, COUNT), ("--shots", shots, SHOTS), ("--temperature", temperature, TEMPERATURE),
                  ("--max-tokens", max_tokens, MAX_TOKENS), ("--concurrency", concurrency, CONCURRENCY),
                  ("--seed", seed, SEED), ("--max-requests", max_requests, COUNT),
                  ("--contamination", contamination, FRACTION_OPEN),
                  ("--near-duplicate", near_duplicate, FRACTION_OPEN))
    if not dataset or dataset == seed_dataset:
        raise ValueError("--dataset must name a new dataset, not the seed dataset")
    check_names("--from", [seed_dataset], [r[0] for r in store.con.execute(
        "SELECT DISTINCT dataset FROM problems").fetchall()], "dataset")
    p = load_synthesis_prompt(prompt)
    ref = _reference_index(list(reference or []))
    pool, seen = _seed_problems(store, seed_dataset, dataset, split)
    max_requests = max_requests or 3 * n + 10
    keys = [synth_key(seed_dataset, dataset, p.prompt_id, teacher.name, temperature, max_tokens, seed, i)
            for i in range(max_requests)]
    with store.transaction():
        store.insert_new("prompts", pd.DataFrame([{"prompt_id": p.prompt_id, "name": p.name, "text": p.text}]),
                         "prompt_id")
    done = _stored_outcomes(store, keys)
    stats = {o: 0 for o in OUTCOMES}
    stats.update(cached=len(done), accepted_total=sum(o == "accepted" for o in done.values()), requests=0,
                 failed=0, prompt_tokens=0, completion_tokens=0, prompt=p.name, teacher=teacher.name)
    run = _Synthesis(store, teacher, p, seed_dataset, dataset, keys, pool, seen, ref, stats, n=n, shots=shots,
                     seed=seed, temperature=temperature, max_tokens=max_tokens, contamination=contamination,
                     near_duplicate=near_duplicate, prices=prices, progress=progress)
    t0 = time.perf_counter()
    asyncio.run(run.ask_all(iter([i for i in range(max_requests) if keys[i] not in done]), concurrency))
    stats["requests"] = getattr(teacher, "requests", stats["requests"])
    stats["seconds"] = time.perf_counter() - t0
    return stats


def _seed_problems(store: Store, seed_dataset: str, dataset: str, split: str | None
                   ) -> tuple[list[tuple[str, str]], _Index]:
    """``(pool, seen)``: the ``(problem_id, question)`` pairs of ``seed_dataset`` (of ``split``)
    shown as examples, and an index of every question a new one must not repeat (all of
    ``seed_dataset`` and the problems ``dataset`` holds already)."""
    seeds = store.con.execute("SELECT problem_id, question, split FROM problems WHERE dataset = ? "
                              "ORDER BY problem_id", [seed_dataset]).fetchall()
    pool = [(pid, q) for pid, q, s in seeds if split is None or s == split]
    if not pool:
        raise ValueError(f"--from {seed_dataset!r} has no problems in split {split!r}")
    seen = _Index()
    for pid, q, _ in seeds:
        seen.add(q, pid)
    for pid, q in store.con.execute("SELECT problem_id, question FROM problems WHERE dataset = ? ORDER BY problem_id",
                                    [dataset]).fetchall():
        seen.add(q, pid)
    return pool, seen


def _stored_outcomes(store: Store, keys: list[str]) -> dict[str, str]:
    """``{synth_key: outcome}`` of the requests among ``keys`` whose replies are stored."""
    with registered(store.con, pd.DataFrame({"k": keys})) as wanted:
        return dict(store.con.execute(f"SELECT synth_key, outcome FROM synth_requests "
                                      f"WHERE synth_key IN (SELECT k FROM {wanted})").fetchall())


@dataclass
class _Synthesis:
    """The requests of one synthesize run: what each shows the teacher, and how its reply is
    judged and stored. Counts go to ``stats`` as replies arrive."""

    store: Store
    teacher: Teacher
    prompt: Prompt
    seed_dataset: str
    dataset: str
    keys: list[str]
    pool: list[tuple[str, str]]
    seen: _Index
    reference: _Index
    stats: dict
    n: int
    shots: int
    seed: int
    temperature: float
    max_tokens: int
    contamination: float
    near_duplicate: float
    prices: tuple[float, float] | None
    progress: Callable[[int, int], None] | None
    in_flight: int = 0

    def shown(self, i: int) -> list[tuple[str, str]]:
        """The seed problems request ``i`` shows: the same for the same ``(seed, i)`` on every run."""
        return random.Random(f"{self.seed}:{i}").sample(self.pool, min(self.shots, len(self.pool)))

    def render(self, examples: list[tuple[str, str]]) -> str:
        return self.prompt.text.replace("{examples}", "\n\n".join(f"Example problem: {' '.join(q.split())}"
                                                                   for _, q in examples))

    async def ask_all(self, todo: Iterator[int], concurrency: int) -> None:
        """Ask for the request indices ``todo`` in order, ``concurrency`` at a time, while the
        accepted problems and the requests in flight are fewer than ``n``."""
        cond = asyncio.Condition()
        try:
            await asyncio.gather(*(self._worker(cond, todo) for _ in range(concurrency)))
        finally:
            await self.teacher.aclose()

    async def _worker(self, cond: asyncio.Condition, todo: Iterator[int]) -> None:
        while (i := await self._next(cond, todo)) is not None:
            examples = self.shown(i)
            comp = await self._ask(examples)
            async with cond:
                self.in_flight -= 1
                if comp is not None:
                    self.store_reply(i, examples, comp)
                if self.progress:
                    self.progress(self.stats["accepted_total"], self.n)
                cond.notify_all()

    async def _next(self, cond: asyncio.Condition, todo: Iterator[int]) -> int | None:
        """The next request index, once one more request could still be needed; None when
        ``n`` problems are accepted or no index is left."""
        async with cond:
            await cond.wait_for(lambda: self.stats["accepted_total"] >= self.n
                                or self.stats["accepted_total"] + self.in_flight < self.n)
            if self.stats["accepted_total"] >= self.n:
                return None
            i = next(todo, None)
            if i is not None:
                self.in_flight += 1
            return i

    async def _ask(self, examples: list[tuple[str, str]]) -> Completion | None:
        """The teacher's reply to a request showing ``examples``, or None when it failed (counted)."""
        try:
            self.stats["requests"] += 1
            comp = await self.teacher.complete(self.render(examples), 1, self.temperature, self.max_tokens)
            if not comp.texts:
                raise TeacherError("empty response")
            return comp
        except TeacherError as exc:
            self.stats["failed"] += 1
            self.stats["last_error"] = str(exc)
            return None

    def store_reply(self, i: int, examples: list[tuple[str, str]], comp: Completion) -> None:
        """Judge the reply to request ``i`` and commit it (and the problem, when accepted)."""
        text = comp.texts[0]
        question = parse_problem(text)
        outcome, similar = judge(question, self.seen, self.reference, self.contamination, self.near_duplicate)
        new_pid = problem_id(self.dataset, question) if outcome == "accepted" else None
        cost = estimate_cost(self.teacher.name, comp.prompt_tokens, comp.completion_tokens, self.prices)
        row = {"synth_key": self.keys[i], "dataset": self.dataset, "seed_dataset": self.seed_dataset,
               "request_idx": i, "model": self.teacher.name, "prompt_id": self.prompt.prompt_id,
               "seed_problem_ids": [pid for pid, _ in examples], "completion": text, "question": question,
               "outcome": outcome, "similar_to": similar, "problem_id": new_pid,
               "prompt_tokens": comp.prompt_tokens, "completion_tokens": comp.completion_tokens, "cost_usd": cost}
        self.store.add_synth_request(row, new_pid and {"problem_id": new_pid, "dataset": self.dataset, "question": question,
                                                       "source": f"synthesize:{self.teacher.name}"})
        if new_pid:
            self.seen.add(question, new_pid)
            self.stats["accepted_total"] += 1
        self.stats[outcome] += 1
        self.stats["prompt_tokens"] += comp.prompt_tokens or 0
        self.stats["completion_tokens"] += comp.completion_tokens or 0
