"""Scratch DuckDB files beside the store: where a stage's intermediate rows go (and spill)
instead of Python's memory, and how the store reads them back."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from typing import TYPE_CHECKING, Iterator

import duckdb

from pad_data.store.sqltools import sql_literal

if TYPE_CHECKING:
    from pad_data.store.store import Store


def new_scratch_folder(parent: str | os.PathLike | None, prefix: str) -> str:
    """A new folder ``.pad-PREFIX@PID@HOST@...`` in ``parent`` (None: the system's temp folder) for a
    stage's scratch files, which the stage deletes when it ends. A stage killed outright (SIGKILL,
    the OOM killer) cannot: so first the folders there of this host's processes that are gone are
    deleted (a scratch copy of a 10M-program store is GBs). A folder of a live process, or of
    another host sharing the disk, is left alone."""
    parent = tempfile.gettempdir() if parent is None else os.fspath(parent)
    host = socket.gethostname()
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            parts = entry.name.split("@")
            if len(parts) == 4 and parts[0].startswith(".pad-") and parts[2] == host and parts[1].isdigit() \
                    and not _alive(int(parts[1])) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f".pad-{prefix}@{os.getpid()}@{host}@", dir=parent)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def scratch_folder(parent: str | os.PathLike | None, prefix: str) -> Iterator[str]:
    """:func:`new_scratch_folder`, deleted when the block ends."""
    tmp = new_scratch_folder(parent, prefix)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def scratch_db(store: "Store", prefix: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A scratch DuckDB file in a new folder beside the store (on the same disk, where it spills:
    :func:`scratch_folder`), with half the store's budget, and its path; the folder is deleted afterwards."""
    with scratch_folder(store.path.parent, prefix) as tmp:
        path = os.path.join(tmp, f"{prefix}.duckdb")
        con = duckdb.connect(path, config={"memory_limit": store.share(0.5), "temp_directory": tmp,
                                           "preserve_insertion_order": False})
        try:
            yield con, path
        finally:
            con.close()


@contextlib.contextmanager
def attached(store: "Store", path: str, alias: str) -> Iterator[str]:
    """The closed scratch file ``path`` attached read-only to the store's connection as ``alias``."""
    store.con.execute(f"ATTACH {sql_literal(path)} AS {alias} (READ_ONLY)")
    try:
        yield alias
    finally:
        store.con.execute(f"DETACH {alias}")
