"""How a sandbox worker process is started: the OS-level isolation layer.

Levels, strongest first. ``auto`` means ``bwrap`` and refuses to run without it; the weaker
levels run only when asked for by name, and ``pad execute`` then warns on every run.

- ``bwrap``: bubblewrap started as an unprivileged user (``nobody`` when pad runs as root,
  through ``unshare --mount`` + ``setpriv``),
  with every namespace unshared (no network, its own PID space), a user namespace mapped to
  that unprivileged uid, no capabilities, no nested user namespaces, a read-only root that
  holds only the system libraries, the Python installation and the preloaded packages
  (numpy, sympy), no writable path at all, ``--die-with-parent`` and ``--new-session``.
- ``unshare``: ``unshare -rn``: a user + network namespace (no network); host files stay
  visible to a program that gets past the Python layer (read-only through seccomp).
- ``process``: a plain child process with a scrubbed environment.

At every level the worker then sets rlimits and installs seccomp filters (x86_64) before any
program runs, and forks each program that is not provably pure into its own process (see
``worker.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pad_data.sandbox import seccomp

WORKER_SOURCE = (Path(__file__).with_name("worker.py")).read_text()
LEVELS = ("bwrap", "unshare", "process")
THIRD_PARTY = ("numpy", "sympy")
SANDBOX_SITE = "/pad/site"
NOBODY = 65534
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
WEAK_WARNING = ("isolation {level!r} is below the OS sandbox: a program that gets past the Python "
                "layer can read host files and other processes' environments that the worker's user "
                "can read (install bubblewrap for 'bwrap')")


def python_binary() -> str:
    """The real interpreter behind a venv's python (the venv itself is not visible in bwrap)."""
    return os.path.realpath(sys.executable)


def python_flags() -> list[str]:
    """No site, no user site, no bytecode writes, no script dir on sys.path."""
    return ["-S", "-s", "-B"] + (["-P"] if sys.version_info >= (3, 11) else [])


@functools.cache
def package_dirs() -> tuple[tuple[str, str], ...]:
    """``(name, directory)`` of each installed preloadable package and what it needs to import
    (mpmath for sympy, numpy's vendored ``numpy.libs``)."""
    found = []
    for name in THIRD_PARTY + ("mpmath",):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = os.path.realpath(list(spec.submodule_search_locations)[0])
        found.append((name, path))
        libs = path + ".libs"
        if os.path.isdir(libs):
            found.append((name + ".libs", libs))
    return tuple(found)


@dataclass
class Launch:
    """The argv that starts one worker, and the staging folder it needs (removed by close)."""

    argv: list[str]
    site_dir: str | None = None
    stage: str | None = None

    def close(self) -> None:
        if self.stage:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = None


# Run as root, bwrap is started as nobody. Directories nobody cannot reach by path (a Python
# under /root, a venv in a private folder) are first bind-mounted read-only onto a staging
# folder, in a private mount namespace that only this worker's launcher sees.
_STAGE_SCRIPT = ('set -e; while [ "$1" != "--" ]; do mount --bind -o ro "$1" "$2"; shift 2; done; '
                 'shift; exec "$@"')
_DROP = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all",
         "--bounding-set=-all"]


def _bwrap_binds() -> list[tuple[str, str]]:
    """``(host directory, path in the sandbox)`` to bind read-only."""
    binds = []
    for top in ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.isdir(top) and not os.path.islink(top):
            binds.append((top, top))
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sysconfig.get_paths()["stdlib"],
                                          os.path.dirname(python_binary()))}
    for path in sorted(roots):
        if not path.startswith("/usr/") and not any(path.startswith(r + "/") for r in roots if r != path):
            binds.append((path, path))
    binds += [(path, f"{SANDBOX_SITE}/{name}") for name, path in package_dirs()]
    return binds


def _bwrap_argv(binds: list[tuple[str, str]]) -> list[str]:
    cmd = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(NOBODY),
           "--gid", str(NOBODY), "--die-with-parent", "--new-session", "--clearenv"]
    for k, v in ENV.items():
        cmd += ["--setenv", k, v]
    for top in ("/bin", "/lib", "/lib64", "/lib32", "/sbin"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
    for src, dest in binds:
        cmd += ["--ro-bind", src, dest]
    return cmd + ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev", "--remount-ro", "/",
                  "--chdir", "/"]


