"""pad's sandbox as the execution reward for RL with verifiable rewards (TRL's ``GRPOTrainer``).

:class:`ExecutionReward` is a reward function in TRL's shape, ``reward(completions, **columns)
-> list[float]``, usable in anyone's GRPO script::

    with ExecutionReward() as reward:
        GRPOTrainer(model=..., reward_funcs=reward, train_dataset=data, args=GRPOConfig(...)).train()

For each completion (a string, or chat messages: the assistant's text) it pulls the program out
with pad's extractor, runs the whole batch in one warm sandbox pool kept for the whole training
run (closed by :meth:`~ExecutionReward.close` or the ``with`` block), labels each result against
the problem's gold answer with pad's labels and turns the label into a reward
(:class:`RewardScheme`). The gold is the dataset column ``answer`` (a number, a string pad reads
as a gold: ``"1,234"``, GSM8K's ``"... #### 72"``, a text gold such as ``yes``), with
``answer_text`` and ``choice`` used when the dataset has them (a curated split's consensus
answers arrive in the same columns).

With ``store=PATH`` every rollout is written to pad's store in the background (the store's
group committer: the trainer never waits for DuckDB, and ``pad sql`` answers meanwhile): a
``programs`` row (origin ``rollout``, ``train_run_id``, ``train_step``, ``reward``) with its
execution and label, for which the dataset needs a ``problem_id`` column naming a stored problem.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from pad_data.api import SandboxPool
from pad_data.rules.answers import AnswerError, Gold, parse_answer
from pad_data.rules.extract import extract_program
from pad_data.rules.labels import ERROR_STATUSES, LABELS, label_for
from pad_data.rules.options import check_names
from pad_data.stages.results import result_row, results_table
from pad_data.store import Store
from pad_data.store.ids import student_program_id
from pad_data.store.writer import GroupCommitter

ORIGIN = "rollout"
POOL_BATCH = 32  # programs sent to a worker at a time: a batch of completions is spread over every worker


@dataclass(frozen=True)
class RewardScheme:
    """A label's reward: ``labels[label]`` (default: ``correct`` for a correct program, ``other``
    for every other label), plus ``format_reward`` for a runnable program (it ran and returned a
    value), minus ``error_penalty`` for one that did not (a label of ``ERROR_STATUSES``: did not
    compile, raised, timed out, returned nothing...)."""

    correct: float = 1.0
    other: float = 0.0
    format_reward: float = 0.0
    error_penalty: float = 0.0
    labels: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self):
        check_names("reward labels", list(self.labels), list(LABELS), "label")
        for name, value in [("correct", self.correct), ("other", self.other), ("format_reward", self.format_reward),
                            ("error_penalty", self.error_penalty), *self.labels.items()]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"reward {name!r} must be a finite number, got {value!r}")

    def reward(self, label: str) -> float:
        base = self.labels.get(label, self.correct if label == "correct" else self.other)
        if label in ERROR_STATUSES:
            return base - self.error_penalty
        return base + self.format_reward


def completion_text(completion: Any) -> str:
    """A completion's text: a string as it is; chat messages: the assistant's contents joined
    (a content may be a list of parts: their ``text``)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    parts = []
    for message in completion or []:
        if not isinstance(message, dict) or message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(content or "")
    return "\n".join(parts)


def _missing(x: Any) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


