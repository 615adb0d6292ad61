"""Snapshots as stored: their names, tables, content hash, and the one way they are written.

A snapshot's parameters, counts and content hash are a row of ``curations``; its rows are in
``curated_examples`` (programs) or ``refine_examples`` (refinement pairs). A name is never
overwritten: storing it again with the same content changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Iterable

import pandas as pd
import pyarrow as pa

from pad_data.stages.curate.params import CurateError, CurateParams
from pad_data.store import Store, attached, content_id

TASK_TABLES = {"program": "curated_examples", "refine": "refine_examples"}
TASK_COLUMNS = {
    "program": ["split", "problem_id", "program_id", "dataset", "question", "program", "answer", "answer_text",
                "gold_source", "agreement", "label", "teacher", "origin", "verdict", "preamble_id"],
    "refine": ["split", "problem_id", "faulty_program_id", "program_id", "dataset", "question", "faulty_program",
               "feedback", "program", "answer", "answer_text", "gold_source", "agreement", "label", "injection_kind",
               "teacher", "origin", "verdict", "preamble_id"],
}
# the columns of a snapshot's rows its content hash reads, per task (preamble_id: the preamble the
# row's programs ran after, when any)
HASHED = {"program": ["split", "program_id", "program", "verdict", "preamble_id"],
          "refine": ["split", "faulty_program_id", "program_id", "program", "verdict", "preamble_id"]}


def check_name(name: str) -> None:
    """A snapshot name is letters, digits, '-', '_' and '.' (CurateError otherwise)."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CurateError(f"bad snapshot name {name!r}: use letters, digits, '-', '_' and '.'")


def content_hash(p: CurateParams, rows: Iterable[pa.RecordBatch]) -> str:
    """The content hash of a snapshot with parameters ``p`` and rows ``rows`` (in their stored
    order, with the :data:`HASHED` columns of ``p.task``; a batch without ``preamble_id`` has
    none): 16 hex digits of a sha256 over the parameters and each row's split, ids, program text,
    verdict and preamble."""
    h = hashlib.sha256(p.to_json().encode())
    for batch in rows:
        columns = [batch.column(c).to_pylist() if c in batch.schema.names else [None] * batch.num_rows
                   for c in HASHED[p.task]]
        if p.task == "program":
            columns.insert(1, [""] * batch.num_rows)
        for split, faulty_id, pid, program, verdict, preamble in zip(*columns):
            h.update(_hash_line(split, faulty_id, pid, program, verdict, preamble))
    return h.hexdigest()[:16]


def _hash_line(split: str, faulty_id: str, pid: str, program: str, verdict: str | None,
               preamble: str | None = None) -> bytes:
    """One row's part of a snapshot's content hash (a row without a verdict or a preamble has no
    field for it, so snapshots without them keep their hash)."""
    judged = f"\x1f{verdict}" if isinstance(verdict, str) else ""
    after = f"\x1fpreamble:{preamble}" if isinstance(preamble, str) else ""
    return (f"{split}\x1f{faulty_id + chr(31) if faulty_id else ''}{pid}\x1f{content_id(program)}{judged}{after}"
            "\n").encode()


def snapshot_task(store: Store, name: str) -> str:
    """``program`` or ``refine``: what snapshot ``name`` holds (CurateError if there is none)."""
    rows = store.con.execute("SELECT params FROM curations WHERE name = ?", [name]).fetchall()
    if not rows:
        raise CurateError(f"no curated snapshot named {name!r} (see `pad curate --list`)")
    return json.loads(rows[0][0]).get("task", "program")


def list_curations(store: Store) -> pd.DataFrame:
    """Every snapshot, oldest first; ``deleted_datasets``: the datasets its rows come from that the
    store no longer holds (``pad delete``: the snapshot keeps its copies of their rows)."""
    return store.df(
        """WITH used AS (SELECT DISTINCT name, dataset FROM curated_examples
                         UNION SELECT DISTINCT name, dataset FROM refine_examples),
                gone AS (SELECT name, list(dataset ORDER BY dataset) AS deleted_datasets FROM used
                         WHERE dataset NOT IN (SELECT DISTINCT dataset FROM problems) GROUP BY name)
           SELECT c.name, c.content_hash, c.created_at, c.counts, c.params,
                  coalesce(g.deleted_datasets, []) AS deleted_datasets
           FROM curations c LEFT JOIN gone g USING (name) ORDER BY c.created_at""")


def append_snapshot(store: Store, name: str, p: CurateParams, digest: str, counts: dict, path: str) -> dict:
    """:func:`store_snapshot` of table ``snap`` of the DuckDB file ``path``, attached read-only:
    one ``INSERT ... SELECT`` that DuckDB writes out as it goes, in the file's row order, with
    the store's memory capped (an append needs a few blocks at a time; batches appended through
    Python would sit in the store's memory until the commit)."""
    with attached(store, path, "pad_snapshot"), store.capped("256MB"):  # or the budget, when lower
        return store_snapshot(store, name, p, digest, counts, "SELECT * FROM pad_snapshot.snap")


def store_snapshot(store: Store, name: str, p: CurateParams, digest: str, counts: dict, rows_sql: str) -> dict:
    """Store snapshot ``name`` (its rows: ``rows_sql``, with the task's columns, in the order
    stored) unless it exists: the same content changes nothing, other content is a CurateError.
    Returns its counts and hash (``created`` False if it existed)."""
    existing = store.con.execute("SELECT content_hash FROM curations WHERE name = ?", [name]).fetchall()
    if existing:
        if existing[0][0] == digest:
            return {"name": name, "created": False, "content_hash": digest, **counts}
        raise CurateError(f"snapshot {name!r} exists with different content (hash {existing[0][0]}, "
                          f"now {digest}); snapshots are immutable: choose a new name")
    store.add_snapshot(name, p.to_json(), digest, json.dumps(counts), TASK_TABLES[p.task], TASK_COLUMNS[p.task],
                       rows_sql)
    return {"name": name, "created": True, "content_hash": digest, **counts}
