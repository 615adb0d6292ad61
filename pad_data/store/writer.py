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

While it runs, the committer also answers ``pad sql`` for other processes, on the store's
socket (:mod:`pad_data.store.live_reads`), between commits as it does the stage's own reads; what
it answers is ``answer(request, read)`` [default: :func:`printed_answer`, as the command prints it].
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, TypeVar

from pad_data.store.live_reads import ReadServer
from pad_data.store import Store

T = TypeVar("T")
PATIENCE_S = 600.0  # a stage waits this long for a reader to let go before it gives up
READER_AGE_S = 1.0  # a store kept open for other processes' queries is reopened after this long (see _client_call)
CLIENT_READ_S = 5.0  # another process's query that has no answer by then is stopped and left to that process
CLIENT_SHARE = 0.5  # of the stage's budget, the reader those queries run on (the stage's scratch may hold the rest)
GAP = 2.0  # after a commit, the store stays free at least this many times as long as the commit held it

Read = Callable[[Callable[[Store], Any]], Any]  # runs fn(store) on the store opened read-only
Answer = Callable[[dict, Read], dict]  # (live_reads request, read) -> {"code", "out", "err"}


def printed_answer(request: dict, read: Read) -> dict:
    """:func:`pad_data.store.render.answer_live`: the reply printed as ``pad sql``/``pad stats`` print it
    (rich and typer are loaded on the first request, not by every stage)."""
    from pad_data.store.render import answer_live

    return answer_live(request, read)