class ExecutionReward:
    """Score completions by running their programs in pad's sandbox (see the module docstring).

    ``scheme``: the reward per label (or give ``correct=``, ``format_reward=``, ... as keywords).
    ``timeout``/``memory_mb``/``workers``/``isolation_level``/``entry``: the sandbox pool's, as
    for ``pad execute``; ``pool_options``: any other :class:`~pad_data.api.SandboxPool` argument.
    ``store``: a store path to write every rollout to (``model``: its teacher column,
    ``run_id``: its ``train_run_id`` [a new id]). After each call, ``last`` holds the ``(label,
    reward)`` of each completion of that batch, ``last_results`` their executions, and ``labels``
    counts every label so far.
    """

    __name__ = "pad_execution"  # what TRL logs the reward as

    def __init__(self, scheme: RewardScheme | None = None, *, gold_column: str = "answer",
                 text_column: str = "answer_text", choice_column: str = "choice", timeout: float = 2.0,
                 memory_mb: int = 512, workers: int = 2, isolation_level: str = "auto", entry: str | None = None,
                 store: str | Path | None = None, model: str | None = None, run_id: str | None = None,
                 pool_options: Mapping[str, Any] | None = None, **scheme_fields: Any):
        if scheme is not None and scheme_fields:
            raise ValueError("give a RewardScheme or its fields as keywords, not both")
        self.scheme = scheme or RewardScheme(**scheme_fields)
        self.gold_column, self.text_column, self.choice_column = gold_column, text_column, choice_column
        self.entry = entry
        self.model = model or "policy"
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.calls = 0
        self.rollouts = 0
        self.labels: Counter = Counter()
        self.last: list[tuple[str, float]] = []
        self.last_results: list = []
        self._closed = True  # until the pool exists
        self.pool = SandboxPool(**{"workers": workers, "timeout": timeout, "memory_mb": memory_mb,
                                   "isolation_level": isolation_level, "entry": entry,
                                   "batch_size": POOL_BATCH, **dict(pool_options or {})})
        self._closed = False
        self._store: Store | None = None
        self._committer: GroupCommitter | None = None
        try:
            list(self.pool.map([(0, "def solution():\n    return 0\n")]))  # warm: the workers are up from here on
            if store is not None:
                self._store = Store(store)
                self._committer = GroupCommitter(self._store, _commit, prepare=self._rows)
                self._committer.start()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ TRL's reward function
    def __call__(self, completions: list, prompts: list | None = None, trainer_state: Any = None,
                 log_metric: Any = None, log_extra: Any = None, **columns: Any) -> list[float]:
        n = len(completions)
        golds = self._golds(columns, n)
        texts = [completion_text(c) for c in completions]
        programs: list[str] = []

        def extracted():  # workers start on the first programs while the rest are extracted
            for i, text in enumerate(texts):
                programs.append(extract_program(text, self.entry or "solution"))
                yield i, programs[-1]

        results = dict(self.pool.map(extracted()))
        labels = [label_for(results[i].status, results[i].value_type, results[i].value, g.number, g.text, g.choice)[0]
                  for i, g in enumerate(golds)]
        rewards = [self.scheme.reward(label) for label in labels]
        step = getattr(trainer_state, "global_step", None)
        step = self.calls if step is None else int(step)
        self.calls += 1
        self.labels.update(labels)
        self.last = list(zip(labels, rewards))
        self.last_results = [results[i] for i in range(n)]
        if self._committer is not None:
            problems = columns.get("problem_id")
            if problems is None:
                raise ValueError("writing rollouts to the store needs a 'problem_id' column in the dataset")
            self._committer.put((step, self.rollouts, pd.Timestamp.now(), self.pool.executor_version,
                                 list(zip(problems, texts, programs, self.last_results, golds, rewards))))
        self.rollouts += n
        if log_metric is not None and n:
            log_metric("pad/accuracy", labels.count("correct") / n)
            log_metric("pad/runnable", sum(r.status == "ok" for r in results.values()) / n)
        if log_extra is not None:
            log_extra("pad_label", labels)
        return rewards

    def _golds(self, columns: Mapping[str, Any], n: int) -> list[Gold]:
        """Each completion's gold, from the dataset's columns (one value per completion)."""
        if self.gold_column not in columns:
            have = ", ".join(sorted(k for k in columns if not k.startswith(("trainer_", "log_")))) or "none"
            raise ValueError(f"the reward needs the gold answer: no {self.gold_column!r} column in the dataset "
                             f"(columns: {have}); name it with gold_column=")
        values = columns[self.gold_column]
        texts = columns.get(self.text_column) or [None] * n
        choices = columns.get(self.choice_column) or [None] * n
        if not (len(values) == len(texts) == len(choices) == n):
            raise ValueError(f"{n} completions but {len(values)} values in column {self.gold_column!r}")
        out, seen = [], {}
        for i, (value, text, choice) in enumerate(zip(values, texts, choices)):
            key = (repr(value), text, choice)
            if key not in seen:  # a GRPO batch repeats each problem's gold num_generations times
                try:
                    gold = Gold(None, None) if _missing(value) else parse_answer(value)
                except AnswerError as exc:
                    raise ValueError(f"column {self.gold_column!r}, row {i}: the gold answer {exc}") from None
                seen[key] = Gold(gold.number, gold.text if _missing(text) else str(text),
                                 choice=None if _missing(choice) or not choice else str(choice))
            out.append(seen[key])
        return out

    # ------------------------------------------------------------------ rollouts to the store
    def _rows(self, items: list) -> tuple[pd.DataFrame, Any]:
        """The programs and result rows of the rollouts handed over (on the committer's thread)."""
        programs, results = [], []
        timeout, memory = self.pool.timeout, self.pool.memory_mb
        for step, first, now, executor, batch in items:
            for k, (problem, text, code, res, gold, reward) in enumerate(batch):
                sample = first + k
                pid = student_program_id(problem, self.model, self.run_id, sample, 0, code)
                programs.append({"program_id": pid, "problem_id": problem, "origin": ORIGIN, "teacher": self.model,
                                 "sample_idx": sample, "program": code, "completion": text,
                                 "train_run_id": self.run_id, "train_step": step, "reward": reward})
                results.append(result_row(pid, res, gold.number, gold.text, timeout, memory, executor, now,
                                          problem_id=problem, origin=ORIGIN, teacher=self.model,
                                          gold_choice=gold.choice))
        return pd.DataFrame(programs), results_table(results)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Commit the rollouts still waiting, stop the committer and the sandbox pool."""
        try:
            if self._committer is not None:
                committer, self._committer = self._committer, None
                committer.close()
        finally:
            if self._store is not None:
                self._store.close()
                self._store = None
            if not self._closed:
                self._closed = True
                self.pool.close()

    def __enter__(self) -> "ExecutionReward":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _commit(store: Store, rows: tuple[pd.DataFrame, Any]) -> dict[str, int]:
    programs, results = rows
    store.insert_new("programs", programs, "program_id")
    return store.add_executions(results)