def launch(level: str, config: dict, workdir: str, code: str = WORKER_SOURCE) -> Launch:
    """How to start one worker (``code``) at ``level``; ``config`` gains the site dir and seccomp
    filters."""
    import json

    stage = None
    if level == "bwrap":
        site, binds = SANDBOX_SITE, _bwrap_binds()
        if os.geteuid() == 0:
            stage = tempfile.mkdtemp(prefix="pad-stage-")
            os.chmod(stage, 0o755)
            staged, mounts = [], []
            for i, (src, dest) in enumerate(binds):
                if src.startswith("/usr"):
                    staged.append((src, dest))
                    continue
                point = os.path.join(stage, str(i))
                os.mkdir(point)
                mounts += [src, point]
                staged.append((point, dest))
            prefix = (["unshare", "--mount", "--propagation", "private", "sh", "-c", _STAGE_SCRIPT,
                       "pad-sandbox", *mounts, "--", *_DROP] + _bwrap_argv(staged))
        else:
            prefix = _bwrap_argv(binds)
    else:
        site = os.path.join(workdir, "site")
        if not os.path.isdir(site):
            os.makedirs(site)
            for name, path in package_dirs():
                os.symlink(path, os.path.join(site, name))
        prefix = ["unshare", "-rn"] if level == "unshare" else []
    config = dict(config, site_dir=site)
    if seccomp.supported():
        config["seccomp"] = {"sandbox": seccomp.build(seccomp.SANDBOX_DENY, child=False).hex(),
                             "child": seccomp.build(seccomp.CHILD_DENY, child=True).hex()}
    argv = prefix + [python_binary(), *python_flags(), "-c", code, json.dumps(config)]
    return Launch(argv, site, stage)


def _probe(level: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        spec = launch(level, {}, tmp, code="print('ok')")
        try:
            out = subprocess.run(spec.argv, capture_output=True, timeout=20, env=ENV, cwd="/")
            return out.returncode == 0 and out.stdout.strip() == b"ok"
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            spec.close()


@functools.cache
def available_levels() -> tuple[str, ...]:
    """Isolation levels that actually work on this machine (probed once per process)."""
    found = []
    if shutil.which("bwrap") and _probe("bwrap"):
        found.append("bwrap")
    if shutil.which("unshare") and _probe("unshare"):
        found.append("unshare")
    found.append("process")
    return tuple(found)


def unreachable_by_sandbox_user(path: str) -> str | None:
    """The first folder on ``path`` (root first, ``path`` included) that the sandbox user
    (``nobody``, no supplementary groups) may not enter, or None."""
    folder = "/"
    for part in Path(os.path.abspath(path)).parts:
        folder = os.path.join(folder, part)
        try:
            st = os.stat(folder)
        except OSError:
            return folder
        bit = stat.S_IXUSR if st.st_uid == NOBODY else stat.S_IXGRP if st.st_gid == NOBODY else stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


def _bwrap_blocker() -> str | None:
    """Why bwrap, installed, cannot start here when that is pad's setup and not the machine's:
    run as root, the sandbox runs as ``nobody`` and must reach its staging folder under
    ``$TMPDIR`` (see :func:`launch`)."""
    if os.geteuid() != 0 or not shutil.which("bwrap"):
        return None
    tmp = tempfile.gettempdir()
    folder = unreachable_by_sandbox_user(tmp)
    if folder is None:
        return None
    return (f"bubblewrap cannot start the sandbox: run as root, pad runs it as user nobody (uid {NOBODY}), "
            f"which cannot enter {folder} (mode {stat.S_IMODE(os.stat(folder).st_mode):04o}) on the way to the "
            f"sandbox's staging folder in {tmp} (the temporary folder, from TMPDIR): set TMPDIR to a folder "
            f"every user can traverse (e.g. TMPDIR=/tmp), or let others enter {folder} (chmod o+x)")


def resolve(level: str = "auto") -> str:
    """The isolation level to use; ``auto`` means ``bwrap`` and fails without it."""
    if level not in LEVELS + ("auto",):
        raise ValueError(f"unknown isolation level {level!r}; choose from auto, {', '.join(LEVELS)}")
    levels = available_levels()
    if level in ("auto", "bwrap") and "bwrap" not in levels:
        blocker = _bwrap_blocker()
        if blocker:
            raise RuntimeError(blocker)
    if level == "auto":
        if "bwrap" not in levels:
            raise RuntimeError("bubblewrap is not available here, so programs cannot be isolated at the "
                               "OS level: install it (apt-get install bubblewrap), or pass --isolation "
                               "unshare or process to run with weaker isolation")
        return "bwrap"
    if level not in levels:
        raise RuntimeError(f"isolation level {level!r} is not available on this machine "
                           f"(available: {', '.join(levels)}); install bubblewrap for 'bwrap'")
    return level
