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

A program runs after its preamble (code run before it in its namespace: imports, helpers): the one
it was imported with, else the ``preamble`` file given here; each execution records the preamble it
ran with. A program imported with another preamble than the file given is an error (its preamble is
part of what it is), before anything runs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Callable, Iterator

import duckdb
import pandas as pd

from pad_data.stages.results import result_row, results_table
from pad_data.stages.sources import IngestError, read_preamble
from pad_data.sandbox.pool import SandboxPool
from pad_data.store import Store, duckdb_config, scratch_folder
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
            commit_interval: float = 1.0, preamble: str | os.PathLike | None = None) -> dict:
    """Execute and label pending programs (of ``dataset``/``origin`` when given); returns
    counts per label, seconds, programs/s, the isolation level and, below the OS sandbox, a
    warning. ``entry``: function or variable holding the answer [default: ``solution()``, else
    ``ans``]. ``preamble``: a file of code to run before each program imported without one (see
    the module docstring). Results are handed to the committer every ``commit_every`` rows (or
    0.2 s), and committed about every ``commit_interval`` seconds; ``progress(handed over, total)``."""
    pre_id = _store_preamble(store, preamble, dataset, origin, rerun) if preamble is not None else None
    store.release()  # not held while the sandbox starts
    total = 0
    labels: Counter = Counter()
    meta: dict[str, tuple] = {}
    handed = 0
    t0 = time.perf_counter()
    # the scratch copy beside the store, and half the budget for it, half for the store's commits
    with scratch_folder(store.path.parent, "execute") as scratch, \
            store.capped(store.share(0.5)), \
            SandboxPool(workers=workers, timeout=timeout, memory_mb=memory_mb,
                        isolation_level=isolation_level, entry=entry) as pool, \
            GroupCommitter(store, Store.add_executions, interval=commit_interval, on_commit=labels.update,
                           prepare=results_of) as committer:
        path = os.path.join(scratch, "pending.duckdb")

        def items() -> Iterator[tuple[str, str]]:
            nonlocal total
            # the committer's thread copies them while the sandbox starts (the store read-only)
            total = committer.submit(lambda st: st.pending_snapshot(path, dataset, origin, rerun, limit,
                                                                     pre_id)).result()
            con = duckdb.connect(path, read_only=True, config=duckdb_config(store.share(0.5)))
            try:
                for batch in con.sql("SELECT * FROM pending").to_arrow_reader(PAGE):
                    for pid, program, *context, pre, text in zip(*(c.to_pylist() for c in batch.columns)):
                        if pre is not None and text is None:
                            raise ValueError(f"program {pid}: its preamble {pre} is not in the store")
                        meta[pid] = context + [pre]
                        yield pid, program, text
            finally:
                con.close()

        buf: list[dict] = []
        now = pd.Timestamp.now()
        first = 0.0  # when the first result in buf came
        for pid, res in pool.map(items()):
            executor = pool.executor_version  # known once a worker is ready (seccomp or not)
            gold, gold_text, problem, ds, org, teacher, prev_seq, gold_choice, pre = meta.pop(pid)
            if not buf:
                first = time.monotonic()
            buf.append(result_row(pid, res, gold, gold_text, timeout, memory_mb, executor, now, problem_id=problem,
                                  dataset=ds, origin=org, teacher=teacher, prev_seq=prev_seq,
                                  gold_choice=gold_choice, preamble_id=pre))
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
            "pool": stats, "commits": committer.commits, "preamble": pre_id,
            "store_held_s": sum(h[1] for h in committer.holds),
            "longest_hold": max(committer.holds, key=lambda h: h[1], default=(0.0, 0.0, ""))[1:]}


def _store_preamble(store: Store, path: str | os.PathLike, dataset: str | None, origin: str | None,
                    rerun: bool) -> str:
    """Read preamble file ``path`` and store it; its id. An IngestError, before anything is stored,
    when a program to execute was imported with another preamble."""
    pre = read_preamble(path)
    query, params = store.pending_query(dataset, origin, rerun)
    n, other = store.con.execute(f"SELECT count(*), min(preamble_id) FROM ({query}) WHERE preamble_id <> ?",
                                 params + [pre.preamble_id]).fetchall()[0]
    if n:
        raise IngestError(f"--preamble {path}: {n:,} of the programs to execute were imported with another "
                          f"preamble ({other}), which they run with: leave out --preamble, or select other "
                          "programs (--dataset, --origin)")
    with store.transaction():
        store.insert_new("preambles", pd.DataFrame([pre.row()]), "preamble_id")
    return pre.preamble_id