class GroupCommitter:
    """Commit items with ``commit(store, prepare(items))`` on a thread, about every ``interval`` seconds.

    ``prepare`` (say, making a frame of the rows) runs before the store is opened, so the store
    is held only for ``commit``, which runs inside a transaction; its return value goes to
    ``on_commit`` (on the committer's thread). The first item after a quiet spell is committed
    at once. Another process's ``pad sql``/``pad stats`` gets ``answer(request, read)``, ``read``
    being :meth:`read_for_client`.
    """

    def __init__(self, store: Store, commit: Callable[[Store, Any], Any], interval: float = 1.0,
                 on_commit: Callable[[Any], None] | None = None, patience: float = PATIENCE_S,
                 prepare: Callable[[list], Any] | None = None, salvage: Callable[[list], None] | None = None,
                 answer: Answer = printed_answer):
        self.store, self.commit, self.interval, self.on_commit = store, commit, interval, on_commit
        self.patience, self.prepare, self.salvage, self.answer = patience, prepare, salvage, answer
        self.failed = threading.Event()  # set when a commit failed
        self.error: BaseException | None = None
        self.commits = 0
        self.holds: list[tuple[float, float, str]] = []  # (start, seconds, what) of each time the store was held
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pad-commit", daemon=True)
        self._closed = False
        self.reads: ReadServer | None = None  # answers `pad sql` while the stage runs (from start())
        self._reader: tuple[Store, float] | None = None  # (store, when opened) for read_for_client

    # ------------------------------------------------------------------ the stage's side
    def __enter__(self) -> "GroupCommitter":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        self.store.release()  # the stage's own thread must not hold the store meanwhile
        self._thread.start()
        self._real_path = os.path.realpath(self.store.path)  # the file the socket is named after
        self.reads = ReadServer(self._real_path, self._answer)

    def _answer(self, request: dict) -> dict:
        """A ``pad sql`` or ``pad stats`` from another process, run like the stage's own reads (:meth:`submit`)."""
        return self.answer(request, self.read_for_client)

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

    def read_for_client(self, fn: Callable[[Store], T], timeout: float | None = None) -> T:
        """``fn(store)`` for another process's query (``pad sql``), on the committer's thread like
        :meth:`submit`, but on a read-only store kept open for up to ``READER_AGE_S`` between
        commits (polls do not each open the store), with ``CLIENT_SHARE`` of the stage's memory
        budget; its error is the caller's, never the stage's. Not done within ``timeout`` seconds
        [``CLIENT_READ_S``] (waiting for a commit included), it is cancelled or interrupted and
        TimeoutError raised: the stage's commits never wait long on a query. RuntimeError once the committer stopped or failed."""
        if self._closed or self.error is not None or not self._thread.is_alive():
            raise RuntimeError("the stage is not serving reads")
        timeout = CLIENT_READ_S if timeout is None else timeout
        fut: Future = Future()
        self._queue.put(("client", fn, fut))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            if not fut.cancel():  # already running: stop the query
                reader = self._reader
                if reader is not None and fut.running():
                    reader[0].interrupt()
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def close(self) -> None:
        """Commit everything handed over, stop the thread, and raise its error if it failed."""
        if not self._closed:
            self._closed = True
            if self.reads is not None:
                self.reads.close()  # (read_for_client refuses from here on)
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
        calls: list = []
        stop = False
        due = -float("inf")  # when the next commit may begin
        wait, self.store.wait = self.store.wait, max(self.store.wait, self.patience)
        try:
            while True:
                timeout = None if not items else max(0.0, due - time.monotonic())
                if self._reader is not None:  # wake up to let go of it when it is old
                    timeout = max(0.0, min(timeout if timeout is not None else READER_AGE_S,
                                           self._reader[1] + READER_AGE_S - time.monotonic()))
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
                calls = [j for j in jobs if j[0] in ("call", "client")]
                if self._reader is not None and time.monotonic() - self._reader[1] >= READER_AGE_S:
                    self._drop_reader()
                stop = any(j[0] == "stop" for j in jobs)
                if items and (stop or time.monotonic() >= due):
                    began = held = time.monotonic()
                    try:
                        batch = self.prepare(items) if self.prepare else items  # before taking the store
                        self._drop_reader()
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
                for kind, fn, fut in calls:
                    held = time.monotonic()
                    if kind == "client":
                        self._client_call(fn, fut)
                    else:
                        self._drop_reader()
                        self._call(fn, fut)
                    self.holds.append((held, time.monotonic() - held, "read"))
                if stop:
                    self._drop_reader()
                    return
        except BaseException as exc:  # surfaced to the stage by put(), submit() or close()
            self.error = exc
            self.failed.set()
            try:
                self._drop_reader()
                self.store.release()
            except BaseException:
                pass
            self.store.wait = wait
            for _, _, fut in calls:  # taken with the failed commit: answered, not left waiting
                _fail(fut, exc)
            self._drain(exc, stopped=stop)
        finally:
            self.store.wait = wait

    def _call(self, fn: Callable[[Store], Any], fut: Future) -> None:
        try:
            with Store(self.store.path, read_only=True, wait=self.store.wait, memory=self.store.memory) as reader:
                fut.set_result(fn(reader))
        except BaseException as exc:
            fut.set_exception(exc)
            raise

    def _client_call(self, fn: Callable[[Store], Any], fut: Future) -> None:
        """Another process's read: on the kept reader (opened now if none), which is let go of
        before any commit or read of the stage's own, and after ``READER_AGE_S``, so that a writer
        waiting for the store (the review app's verdicts, another stage) gets in between polls."""
        if not fut.set_running_or_notify_cancel():
            return  # its caller gave up waiting
        try:
            if self._reader is None:  # waits for the store no longer than the caller does
                reader = Store(self._real_path, read_only=True, wait=CLIENT_READ_S, memory=self.store.memory)
                reader.lower_budget(int(self.store.memory * CLIENT_SHARE))
                self._reader = (reader, time.monotonic())
            fut.set_result(fn(self._reader[0]))
        except Exception as exc:  # noqa: BLE001 - the client's answer, not the stage's error
            self._drop_reader()
            fut.set_exception(exc)

    def _drop_reader(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader[0], None
            reader.close()

    def _commit(self, batch: Any) -> None:
        with self.store.transaction():
            out = self.commit(self.store, batch)
        self.commits += 1
        if self.on_commit:
            self.on_commit(out)

    def _drain(self, exc: BaseException, stopped: bool) -> None:
        """After a failure: answer every call with the error until the stage closes (``stopped``:
        it already asked to, with the commit that failed: only what is queued now)."""
        while True:
            try:
                job = self._queue.get_nowait() if stopped else self._queue.get()
            except queue.Empty:
                return
            if job[0] in ("call", "client"):
                _fail(job[2], exc)
            elif job[0] == "item" and self.salvage is not None:
                self.salvage([job[1]])
            elif job[0] == "stop":
                return


def _fail(fut: Future, exc: BaseException) -> None:
    """``fut`` ends with ``exc``, unless it ended already (or its caller cancelled it meanwhile)."""
    try:
        if not fut.done():
            fut.set_exception(exc)
    except InvalidStateError:
        pass
