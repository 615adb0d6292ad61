"""Scratch DuckDB files beside the store: where a stage's intermediate rows go (and spill)
instead of Python's memory, and how the store reads them back."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Iterator

import duckdb

from pad_data.store.connection import duckdb_config
from pad_data.store.sqltools import sql_literal

if TYPE_CHECKING:
    from pad_data.store.store import Store


LOCK = ".lock"  # in a scratch folder: locked (flock) by the process using the folder
_HELD: dict[str, int] = {}  # this process's scratch folders -> their lock's descriptor


def new_scratch_folder(parent: str | os.PathLike | None, prefix: str) -> str:
    """A new folder ``.pad-PREFIX-...`` in ``parent`` (None: the system's temp folder) for a stage's
    scratch files, its :data:`LOCK` held by this process until :func:`remove_scratch_folder`.
    A stage killed outright (SIGKILL, the OOM killer) cannot delete its folder, and the kernel
    then drops its lock: so first the folders there whose lock nobody holds are deleted (a scratch
    copy of a 10M-program store is GBs). A lock is the process's, whatever its pid namespace or
    host (on a disk where locks reach them); a folder with no lock file is never deleted."""
    parent = tempfile.gettempdir() if parent is None else os.fspath(parent)
    _sweep(parent)
    tmp = tempfile.mkdtemp(prefix=f".pad-{prefix}-", dir=parent)
    fd = os.open(os.path.join(tmp, LOCK + "-new"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # locked before it has the name a sweep looks for: never seen unlocked while in use
        os.rename(os.path.join(tmp, LOCK + "-new"), os.path.join(tmp, LOCK))
    except OSError:  # no locks on this file system: the folder goes unswept
        os.close(fd)
        return tmp
    _HELD[tmp] = fd
    return tmp


def remove_scratch_folder(tmp: str) -> None:
    """Delete a folder of :func:`new_scratch_folder`, then let its lock go."""
    shutil.rmtree(tmp, ignore_errors=True)
    fd = _HELD.pop(tmp, None)
    if fd is not None:
        os.close(fd)


def _sweep(parent: str) -> None:
    """Delete the scratch folders in ``parent`` whose :data:`LOCK` nobody holds."""
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            if not entry.name.startswith(".pad-") or entry.path in _HELD or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                fd = os.open(os.path.join(entry.path, LOCK), os.O_RDWR | os.O_NOFOLLOW)
            except OSError:  # no lock file: not a scratch folder of this kind
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: in use
                os.close(fd)
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            os.close(fd)


@contextlib.contextmanager
def scratch_folder(parent: str | os.PathLike | None, prefix: str) -> Iterator[str]:
    """:func:`new_scratch_folder`, deleted when the block ends."""
    tmp = new_scratch_folder(parent, prefix)
    try:
        yield tmp
    finally:
        remove_scratch_folder(tmp)


@contextlib.contextmanager
def scratch_db(store: "Store", prefix: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """A scratch DuckDB file in a new folder beside the store (on the same disk, where it spills:
    :func:`scratch_folder`), with half the store's budget, and its path; the folder is deleted afterwards."""
    with scratch_folder(store.path.parent, prefix) as tmp:
        path = os.path.join(tmp, f"{prefix}.duckdb")
        con = duckdb.connect(path, config=duckdb_config(store.share(0.5), temp_directory=tmp,
                                                        preserve_insertion_order=False))
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
