"""How a sandbox worker process is started: the OS-level isolation layer.

Levels, strongest first (``auto`` picks the first that works here):

- ``bwrap``: bubblewrap with every namespace unshared (no network at all, its own PID
  space, no view of host files except the Python standard library, read-only, and an
  empty tmpfs as cwd), ``--die-with-parent`` and ``--new-session``.
- ``unshare``: ``unshare -rn``: a user + network namespace (no network); host files stay
  visible, so the in-process layers (no ``open``, audit hook) are what keep files safe.
- ``process``: a plain child process with a scrubbed environment and an empty temp cwd.

Every level also gets rlimits (address space, no file writes, few fds, no core dumps),
set by the worker before it runs anything.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

WORKER_SOURCE = (Path(__file__).with_name("worker.py")).read_text()
LEVELS = ("bwrap", "unshare", "process")


def python_binary() -> str:
    """The real interpreter behind a venv's python (the venv itself is not visible in bwrap)."""
    return os.path.realpath(sys.executable)


def _bwrap_prefix() -> list[str]:
    cmd = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
           "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8"]
    for top in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    binds = {sys.base_prefix, sysconfig.get_paths()["stdlib"], os.path.dirname(python_binary())}
    for path in sorted(binds):
        if not path.startswith("/usr/"):
            cmd += ["--ro-bind", path, path]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    return cmd


def _probe(prefix: list[str]) -> bool:
    try:
        out = subprocess.run(prefix + [python_binary(), "-I", "-S", "-c", "print('ok')"],
                             capture_output=True, timeout=20, env={}, cwd="/")
        return out.returncode == 0 and out.stdout.strip() == b"ok"
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def available_levels() -> tuple[str, ...]:
    """Isolation levels that actually work on this machine (probed once per process)."""
    found = []
    if shutil.which("bwrap") and _probe(_bwrap_prefix()):
        found.append("bwrap")
    if shutil.which("unshare") and _probe(["unshare", "-rn"]):
        found.append("unshare")
    found.append("process")
    return tuple(found)


def resolve(level: str = "auto") -> str:
    """The isolation level to use; ``auto`` means the strongest available."""
    levels = available_levels()
    if level == "auto":
        return levels[0]
    if level not in LEVELS:
        raise ValueError(f"unknown isolation level {level!r}; choose from auto, {', '.join(LEVELS)}")
    if level not in levels:
        raise RuntimeError(f"isolation level {level!r} is not available on this machine "
                           f"(available: {', '.join(levels)}); install bubblewrap for 'bwrap'")
    return level


def prefix(level: str) -> list[str]:
    """The argv that wraps a command in the given isolation level."""
    return {"bwrap": _bwrap_prefix, "unshare": lambda: ["unshare", "-rn"], "process": list}[level]()


def worker_command(level: str, config_json: str) -> list[str]:
    """The argv that starts one worker at the given isolation level."""
    return prefix(level) + [python_binary(), "-I", "-S", "-c", WORKER_SOURCE, config_json]
