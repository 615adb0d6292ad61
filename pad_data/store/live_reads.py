"""`pad sql` and `pad stats` answered by the stage that is writing the store, over a Unix socket.

While a long stage runs, its :class:`~pad_data.store.writer.GroupCommitter` serves reads on a socket
named after the store (:class:`ReadServer`). ``pad sql`` and ``pad stats`` ask there first
(:func:`ask`, with nothing heavier than ``socket`` and ``json`` imported) and, when no stage
answers, open the store themselves. A poll then costs a bare Python start and the query, not a start that
loads DuckDB, typer and rich and opens the store: on two busy cores that is what decides how
much a watcher slows the stage.

The stage runs each query between its commits, on the store opened read-only and locked down
exactly as ``pad sql`` opens it (:meth:`~pad_data.store.Store.read_rows`), so the answer and its
errors are the same; a query slower than a few seconds, or with a large result, is stopped and
left to ``pad sql`` itself (:meth:`~pad_data.store.writer.GroupCommitter.read_for_client`). The socket
lives in a folder only this user can enter (``pad-<uid>`` under ``$XDG_RUNTIME_DIR``,
``$TMPDIR`` or ``/tmp``; a folder that is not private is not used), and the server also checks
the caller's user id. Sandboxed programs do not reach it: under bubblewrap neither folder is
mounted, and a forked program's seccomp filter refuses every socket (at the weaker isolation
levels, a program that escaped Python could reach it, as it could the store's file itself).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import struct
import threading
import time

TYPE_CHECKING = False  # not typing's: `pad sql` imports this module on every start, and typing's import is not free
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_REQUEST = 1 << 20  # bytes: a query and its options
REQUEST_S = 2.0  # the server's wait for a client's whole request
REPLY_TIMEOUT_S = 30.0  # a client's wait for the answer (the stage gives up on a query after 5 s)


def socket_path(db: str | os.PathLike, create: bool = False) -> str | None:
    """Where the stage writing ``db`` answers reads; None when this user's socket folder is
    missing (and not ``create``) or not private to this user."""
    base = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or os.environ.get("TMPDIR") or "/tmp", f"pad-{os.getuid()}")
    if create:
        try:
            os.mkdir(base, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return None
    try:
        st = os.lstat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    key = hashlib.sha256(os.path.realpath(db).encode()).hexdigest()[:24]  # a socket's path must stay under 108 bytes
    return os.path.join(base, f"{key}.sock")


def ask(db: str | os.PathLike, request: dict) -> dict | None:
    """``request`` answered by the stage writing ``db``, or None when no stage serves it."""
    path = socket_path(db)
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(REPLY_TIMEOUT_S)
            sock.connect(path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            data = _read_all(sock)
    except OSError:  # no socket, a stale one, or a stage that ended meanwhile
        return None
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) and "code" in reply else None


def _read_all(sock: socket.socket, limit: int | None = None, deadline: float | None = None) -> bytes:
    """Everything until the peer shuts its side; ValueError past ``limit`` bytes, TimeoutError
    past ``deadline`` (``time.monotonic()``)."""
    chunks, size = [], 0
    while True:
        if deadline is not None:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            raise ValueError("request too large")


class ReadServer:
    """Answer ``handle(request) -> reply`` (JSON objects) on ``db``'s socket, one client at a
    time, on a thread, until :meth:`close`. A reply's ``code`` is the command's exit status, or
    None to tell the client to run the command itself (``answered`` counts the others). Serves nothing when another live process already
    serves the same store or the socket folder is not private."""

    def __init__(self, db: str | os.PathLike, handle: Callable[[dict], dict]):
        self.handle, self.answered = handle, 0
        self.path = socket_path(db, create=True)
        self._sock: socket.socket | None = None
        self._closing = threading.Event()
        if self.path is None or not self._bind():
            return
        self._thread = threading.Thread(target=self._serve, name="pad-reads", daemon=True)
        self._thread.start()

    @property
    def serving(self) -> bool:
        return self._sock is not None

    def _bind(self) -> bool:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.bind(self.path)
            except OSError as exc:  # ours from a stage that died, or another stage's that is alive
                if exc.errno != errno.EADDRINUSE:
                    raise
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    if probe.connect_ex(self.path) == 0:
                        sock.close()
                        return False
                os.unlink(self.path)
                sock.bind(self.path)
            os.chmod(self.path, 0o600)
            sock.listen(8)
        except OSError:
            sock.close()
            return False
        self._inode = os.stat(self.path).st_ino
        self._sock = sock
        return True

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with conn:
                try:
                    if not self._same_user(conn):
                        continue
                    request = json.loads(_read_all(conn, MAX_REQUEST, time.monotonic() + REQUEST_S))
                except (OSError, ValueError, RecursionError):
                    continue  # a client that went away, was too slow, or sent garbage
                try:
                    reply = self.handle(request) if isinstance(request, dict) else {"code": None}
                    data = json.dumps(reply).encode()
                except Exception:  # noqa: BLE001 - never the thread's end: the client asks pad sql
                    reply, data = {"code": None}, b'{"code": null}'
                try:
                    conn.settimeout(REPLY_TIMEOUT_S)
                    conn.sendall(data)
                    self.answered += isinstance(reply.get("code"), int)
                except OSError:
                    continue

    @staticmethod
    def _same_user(conn: socket.socket) -> bool:
        if not hasattr(socket, "SO_PEERCRED"):
            return True  # the private folder is the guard
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
        return uid == os.getuid()

    def close(self) -> None:
        """Stop answering and remove the socket (only if it is still this server's)."""
        if self._sock is None:
            return
        self._closing.set()
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
        self._sock = None
