"""Worker results -> ``executions`` rows, labeled against the gold answer.

The one function that turns a :class:`~pad_data.sandbox.pool.ExecResult` into the row
:meth:`Store.add_executions <pad_data.store.Store.add_executions>` stores, for the local
engine, the Ray engine, the review app's fixes and the student evaluation alike.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pyarrow as pa

from pad_data.rules.labels import label_for
from pad_data.sandbox.pool import ExecResult
from pad_data.store import RESULT_COLUMNS, RESULT_TYPES

ARROW_TYPES = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
               "TIMESTAMP": pa.timestamp("us")}
RESULT_SCHEMA = pa.schema([(c, ARROW_TYPES[t]) for c, t in RESULT_TYPES.items()])


def _missing(x: Any) -> bool:
    """None, NaN or pandas' NA (what a NULL becomes on its way through a frame or a Parquet file)."""
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def result_row(program_id: str, res: ExecResult, gold: float | None, gold_text: str | None, timeout: float,
               memory_mb: int, executor: str, now: pd.Timestamp, problem_id: str | None = None,
               dataset: str | None = None, origin: str | None = None, teacher: str | None = None,
               prev_seq: int | None = None, gold_choice: str | None = None, preamble_id: str | None = None) -> dict:
    """A result row (:data:`~pad_data.store.RESULT_COLUMNS`) for one program: its execution (after
    preamble ``preamble_id``, if any), labeled against ``gold``/``gold_text`` (and ``gold_choice``, a
    multiple-choice gold's letter), and the program's context as the engine read it (``prev_seq``:
    its current execution then; context left out is looked up when stored)."""
    gold = None if _missing(gold) else float(gold)
    gold_text = None if _missing(gold_text) else gold_text
    gold_choice = None if _missing(gold_choice) else gold_choice
    label, num = label_for(res.status, res.value_type, res.value, gold, gold_text, gold_choice)
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
            "memory_mb": memory_mb, "executor": executor, "executed_at": now,
            "preamble_id": None if _missing(preamble_id) else preamble_id,
            "problem_id": problem_id, "dataset": dataset, "origin": origin,
            "teacher": None if _missing(teacher) else teacher,
            "prev_seq": None if _missing(prev_seq) else int(prev_seq)}


def results_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of :func:`result_row` as a typed frame (what a Ray task writes to its result shard)."""
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    df["error_line"] = df["error_line"].astype("Int32")
    df["prev_seq"] = df["prev_seq"].astype("Int64")
    return df


def results_table(rows: list[dict]) -> pa.Table:
    """Rows of :func:`result_row` as an Arrow table: what the local engine's committer stores.
    DuckDB reads it without Python's GIL, so a commit is not slowed by the stage's own thread."""
    return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
