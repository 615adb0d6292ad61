"""``pad review``'s server: Streamlit running :mod:`pad_data.review.app`, as a child that stops with it.

- The port is checked first (bound and released), so a busy port is one error line before
  anything else is printed.
- A non-loopback address needs a token: given, or generated. The app reads it from
  ``$PAD_REVIEW_TOKEN`` (the environment, not the command line other users can list) and
  renders nothing until the URL's ``?token=`` matches.
- ``--memory-limit`` reaches the app as ``$PAD_MEMORY_LIMIT``: every store it opens reads it.
- SIGTERM and SIGINT are forwarded to the server, which is then waited for (SIGKILL after
  ``STOP_GRACE_S``); on Linux the server also gets SIGTERM if ``pad review`` itself dies.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pad_data.rules.options import MEMORY_ENV

APP_FILE = Path(__file__).with_name("app.py")
STOP_GRACE_S = 10.0


class ServeError(ValueError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """ServeError unless ``host:port`` can be bound now (as the server will: SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except socket.gaierror as exc:
        raise ServeError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is in use (another pad review?); choose another with --port")
        raise ServeError(f"cannot serve on {host}:{port}: {exc.strerror}") from None


def access_token(host: str, token: str | None) -> str | None:
    """The token the app will require: ``token``, else a new one for a non-loopback ``host``."""
    if token is not None:
        if len(token) < 8 or not token.isprintable() or " " in token:
            raise ServeError("--token must be at least 8 printable characters without spaces")
        return token
    return None if is_loopback(host) else secrets.token_urlsafe(18)


def command(db: Path, host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP_FILE), "--server.port", str(port),
            "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--", "--db", str(db)]


def _die_with_parent() -> None:  # runs in the child before exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve(db: Path, host: str, port: int, token: str | None, memory: int | None = None) -> int:
    """Run the server until it exits or this process gets SIGTERM/SIGINT; its exit status
    (0 after a forwarded signal). ``memory``: the app's DuckDB memory budget in bytes (passed
    on as ``$PAD_MEMORY_LIMIT``, which every store it opens reads) [default: the environment's]."""
    env = dict(os.environ, PAD_DB=str(db))
    if memory is not None:
        env[MEMORY_ENV] = f"{int(memory)}B"
    env.pop("PAD_REVIEW_TOKEN", None)
    if token:
        env["PAD_REVIEW_TOKEN"] = token
    child = subprocess.Popen(command(db, host, port), env=env, start_new_session=True,
                             preexec_fn=_die_with_parent if sys.platform == "linux" else None)
    got: list[int] = []

    def forward(signum, _frame):
        got.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    deadline = None
    try:
        while True:
            try:
                code = child.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if got and deadline is None:
                    deadline = time.monotonic() + STOP_GRACE_S
                if deadline is not None and time.monotonic() > deadline:
                    child.kill()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if got else code
