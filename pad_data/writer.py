"""Group commits on a thread that holds the store only while it commits.

A long stage (execute, generate) hands what it makes to a :class:`GroupCommitter` and goes on
working. The committer's thread gathers it and, about once per ``interval`` seconds (and
never holding the store more than a third of the time: a slow commit spaces the next ones
out), opens the store, writes everything gathered in one transaction, commits and closes it again
(:meth:`~pad_data.store.Store.release`), so between commits any other process (``pad sql``,
``pad stats``, the review app, another stage) can open it. Work that needs no store (making
the frame of rows: ``prepare``) is done before taking it. Reads a stage needs on the way
(execute's copy of the programs to run) run on the same thread, between commits, on the store opened
read-only, which other readers share (:meth:`submit`).

Finding the store held by another process, the committer waits for it (up to ``patience``
seconds) while the stage keeps working. ``close()`` commits whatever was handed over (also
on Ctrl-C); a kill -9 loses the work since the last commit (about ``interval``, more on a
busy machine), which a rerun redoes.

A stage whose work cannot be redone for free (paid teacher responses) passes ``salvage``: when a
commit fails, the items it held and every item handed over afterwards go to ``salvage(items)``
(a journal) instead of being dropped, ``failed`` is set so the stage can stop early, and
``close()`` raises the commit's error.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, TypeVar

from .store import Store

T = TypeVar("T")
PATIENCE_S = 600.0  # a stage waits this long for a reader to let go before it gives up
GAP = 2.0  # after a commit, the store stays free at least this many times as long as the commit held it


class GroupCommitter:
    """Commit items with ``commit(store, prepare(items))`` on a thread, about every ``interval`` seconds.

    ``prepare`` (say, making a frame of the rows) runs before the store is opened, so the store
    is held only for ``commit``, which runs inside a transaction; its return value goes to
    ``on_commit`` (on the committer's thread). The first item after a quiet spell is committed
    at once.
    """

    def __init__(self, store: Store, commit: Callable[[Store, Any], Any], interval: float = 1.0,
                 on_commit: Callable[[Any], None] | None = None, patience: float = PATIENCE_S,
                 prepare: Callable[[list], Any] | None = None, salvage: Callable[[list], None] | None = None):
        self.store, self.commit, self.interval, self.on_commit = store, commit, interval, on_commit
        self.patience, self.prepare, self.salvage = patience, prepare, salvage
        self.failed = threading.Event()  # set when a commit failed
        self.error: BaseException | None = None
        self.commits = 0
        self.holds: list[tuple[float, float, str]] = []  # (start, seconds, what) of each time the store was held
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pad-commit", daemon=True)
        self._closed = False

    # ------------------------------------------------------------------ the stage's side
    def __enter__(self) -> "GroupCommitter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.store.release()  # the stage's own thread must not hold the store meanwhile
        self._thread.start()

    def put(self, item: Any) -> None:
        """Hand over an item to commit; raises the committer's error, if it failed (with
        ``salvage``, the item is salvaged instead and the error waits for ``close()``)."""
        if self.salvage is None:
            self._raise()
        self._queue.put(("item", item))

    def submit(self, fn: Callable[[Store], T]) -> "Future[T]":
        """Run ``fn(store)`` on the committer's thread, between commits, on the store opened
        read-only (other readers go on meanwhile); its result as a Future."""
        self._raise()
        fut: Future = Future()
        self._queue.put(("call", fn, fut))
        return fut

    def close(self) -> None:
        """Commit everything handed over, stop the thread, and raise its error if it failed."""
        if not self._closed:
            self._closed = True
            if self._thread.is_alive():
                self._queue.put(("stop",))
                self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    # ------------------------------------------------------------------ the committer's thread
    def _run(self) -> None:
        items: list = []
        due = -float("inf")  # when the next commit may begin
        wait, self.store.wait = self.store.wait, max(self.store.wait, self.patience)
        try:
            while True:
                timeout = None if not items else max(0.0, due - time.monotonic())
                jobs = []
                try:
                    jobs.append(self._queue.get(timeout=timeout))
                except queue.Empty:
                    pass  # the interval is over: commit what waits
                while True:  # and take everything already queued
                    try:
                        jobs.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                items += [j[1] for j in jobs if j[0] == "item"]
                calls = [j for j in jobs if j[0] == "call"]
                stop = any(j[0] == "stop" for j in jobs)
                if items and (stop or time.monotonic() >= due):
                    began = held = time.monotonic()
                    try:
                        batch = self.prepare(items) if self.prepare else items  # before taking the store
                        held = time.monotonic()
                        self._commit(batch)
                    except BaseException:
                        if self.salvage is not None:
                            self.salvage(items)
                        raise
                    items = []
                    self.store.release()
                    end = time.monotonic()
                    self.holds.append((held, end - held, "commit"))
                    # about one commit per interval, and the store free at least twice as long as
                    # the commit held it (a slow commit, on a busy machine, spaces the next ones)
                    due = max(began + self.interval, end + GAP * (end - held))
                for _, fn, fut in calls:
                    held = time.monotonic()
                    self._call(fn, fut)
                    self.holds.append((held, time.monotonic() - held, "read"))
                if stop:
                    return
        except BaseException as exc:  # surfaced to the stage by put(), submit() or close()
            self.error = exc
            self.failed.set()
            try:
                self.store.release()
            except BaseException:
                pass
            self.store.wait = wait
            self._drain(exc)
        finally:
            self.store.wait = wait

    def _call(self, fn: Callable[[Store], Any], fut: Future) -> None:
        try:
            with Store(self.store.path, read_only=True, wait=self.store.wait) as reader:
                fut.set_result(fn(reader))
        except BaseException as exc:
            fut.set_exception(exc)
            raise

    def _commit(self, batch: Any) -> None:
        with self.store.transaction():
            out = self.commit(self.store, batch)
        self.commits += 1
        if self.on_commit:
            self.on_commit(out)

    def _drain(self, exc: BaseException) -> None:
        """After a failure: answer every call with the error until the stage closes."""
        while True:
            job = self._queue.get()
            if job[0] == "call":
                job[2].set_exception(exc)
            elif job[0] == "item" and self.salvage is not None:
                self.salvage([job[1]])
            elif job[0] == "stop":
                return
