"""The execute stage: run every program that has no execution yet, label it, store it.

The programs to execute are copied once into a scratch DuckDB file beside the store
(:meth:`~pad_data.store.Store.pending_snapshot`: one pass over the store, read-only, whatever
its size; the scratch file and the store each with half the memory budget), read from there in batches, streamed through a
:class:`~pad_data.sandbox.pool.SandboxPool`, labeled against their problem's gold
answer (:func:`~pad_data.stages.results.result_row`), and stored by a
:class:`~pad_data.store.writer.GroupCommitter`: about once a second it opens the store, stores
what was made (:meth:`~pad_data.store.Store.add_executions`), commits and closes it, so other
processes can read the store while the stage runs. Programs added while it runs wait for the
next run. Interrupting it keeps every result handed over; rerunning executes only what is
missing. ``rerun=True`` executes the selected programs again and adds new executions (history
is kept; ``labeled_programs`` shows the newest).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from typing import Callable, Iterator

import duckdb
import pandas as pd

from pad_data.stages.results import result_row, results_table
from pad_data.sandbox.pool import SandboxPool
from pad_data.store import Store
from pad_data.store.writer import GroupCommitter

PAGE = 20_000
HANDOFF_S = 0.2  # results go to the committer at least this often


def results_of(chunks: list[list[dict]]):
    """What the committer stores: the result rows (:func:`~pad_data.stages.results.result_row`) handed
    over, as one Arrow table, made before the store is taken."""
    return results_table([row for chunk in chunks for row in chunk])


def execute(store: Store, dataset: str | None = None, timeout: float = 2.0, memory_mb: int = 512,
            workers: int = 2, rerun: bool = False, limit: int | None = None,
            isolation_level: str = "auto", commit_every: int = 10_000, origin: str | None = None,
            entry: str | None = None, progress: Callable[[int, int], None] | None = None,
            commit_interval: float = 1.0) -> dict:
    """Execute and label pending programs (of ``dataset``/``origin`` when given); returns
    counts per label, seconds, programs/s, the isolation level and, below the OS sandbox, a
    warning. ``entry``: function or variable holding the answer [default: ``solution()``, else
    ``ans``]. Results are handed to the committer every ``commit_every`` rows (or 0.2 s), and
    committed about every ``commit_interval`` seconds; ``progress(handed over, total)``."""
    store.release()  # not held while the sandbox starts
    total = 0
    labels: Counter = Counter()
    meta: dict[str, tuple] = {}
    handed = 0
    t0 = time.perf_counter()
    # the scratch copy beside the store, and half the budget for it, half for the store's commits
    with tempfile.TemporaryDirectory(prefix=".pad-execute-", dir=store.path.parent,
                                     ignore_cleanup_errors=True) as scratch, \
            store.capped(store.share(0.5)), \
            SandboxPool(workers=workers, timeout=timeout, memory_mb=memory_mb,
                        isolation_level=isolation_level, entry=entry) as pool, \
            GroupCommitter(store, Store.add_executions, interval=commit_interval, on_commit=labels.update,
                           prepare=results_of) as committer:
        path = os.path.join(scratch, "pending.duckdb")

        def items() -> Iterator[tuple[str, str]]:
            nonlocal total
            # the committer's thread copies them while the sandbox starts (the store read-only)
            total = committer.submit(lambda st: st.pending_snapshot(path, dataset, origin, rerun, limit)).result()
            con = duckdb.connect(path, read_only=True, config={"memory_limit": store.share(0.5)})
            try:
                for batch in con.sql("SELECT * FROM pending").to_arrow_reader(PAGE):
                    for pid, program, *context in zip(*(c.to_pylist() for c in batch.columns)):
                        meta[pid] = context
                        yield pid, program
            finally:
                con.close()

        buf: list[dict] = []
        now = pd.Timestamp.now()
        first = 0.0  # when the first result in buf came
        for pid, res in pool.map(items()):
            executor = pool.executor_version  # known once a worker is ready (seccomp or not)
            gold, gold_text, problem, ds, org, teacher, prev_seq, gold_choice = meta.pop(pid)
            if not buf:
                first = time.monotonic()
            buf.append(result_row(pid, res, gold, gold_text, timeout, memory_mb, executor, now, problem_id=problem,
                                  dataset=ds, origin=org, teacher=teacher, prev_seq=prev_seq,
                                  gold_choice=gold_choice))
            if len(buf) >= commit_every or time.monotonic() - first >= HANDOFF_S:
                committer.put(buf)
                handed += len(buf)
                buf = []
                now = pd.Timestamp.now()
                if progress:
                    progress(handed, total)
        if buf:
            committer.put(buf)
            handed += len(buf)
        committer.close()
        if progress:
            progress(handed, total)
        stats = dict(pool.stats)
        executor, isolation, warning = pool.executor_version, pool.isolation, pool.warning
    seconds = time.perf_counter() - t0
    done = sum(labels.values())
    return {"executed": done, "labels": dict(labels), "seconds": seconds,
            "programs_per_s": done / seconds if seconds > 0 and done else 0.0,
            "executor": executor if done else None, "isolation": isolation, "warning": warning,
            "pool": stats, "commits": committer.commits,
            "store_held_s": sum(h[1] for h in committer.holds),
            "longest_hold": max(committer.holds, key=lambda h: h[1], default=(0.0, 0.0, ""))[1:]}
