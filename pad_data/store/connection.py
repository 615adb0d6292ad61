"""Opening a store's file: DuckDB lets one process hold it at a time, so an open waits its turn."""

from __future__ import annotations

import os
import time

import duckdb

BUSY_TIMEOUT_S = 10.0  # how long an open waits for another process to let go of the store
# DuckDB needs 128 MiB a thread at the very least; a sort of 240k long programs still failed
# on 2 threads in 192 MiB (and passed in 256)
THREAD_MEMORY = 192 * 2**20


class StoreError(Exception):
    """A store that cannot be used: newer schema, locked by another process, not DuckDB."""


def busy_timeout() -> float:
    """Seconds an open waits for a store another process holds: ``$PAD_BUSY_TIMEOUT``, else 10."""
    raw = os.environ.get("PAD_BUSY_TIMEOUT")
    try:
        return max(0.0, float(raw)) if raw else BUSY_TIMEOUT_S
    except ValueError:
        raise StoreError(f"PAD_BUSY_TIMEOUT must be a number of seconds, got {raw!r}") from None


def threads_for(memory: int | str) -> int:
    """DuckDB threads for a connection capped at ``memory`` (bytes, or a size such as
    ``'512MiB'``): one per :data:`THREAD_MEMORY`, at least one, at most the cores this process may use."""
    from pad_data.rules.options import size_bytes, usable_cores

    capped = size_bytes(memory) if isinstance(memory, str) else memory
    return max(1, min(usable_cores(), capped // THREAD_MEMORY))


def duckdb_config(memory: int | str, **settings) -> dict:
    """The config of a DuckDB connection capped at ``memory``: that cap and :func:`threads_for` it."""
    return {"memory_limit": memory if isinstance(memory, str) else f"{memory}B", "threads": threads_for(memory),
            **settings}


def connect(path: str | os.PathLike, read_only: bool = False, wait: float | None = None,
            config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying every few milliseconds while another process holds the
    file (a stage committing, or a reader), or another connection in this process holds it in the
    other mode (DuckDB opens a file read-only or read-write per process: a `pad sql` run through
    the Python API while a background writer reopens its store), for up to ``wait`` seconds
    [default: :func:`busy_timeout`]; then a StoreError "the store is busy"."""
    wait = busy_timeout() if wait is None else wait
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            msg = str(exc).splitlines()[0]
            if "lock" not in msg.lower() and "different configuration" not in msg:
                if isinstance(exc, duckdb.ConnectionException):
                    raise StoreError(f"{path}: not a pad store: {msg}") from None
                raise StoreError(f"{path}: cannot open store: {msg}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError(f"{path}: the store is busy (another process, or another "
                                 f"connection of this one in the other mode, held it for {wait:g} s); "
                                 "try again, or wait longer with PAD_BUSY_TIMEOUT=SECONDS") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.02)
        except duckdb.Error as exc:
            raise StoreError(f"{path}: not a pad store: {str(exc).splitlines()[0]}") from None
