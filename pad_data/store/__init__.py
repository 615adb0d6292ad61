"""The DuckDB store: one file, the single source of truth, with a versioned schema.

``Store(path)`` opens (creating or upgrading) the file. Every stage writes through
``store.transaction()`` so a batch is committed whole or not at all. IDs are content
hashes (``problem_id``, ``program_id``), and inserts skip rows that already exist, so
re-running any stage never duplicates rows.

A live store: DuckDB lets one process write a file, and no other process open it meanwhile,
not even to read. So a long stage holds the file only while it commits: it hands its rows
to a :class:`~pad_data.store.writer.GroupCommitter`, which opens the store, writes about a second
of work, commits and closes it (:meth:`Store.release`). Whoever finds the store held (a
reader, or a stage wanting to commit) waits and retries (:func:`connect`) for up to
``$PAD_BUSY_TIMEOUT`` seconds (default 10) before saying "the store is busy".

Labels: ``executions`` keeps every execution ever stored (``seq`` numbers them in the order
they were stored); ``program_labels`` holds each executed program's current one (its ``seq``,
label, status and error type, with the program's dataset, origin and teacher), written in
the same transaction by :meth:`Store.add_executions`, the one insert every engine uses. Label
counts read ``program_labels`` alone; ``labeled_programs`` joins it to the programs. A gold
answer that changes relabels the stored executions (:func:`pad_data.rules.labels.relabel`).

Every write to a store table goes through a :class:`Store` method. The package's other
modules: :mod:`~pad_data.store.schema` (version, views, column lists),
:mod:`~pad_data.store.migrations`, :mod:`~pad_data.store.ids` (content ids),
:mod:`~pad_data.store.sqltools` (quoting, list parameters, registered frames, the read-only
guard), :mod:`~pad_data.store.journal` (the generate journal), :mod:`~pad_data.store.connection`
(opening the file, waiting while it is busy).
"""

from __future__ import annotations

import importlib

# Where each name lives; loaded on first use, so that `pad sql` and `pad stats` (which import
# live_reads and paths from here) start without loading DuckDB.
_HOMES = {
    "Store": "store", "PENDING_BATCH": "store",
    "StoreError": "connection", "connect": "connection", "busy_timeout": "connection", "duckdb_config": "connection",
    "content_id": "ids", "normalize_question": "ids", "problem_id": "ids", "program_id": "ids",
    "DEFAULT_DB": "paths", "resolve_path": "paths",
    "CONSENSUS_LABEL": "schema", "ORIGINS": "schema", "PENDING_COLUMNS": "schema", "RESULT_COLUMNS": "schema",
    "RESULT_TYPES": "schema", "SCHEMA_VERSION": "schema",
    "scratch_db": "scratch", "attached": "scratch", "scratch_folder": "scratch", "new_scratch_folder": "scratch",
    "remove_scratch_folder": "scratch",
    "any_of": "sqltools", "copy_into": "sqltools", "registered": "sqltools", "sql_literal": "sqltools",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'pad_data.store' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pad_data.store.{_HOMES[name]}"), name)
