"""CPU-bound work over many items (parsing, rewriting programs), in worker processes when there
are enough items to pay for starting them."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterable, Iterator

from pad_data.rules.options import usable_cores

PARALLEL_FROM = 20_000  # items in all from which the work runs in worker processes
CHUNK = 2_000  # items per task sent to a worker


# The modules whose functions stages map: imported once in the fork server, so a worker
# forked from it holds only what its work adds (4 MB, against 55 MB importing them itself).
MAPPED_MODULES = ("pad_data.stages.curate.dedup", "pad_data.stages.inject")


@contextlib.contextmanager
def mapper(n: int) -> Iterator[Callable[..., list]]:
    """``map`` for ``n`` items in all (over one list or several): a list of ``fn(*args)`` in
    order, in worker processes (started once, for every call) when ``n`` makes that worth it,
    one per core this process may use. ``fn`` must be a module-level function (it is pickled
    by name); those of :data:`MAPPED_MODULES` are imported once, in the fork server.

    Workers come from a fork server (a small process started once), not forked from this one:
    a fork of a stage holding DuckDB's buffers would keep every page of them alive in each worker
    for as long as it runs, whatever DuckDB frees meanwhile. Where the fork server cannot start
    (its socket's path too long), the work runs in this process."""
    cores = usable_cores()
    context = _fork_server() if n >= PARALLEL_FROM and cores >= 2 else None
    if context is None:
        yield lambda fn, *lists: list(map(fn, *lists))
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=cores, mp_context=context) as ex:
        def run(fn, *lists):
            with _main_script_hidden():  # the workers start as the tasks are handed out
                results = ex.map(fn, *lists, chunksize=CHUNK)
            return list(results)

        yield run


def _fork_server():
    """The ``forkserver`` context, its server running (started with :data:`MAPPED_MODULES`
    imported), or None where it cannot start."""
    import multiprocessing
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(MAPPED_MODULES))
    try:
        with _main_script_hidden():
            forkserver.ensure_running()
    except OSError:
        return None
    return context


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """A worker started meanwhile does not run this process's main script again: multiprocessing
    imports the script a process was started with in each worker it starts (but with ``fork``),
    and a user's script that calls pad at top level, unguarded, would run again there (a
    generation paid twice). The mapped functions live in pad's own modules."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    for k in saved:
        setattr(main, k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def repeat(value: object, n: int) -> Iterable:
    """``value`` ``n`` times: a constant argument of a :func:`mapper` call."""
    return [value] * n
