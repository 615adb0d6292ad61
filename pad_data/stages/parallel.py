"""CPU-bound work over many items (parsing, rewriting programs), in worker processes when there
are enough items to pay for starting them."""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterable, Iterator

PARALLEL_FROM = 20_000  # items in all from which the work runs in worker processes
CHUNK = 2_000  # items per task sent to a worker


@contextlib.contextmanager
def mapper(n: int) -> Iterator[Callable[..., list]]:
    """``map`` for ``n`` items in all (over one list or several): a list of ``fn(*args)`` in
    order, in worker processes (started once, for every call) when ``n`` makes that worth it.
    ``fn`` must be a module-level function (it is pickled by name)."""
    if n < PARALLEL_FROM or (os.cpu_count() or 1) < 2:
        yield lambda fn, *lists: list(map(fn, *lists))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Workers come from a fork server (a small process started once), not forked from this one:
    # a fork of a stage holding DuckDB's buffers would keep every page of them alive in each
    # worker for as long as it runs, whatever DuckDB frees meanwhile (and DuckDB's threads may
    # hold locks at the fork).
    with ProcessPoolExecutor(max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("forkserver")) as ex:
        yield lambda fn, *lists: list(ex.map(fn, *lists, chunksize=CHUNK))


def repeat(value: object, n: int) -> Iterable:
    """``value`` ``n`` times: a constant argument of a :func:`mapper` call."""
    return [value] * n
