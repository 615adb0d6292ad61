"""Scratch DuckDB files beside the store: where a stage's intermediate rows go (and spill)
instead of Python's memory, and how the store reads them back."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Iterator

import duckdb

from pad_data.store.sqltools import sql_literal

if TYPE_CHECKING:
    from pad_data.store.store import Store


@contextlib.contextmanager
def scratch_db(store: "Store", prefix: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A scratch DuckDB file in a new folder beside the store (on the same disk, where it spills),
    with half the store's budget, and its path; the folder is deleted afterwards."""
    tmp = tempfile.mkdtemp(prefix=f".pad-{prefix}-", dir=store.path.parent)
    path = os.path.join(tmp, f"{prefix}.duckdb")
    con = duckdb.connect(path, config={"memory_limit": store.share(0.5), "temp_directory": tmp,
                                       "preserve_insertion_order": False})
    try:
        yield con, path
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def attached(store: "Store", path: str, alias: str) -> Iterator[str]:
    """The closed scratch file ``path`` attached read-only to the store's connection as ``alias``."""
    store.con.execute(f"ATTACH {sql_literal(path)} AS {alias} (READ_ONLY)")
    try:
        yield alias
    finally:
        store.con.execute(f"DETACH {alias}")
