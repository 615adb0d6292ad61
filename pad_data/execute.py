"""The execute stage: run every program that has no execution yet, label it, store it.

Programs are read from the store in pages (keyset pagination on ``program_id``), streamed
through a :class:`~pad_data.sandbox.pool.SandboxPool`, labeled against their problem's gold
answer, and written back in transactions of ``commit_every`` rows. Interrupting it keeps
every committed batch; rerunning executes only what is missing. ``rerun=True`` executes
the selected programs again and appends new rows (history is kept; the
``labeled_programs`` view shows the latest).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Iterator

import pandas as pd

from .labels import label_for
from .sandbox.pool import ExecResult, SandboxPool
from .store import Store

PAGE = 20_000
EXEC_COLUMNS = ["program_id", "status", "label", "value", "value_num", "value_type", "error_type",
                "error_message", "error_line", "stdout", "duration_ms", "timeout_s", "memory_mb",
                "executor", "executed_at"]


def _selection(dataset: str | None, rerun: bool, origin: str | None) -> tuple[str, list]:
    where, params = [], []
    if dataset:
        where.append("pr.dataset = ?")
        params.append(dataset)
    if origin:
        where.append("p.origin = ?")
        params.append(origin)
    if not rerun:
        where.append("NOT EXISTS (SELECT 1 FROM executions e WHERE e.program_id = p.program_id)")
    return " AND ".join(where) or "TRUE", params


def pending_count(store: Store, dataset: str | None = None, rerun: bool = False, origin: str | None = None) -> int:
    cond, params = _selection(dataset, rerun, origin)
    return store.scalar(
        f"SELECT count(*) FROM programs p JOIN problems pr USING (problem_id) WHERE {cond}", params)


def _pages(store: Store, dataset: str | None, rerun: bool, limit: int | None,
           origin: str | None = None) -> Iterator[tuple]:
    cond, params = _selection(dataset, rerun, origin)
    last, served = "", 0
    while limit is None or served < limit:
        n = PAGE if limit is None else min(PAGE, limit - served)
        rows = store.con.execute(
            f"SELECT p.program_id, p.program, pr.answer, pr.answer_text FROM programs p "
            f"JOIN problems pr USING (problem_id) WHERE {cond} AND p.program_id > ? "
            f"ORDER BY p.program_id LIMIT {n}", params + [last]).fetchall()
        if not rows:
            return
        yield from rows
        served += len(rows)
        last = rows[-1][0]


def result_row(program_id: str, res: ExecResult, gold: float | None, gold_text: str | None,
               timeout: float, memory_mb: int, executor: str, now: pd.Timestamp) -> dict:
    """An ``executions`` row for one result, labeled against the gold answer."""
    label, num = label_for(res.status, res.value_type, res.value, gold, gold_text)
    if res.value is None:
        shown = res.value_repr
    elif isinstance(res.value, str):
        shown = res.value
    else:
        shown = repr(res.value) if not isinstance(res.value, bool) else str(res.value)
    return {"program_id": program_id, "status": res.status, "label": label, "value": shown,
            "value_num": num, "value_type": res.value_type, "error_type": res.error_type,
            "error_message": res.error_message, "error_line": res.error_line,
            "stdout": res.stdout, "duration_ms": res.duration_ms, "timeout_s": timeout,
            "memory_mb": memory_mb, "executor": executor, "executed_at": now}


def insert_executions(store: Store, rows: list[dict]) -> None:
    """Append ``executions`` rows (from :func:`result_row`); the caller owns the transaction."""
    df = pd.DataFrame(rows, columns=EXEC_COLUMNS)
    df["error_line"] = df["error_line"].astype("Int32")
    store.con.register("_pad_exec_rows", df)
    try:
        store.con.execute(f"INSERT INTO executions ({', '.join(EXEC_COLUMNS)}) "
                          f"SELECT {', '.join(EXEC_COLUMNS)} FROM _pad_exec_rows")
    finally:
        store.con.unregister("_pad_exec_rows")


def _write(store: Store, rows: list[dict]) -> None:
    with store.transaction():
        insert_executions(store, rows)


def execute(store: Store, dataset: str | None = None, timeout: float = 2.0, memory_mb: int = 512,
            workers: int = 2, rerun: bool = False, limit: int | None = None,
            isolation_level: str = "auto", commit_every: int = 10_000, origin: str | None = None,
            entry: str | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Execute and label pending programs (of ``dataset``/``origin`` when given); returns
    counts per label, seconds, programs/s, the isolation level and, below the OS sandbox, a
    warning. ``entry``: function or variable holding the answer [default: ``solution()``, else
    ``ans``]."""
    total = pending_count(store, dataset, rerun, origin)
    if limit is not None:
        total = min(total, limit)
    labels: Counter = Counter()
    meta: dict[str, tuple] = {}
    done = 0
    t0 = time.perf_counter()
    with SandboxPool(workers=workers, timeout=timeout, memory_mb=memory_mb,
                     isolation_level=isolation_level, entry=entry) as pool:

        def items():
            for pid, program, gold, gold_text in _pages(store, dataset, rerun, limit, origin):
                meta[pid] = (gold, gold_text)
                yield pid, program

        buf: list[dict] = []
        now = pd.Timestamp.now()
        for pid, res in pool.map(items()):
            executor = pool.executor_version  # known once a worker is ready (seccomp or not)
            gold, gold_text = meta.pop(pid)
            row = result_row(pid, res, gold, gold_text, timeout, memory_mb, executor, now)
            labels[row["label"]] += 1
            buf.append(row)
            if len(buf) >= commit_every:
                _write(store, buf)
                done += len(buf)
                buf = []
                now = pd.Timestamp.now()
                if progress:
                    progress(done, total)
        if buf:
            _write(store, buf)
            done += len(buf)
        if progress:
            progress(done, total)
        stats = dict(pool.stats)
        executor, isolation, warning = pool.executor_version, pool.isolation, pool.warning
    seconds = time.perf_counter() - t0
    return {"executed": done, "labels": dict(labels), "seconds": seconds,
            "programs_per_s": done / seconds if seconds > 0 and done else 0.0,
            "executor": executor if done else None, "isolation": isolation, "warning": warning,
            "pool": stats}
