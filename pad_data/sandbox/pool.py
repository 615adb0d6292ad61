"""A pool of pre-started sandbox workers that runs many untrusted programs fast.

The parent owns its worker processes (no multiprocessing/ProcessPoolExecutor, which lose
in-flight tasks silently when a worker dies). It streams batches of programs to each
worker over a pipe; the worker reports every program's result the moment it finishes,
so the parent always knows which program a worker is on. (Inside, each worker runs provably
pure programs itself and forks a child for every other one: see ``worker.py``.) The parent:

- lets the worker stop a program at its timeout itself (a program's time is CPU time, or
  for a forked program its own time asleep too, never time spent waiting for a core: see
  ``worker.py``; the worker goes on with its batch, no restart); a program looping inside C
  code gets SIGXCPU from the worker's CPU limit, and a worker still on one program after the
  wall-clock backstop (``WALL_FACTOR`` x the timeout) is SIGKILLed; either way that program
  is labeled ``timeout`` and the rest of the worker's batch goes to the others;
- labels the in-flight program ``crashed`` when a worker dies (segfault, abort, OOM kill)
  and likewise re-queues the rest;
- starts a fresh worker whenever one is gone (timeout, crash, or a worker retiring itself
  after it was harmed).
Worker output is untrusted: it is parsed as JSON with size limits, never unpickled, and a
malformed message fails only its program (``crashed``, ``ProtocolError``) and retires the worker.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Iterator

from pad_data.sandbox import isolation

EXECUTOR_VERSION = "pad-sandbox/2"
STDOUT_CAP = 8192 + 64
MAX_LINE = 1 << 20  # a result line longer than this is a protocol violation
READY_TIMEOUT_S = 60.0
WALL_FACTOR = 10  # the wall-clock backstop, in timeouts, for a program that blocks (or a busy machine)
STATUSES = ("ok", "no_answer", "syntax_error", "runtime_error", "timeout", "memory_limit",
            "forbidden", "crashed")


@dataclass
class ExecResult:
    """What happened when one program ran."""

    status: str
    value: Any = None
    value_type: str | None = None
    value_repr: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_line: int | None = None
    stdout: str = ""
    duration_ms: float = 0.0

    @classmethod
    def from_worker(cls, msg: dict) -> "ExecResult":
        """Validate one result message from a worker (untrusted); ProtocolError if malformed."""
        status = msg.get("status")
        if status not in STATUSES:
            raise ProtocolError(f"bad status {str(status)[:40]!r}")
        value = msg.get("value")
        if not (value is None or isinstance(value, (bool, str))
                or type(value) is int and abs(value) < 2**53
                or type(value) is float and math.isfinite(value)):
            raise ProtocolError("bad value")
        line = msg.get("error_line")
        if not (line is None or type(line) is int):
            raise ProtocolError("bad error_line")
        duration = msg.get("duration_ms", 0.0)
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not math.isfinite(duration) or duration < 0:
            raise ProtocolError("bad duration_ms")
        return cls(
            status=status,
            value=clean_text(value) if isinstance(value, str) else value,
            value_type=_opt_str(msg.get("value_type"), 100),
            value_repr=_opt_str(msg.get("value_repr")),
            error_type=_opt_str(msg.get("error_type"), 100),
            error_message=_opt_str(msg.get("error_message")),
            error_line=line if line is None or 0 <= line < 2**31 else None,
            stdout=_opt_str(msg.get("stdout"), STDOUT_CAP) or "",
            duration_ms=float(duration),
        )


class ProtocolError(ValueError):
    """A worker sent something that is not a well-formed result."""


def clean_text(text: str, limit: int = 10_000) -> str:
    """Text that any store accepts: at most ``limit`` characters, lone surrogates and NUL
    written as escapes (``\\ud800``, ``\\x00``)."""
    if len(text) > limit:
        text = text[:limit] + f"...[truncated {len(text) - limit} characters]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _describe_exit(rc: int | None, level: str) -> str:
    """'SIGSEGV' for a worker killed by a signal (bwrap reports those as 128 + N)."""
    sig = -rc if rc is not None and rc < 0 else (rc - 128 if level == "bwrap" and rc and rc > 128 else 0)
    try:
        return signal.Signals(sig).name if sig else f"exit code {rc}"
    except ValueError:
        return f"exit code {rc}"


def _opt_str(v: Any, limit: int = 10_000) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ProtocolError("expected a string")
    return clean_text(v, limit)


@dataclass
class _Worker:
    proc: subprocess.Popen
    fd_out: int
    fd_in: int
    started_at: float
    ready: bool = False
    retiring: bool = False
    since: float = 0.0  # when the program at pending[0] started (approximately)
    pending: deque = field(default_factory=deque)  # (seq, source[, preamble]) sent, not yet reported
    single: bool = False  # running one suspect on its own: if it dies or hangs, that program did it
    rbuf: bytes = b""
    wbuf: bytes = b""
    writing: bool = False  # fd_in registered for EVENT_WRITE


class SandboxPool:
    """Run untrusted ``def solution(): ...`` programs in reusable, isolated workers.

    >>> with SandboxPool(workers=2, timeout=2.0) as pool:
    ...     for key, result in pool.map([("a", "def solution():\\n    return 1+1")]):
    ...         print(key, result.status, result.value)
    a ok 2
    """

    def __init__(self, workers: int = 2, timeout: float = 2.0, memory_mb: int = 512,
                 isolation_level: str = "auto", batch_size: int = 256, stdout_limit: int = 8192,
                 max_programs_per_worker: int = 20000, entry: str | None = None,
                 python_policy: bool = True, fast_path: bool = True):
        """``entry``: the function to call or variable to read [default: ``solution()`` if the
        program defines it, else its ``ans`` variable]. ``python_policy=False`` switches the
        worker's Python layer off (for tests that must reach the OS layer); ``fast_path=False``
        forks every program."""
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and 0 < timeout <= 3600):
            raise ValueError(f"timeout must be a number of seconds in (0, 3600], got {timeout!r}")
        if memory_mb < 16:
            raise ValueError("memory_mb must be >= 16")
        if entry is not None and not str(entry).isidentifier():
            raise ValueError(f"entry must be a Python name, got {entry!r}")
        self.n_workers = workers
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.batch_size = batch_size
        self.isolation = isolation.resolve(isolation_level)
        self.grace = max(0.2, min(1.0, self.timeout))
        self.wall = WALL_FACTOR * self.timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="pad-sandbox-")
        self._launch = isolation.launch(self.isolation, {
            "memory_mb": self.memory_mb, "stdout_limit": stdout_limit, "timeout": self.timeout,
            "wall_limit": self.wall, "child_grace": self.grace / 2, "max_programs": max_programs_per_worker,
            "entry": entry, "python_policy": python_policy, "fast_path": fast_path}, self._tmp.name)
        self._sel = selectors.DefaultSelector()
        self._workers: dict[int, _Worker] = {}
        self._failed_starts = 0
        self.seccomp: bool | None = None
        self.stats = {"spawned": 0, "timeouts": 0, "crashes": 0, "recycled": 0, "fast": 0, "forked": 0,
                      "suspects": 0}

    @property
    def executor_version(self) -> str:
        return f"{EXECUTOR_VERSION}+{self.isolation}" + ("" if self.seccomp is not False else "-noseccomp")

    @property
    def warning(self) -> str | None:
        """A one-line warning when programs run below the OS sandbox, else None."""
        return None if self.isolation == "bwrap" else isolation.WEAK_WARNING.format(level=self.isolation)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "SandboxPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in list(self._workers.values()):
            self._kill(w)
        self._sel.close()
        self._launch.close()
        self._tmp.cleanup()

    def _spawn(self) -> _Worker:
        spec = self._launch
        cwd = "/" if self.isolation == "bwrap" else tempfile.mkdtemp(dir=self._tmp.name)
        proc = subprocess.Popen(spec.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, close_fds=True, env=isolation.ENV, cwd=cwd,
                                start_new_session=True)
        w = _Worker(proc, proc.stdout.fileno(), proc.stdin.fileno(), time.monotonic())
        os.set_blocking(w.fd_in, False)
        self._sel.register(w.fd_out, selectors.EVENT_READ, w)
        self._workers[w.fd_out] = w
        self.stats["spawned"] += 1
        return w

    def _kill(self, w: _Worker) -> None:
        try:
            os.killpg(w.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._forget(w)

    def _forget(self, w: _Worker) -> None:
        if self._workers.pop(w.fd_out, None) is not None:
            for fd in (w.fd_out, w.fd_in) if w.writing else (w.fd_out,):
                try:
                    self._sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
            w.writing = False
        for f in (w.proc.stdin, w.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            w.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    # ------------------------------------------------------------------ I/O
    def _send(self, w: _Worker, items: list[tuple]) -> None:
        w.pending.extend(items)
        w.wbuf += json.dumps({"batch": items}).encode() + b"\n"
        self._flush(w)

    def _flush(self, w: _Worker) -> None:
        if w.wbuf:
            try:
                n = os.write(w.fd_in, w.wbuf)
                w.wbuf = w.wbuf[n:]
            except BlockingIOError:
                pass
            except OSError:
                w.wbuf = b""  # the worker is gone; its EOF is handled on the read side
        want = bool(w.wbuf)
        if want != w.writing and w.fd_out in self._workers:
            if want:
                self._sel.register(w.fd_in, selectors.EVENT_WRITE, w)
            else:
                self._sel.unregister(w.fd_in)
            w.writing = want

    # ------------------------------------------------------------------ main loop
    def map(self, items: Iterable[tuple[Hashable, str] | tuple[Hashable, str, str | None]]
            ) -> Iterator[tuple[Hashable, ExecResult]]:
        """Run each ``(key, source)``, or ``(key, source, preamble)``: the program after code run
        before it in its namespace (imports, helpers), admitted and run as one program with it, its
        error lines its own (see ``worker.compile_program``). Yields ``(key, ExecResult)`` as programs
        finish (any order)."""
        source_iter = iter(items)
        keys: dict[int, Hashable] = {}
        queue: deque[tuple] = deque()
        self._suspects: deque[tuple] = deque()
        seq = 0
        exhausted = False
        while len(self._workers) < self.n_workers:
            self._spawn()

        while True:
            # keep enough work queued to feed every worker two batches
            while not exhausted and len(queue) < 2 * self.batch_size * self.n_workers:
                try:
                    key, src, *preamble = next(source_iter)
                except StopIteration:
                    exhausted = True
                    break
                keys[seq] = key
                queue.append((seq, src, preamble[0]) if preamble and preamble[0] else (seq, src))
                seq += 1
            while len(self._workers) < self.n_workers:
                self._spawn()
            for w in list(self._workers.values()):
                if not w.ready or w.retiring:
                    continue
                if self._suspects:  # suspects run one at a time, each on a worker of its own
                    if not w.pending:
                        w.since, w.single = time.monotonic(), True
                        self._send(w, [self._suspects.popleft()])
                elif queue and len(w.pending) <= self.batch_size // 2:
                    batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
                    if not w.pending:
                        w.since = time.monotonic()
                    w.single = False
                    self._send(w, batch)
            if exhausted and not queue and not self._suspects \
                    and not any(w.pending for w in self._workers.values()):
                return

            now = time.monotonic()
            wait = 1.0
            for w in self._workers.values():
                if w.ready and w.pending:
                    wait = min(wait, w.since + self.wall + self.grace - now)
                elif not w.ready:
                    wait = min(wait, w.started_at + READY_TIMEOUT_S - now)
            out: list[tuple[int, ExecResult]] = []
            for key, mask in self._sel.select(max(wait, 0.0)):
                w = key.data
                if w.fd_out not in self._workers:
                    continue
                if key.fd == w.fd_in:
                    self._flush(w)
                    continue
                self._on_readable(w, queue, out)
            self._check_deadlines(queue, out)
            for s, result in out:
                yield keys.pop(s), result

    def _on_readable(self, w: _Worker, queue: deque, out: list) -> None:
        try:
            data = os.read(w.fd_out, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self._on_exit(w, queue, out)
            return
        w.rbuf += data
        if b"\n" not in data:
            if len(w.rbuf) > MAX_LINE:
                self._fail_current(w, queue, out, "ProtocolError", "result line too long")
            return
        *lines, w.rbuf = w.rbuf.split(b"\n")
        now = time.monotonic()
        for line in lines:
            try:
                msg = json.loads(line)
                if not isinstance(msg, dict):
                    raise ProtocolError("unexpected result")
                if msg.get("ready") is True:
                    w.ready = True
                    w.since = now
                    self._failed_starts = 0
                    self.seccomp = bool(msg.get("seccomp"))
                    continue
                if "loading" in msg:  # the worker imports a package before the next program
                    w.since = now + READY_TIMEOUT_S
                    continue
                if "loaded" in msg:  # ... and that program's clock starts now
                    w.since = now
                    continue
                if not w.pending or msg.get("key") != w.pending[0][0] or isinstance(msg.get("key"), bool):
                    raise ProtocolError("result out of order")
                result = ExecResult.from_worker(msg)
            except (ValueError, RecursionError) as exc:  # json errors (nesting too deep too), ProtocolError
                self._fail_current(w, queue, out, "ProtocolError", str(exc)[:200] or "unparsable result")
                return
            item = w.pending.popleft()
            out.append((item[0], result))
            w.since = now
            path = msg.get("path")
            if path in ("fast", "fork"):
                self.stats["fast" if path == "fast" else "forked"] += 1
            if msg.get("recycle"):
                w.retiring = True

    def _on_exit(self, w: _Worker, queue: deque, out: list) -> None:
        self._forget(w)
        if not w.ready:
            self._failed_starts += 1
            if self._failed_starts >= 3:
                raise RuntimeError(f"sandbox workers fail to start (isolation={self.isolation}, "
                                   f"exit code {w.proc.returncode})")
            queue.extendleft(reversed(w.pending))
            return
        if w.retiring:
            self.stats["recycled"] += 1
            queue.extendleft(reversed(w.pending))
            return
        how = _describe_exit(w.proc.returncode, self.isolation)
        ms = (time.monotonic() - w.since) * 1000
        if how == "SIGXCPU":  # the worker's CPU limit: a program looping inside C code
            self._blame(w, out, lambda: ExecResult("timeout", error_type="Timeout",
                                                   error_message=f"exceeded {self.timeout:g} s", duration_ms=ms),
                        "timeouts")
        else:
            self._blame(w, out, lambda: ExecResult("crashed", error_type="WorkerDied",
                                                   error_message=f"the interpreter died ({how})", duration_ms=ms),
                        "crashes")

    def _blame(self, w: _Worker, out: list, result, stat: str) -> None:
        """A worker died or hung with programs pending. Workers send results in small bursts, so
        the culprit is one of them but not necessarily the first: each pending program is run
        again on its own, and only a program that kills or hangs a worker alone is labeled."""
        if w.single and len(w.pending) == 1:
            s = w.pending.popleft()[0]
            out.append((s, result()))
            self.stats[stat] += 1
        else:
            self.stats["suspects"] += len(w.pending)
            self._suspects.extend(w.pending)
            w.pending.clear()

    def _fail_current(self, w: _Worker, queue: deque, out: list, etype: str, msg: str) -> None:
        self._kill(w)
        self.stats["crashes"] += 1
        if w.pending:
            s = w.pending.popleft()[0]
            out.append((s, ExecResult("crashed", error_type=etype, error_message=msg)))
        queue.extendleft(reversed(w.pending))

    def _check_deadlines(self, queue: deque, out: list) -> None:
        now = time.monotonic()
        for w in list(self._workers.values()):
            if w.ready and w.pending and now - w.since > self.wall + self.grace:
                self._kill(w)
                self._blame(w, out, lambda: ExecResult("timeout", error_type="Timeout",
                                                       error_message=f"exceeded {self.timeout:g} s",
                                                       duration_ms=(now - w.since) * 1000), "timeouts")
            elif not w.ready and now - w.started_at > READY_TIMEOUT_S:
                self._kill(w)
                raise RuntimeError(f"sandbox worker did not start within {READY_TIMEOUT_S:g} s "
                                   f"(isolation={self.isolation})")


def execute_programs(sources: list[str], timeout: float = 2.0, memory_mb: int = 512,
                     workers: int = 2, isolation_level: str = "auto", preamble: str | None = None) -> list[ExecResult]:
    """Run each program in the sandbox (each after ``preamble``, if given); results in the same
    order as ``sources``.

    No store needed: ``execute_programs(["def solution():\\n    return 6*7"])[0].value == 42``.
    """
    results: list[ExecResult | None] = [None] * len(sources)
    with SandboxPool(workers=workers, timeout=timeout, memory_mb=memory_mb,
                     isolation_level=isolation_level) as pool:
        for i, res in pool.map((i, src, preamble) for i, src in enumerate(sources)):
            results[i] = res
    return results  # type: ignore[return-value]
