"""The sandbox worker: a long-lived process that runs untrusted programs one after another.

This file is self-contained (standard library only) because it is started as
``python -I -S -c <this source>`` inside the isolation layer (bubblewrap where
available), where neither pad nor site-packages are visible.

Protocol (newline-delimited JSON):
  parent -> worker, on fd 0: ``{"batch": [[key, source], ...]}``
  worker -> parent, on fd 1: ``{"ready": ...}`` once, then one result object per program,
  in order, each written as soon as the program finishes.
A worker exits by itself (after reporting) when a program harmed it (policy violation
caught at run time, MemoryError, altered shared state it cannot restore) or after
``max_programs``; the parent then starts a fresh one.

Each program gets fresh globals, a fresh copy of a reduced ``builtins``, and sanitized
copies of an allowlist of pure modules; shared state those modules keep (random,
decimal contexts) is reset before every program. See ``docs``/README "Threat model".
"""

import builtins
import json
import math
import os
import signal as _signal
import sys
import time
import types

CONFIG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
MEMORY_MB = int(CONFIG.get("memory_mb", 512))
STDOUT_LIMIT = int(CONFIG.get("stdout_limit", 8192))
MAX_PROGRAMS = int(CONFIG.get("max_programs", 20000))
TIMEOUT = float(CONFIG.get("timeout", 2.0))
ENTRY = CONFIG.get("entry", "solution")
ALLOWED_MODULES = tuple(
    CONFIG.get(
        "modules",
        "math cmath fractions decimal datetime itertools functools collections statistics "
        "random re string operator heapq bisect numbers copy".split(),
    )
)
VALUE_STR_LIMIT = 1000

# Attribute/global names a program may not mention: frame and code introspection is the
# classic way out of a Python-level sandbox.
FORBIDDEN_NAMES = frozenset(
    "gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code ag_await "
    "f_back f_globals f_locals f_builtins f_code f_trace tb_frame tb_next func_globals "
    "func_code mro".split()
)
# Dunder names that are harmless to define or call (operator protocols, class bodies).
ALLOWED_DUNDERS = frozenset(
    "__name__ __module__ __qualname__ __doc__ __init__ __repr__ __str__ __eq__ __ne__ __lt__ "
    "__le__ __gt__ __ge__ __hash__ __bool__ __len__ __iter__ __next__ __contains__ "
    "__getitem__ __setitem__ __delitem__ __call__ __add__ __radd__ __sub__ __rsub__ __mul__ "
    "__rmul__ __truediv__ __rtruediv__ __floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ "
    "__rpow__ __neg__ __pos__ __abs__ __int__ __float__ __round__ __enter__ __exit__ "
    "__iadd__ __isub__ __imul__ __itruediv__ __format__ __annotations__".split()
)
# Module attributes removed from the copies programs see (they reach objects by name).
REMOVED_ATTRS = {
    "operator": {"attrgetter", "methodcaller"},
    "string": {"Formatter", "Template"},
    "functools": {"singledispatchmethod"},
}

SAFE_BUILTIN_NAMES = (
    "abs all any ascii bin bool bytearray bytes callable chr complex dict dir divmod enumerate "
    "filter float format frozenset hasattr hash hex int isinstance issubclass iter len list map "
    "max min next object oct ord pow print range repr reversed round set slice sorted str sum "
    "super tuple type zip property staticmethod classmethod Ellipsis NotImplemented "
    "__build_class__ aiter anext"
).split()


class Forbidden(Exception):
    """Raised when a program tries something outside the policy."""


class ProgramTimeout(BaseException):
    """Raised into a program by the worker's own timer (the parent's SIGKILL is the backstop)."""


def _on_alarm(signum, frame):
    if _state["running"]:
        raise ProgramTimeout(f"exceeded {TIMEOUT:g} s")


def _allowed_name(name):
    if name in FORBIDDEN_NAMES:
        return False
    if name.startswith("_") and name != "_":
        return name in ALLOWED_DUNDERS
    return True


def _check_names(code):
    """Reject code that mentions a forbidden attribute or global (recursing into nested code)."""
    for name in code.co_names:
        if not _allowed_name(name):
            raise Forbidden(f"use of name {name!r} is not allowed")
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _check_names(const)


def _guard_attr_name(name):
    if not isinstance(name, str) or not _allowed_name(name):
        raise Forbidden(f"attribute {name!r} is not allowed")
    return name


def _safe_getattr(obj, name, *default):
    return getattr(obj, _guard_attr_name(name), *default)


def _safe_setattr(obj, name, value):
    if isinstance(obj, types.ModuleType):
        raise Forbidden("modules are read-only")
    return setattr(obj, _guard_attr_name(name), value)


def _safe_delattr(obj, name):
    if isinstance(obj, types.ModuleType):
        raise Forbidden("modules are read-only")
    return delattr(obj, _guard_attr_name(name))


def _exit(*args):
    raise SystemExit(*args)


def _blocked(name):
    def blocked(*args, **kwargs):
        raise Forbidden(f"{name}() is not allowed")

    blocked.__name__ = name
    return blocked


BLOCKED_BUILTINS = "open input eval exec compile globals locals vars breakpoint help memoryview".split()


# ---------------------------------------------------------------- module copies
_REAL = {}
_COPIES = {}
_PRISTINE = {}


def _sanitized(name):
    """A copy of module ``name`` holding only public attributes that are not modules."""
    if name in _COPIES:
        return _COPIES[name]
    real = __import__(name)
    for part in name.split(".")[1:]:
        real = getattr(real, part)
    copy = types.ModuleType(name)
    removed = REMOVED_ATTRS.get(name, set())
    for attr, value in vars(real).items():
        if attr.startswith("_") or attr in removed:
            continue
        if isinstance(value, types.ModuleType):
            sub = value.__name__
            if sub in ALLOWED_MODULES:
                copy.__dict__[attr] = _sanitized(sub)
            continue
        copy.__dict__[attr] = value
    _REAL[name] = real
    _COPIES[name] = copy
    _PRISTINE[name] = dict(copy.__dict__)
    return copy


_used_modules = set()


def _safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level != 0:
        raise Forbidden("relative imports are not allowed")
    top = name.split(".")[0]
    if name not in _COPIES and top not in _COPIES:
        raise Forbidden(f"import of module {name!r} is not allowed")
    mod = _COPIES.get(name) if fromlist else _COPIES[top]
    if mod is None:
        raise Forbidden(f"import of module {name!r} is not allowed")
    _used_modules.add(mod.__name__)
    if fromlist:
        for attr in fromlist:
            if attr != "*" and not _allowed_name(attr):
                raise Forbidden(f"import of {attr!r} is not allowed")
    return mod


def _restore_modules():
    """Undo changes a program made to module copies; True when something was changed."""
    changed = False
    for name in _used_modules:
        copy = _COPIES[name]
        pristine = _PRISTINE[name]
        d = copy.__dict__
        if len(d) != len(pristine) or any(d.get(k, d) is not v for k, v in pristine.items()):
            d.clear()
            d.update(pristine)
            changed = True
    _used_modules.clear()
    return changed


# ---------------------------------------------------------------- per-program state
MEMORY_RESULT = {"status": "memory_limit", "error_type": "MemoryError",
                 "error_message": "memory limit reached", "stdout": "", "duration_ms": 0.0}
INTERNAL_ERROR_RESULT = {"status": "crashed", "error_type": "WorkerError",
                         "error_message": "the worker failed while reporting this program",
                         "stdout": "", "duration_ms": 0.0}


class CappedWriter:
    """Stands in for sys.stdout: keeps the first ``limit`` characters, counts the rest."""

    def __init__(self, limit):
        self.limit = limit
        self.parts = []
        self.kept = 0
        self.total = 0

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str")
        n = len(s)
        self.total += n
        room = self.limit - self.kept
        if room > 0:
            piece = s[:room]
            self.parts.append(piece)
            self.kept += len(piece)
        return n

    def flush(self):
        pass

    def value(self):
        text = "".join(self.parts)
        if self.total > self.kept:
            text += f"\n...[truncated {self.total - self.kept} characters]"
        return text


def _reset_shared_state():
    random = _REAL.get("random")
    if random is not None:
        random.seed(0)  # programs that use random are reproducible, and cannot steer later ones
    decimal = _REAL.get("decimal")
    if decimal is not None:
        decimal.setcontext(decimal.Context())


# ---------------------------------------------------------------- audit hook (PEP 578)
_state = {"running": False, "violation": None}
_BLOCKED_PREFIXES = (
    "open", "os.", "socket.", "subprocess.", "shutil.", "ctypes.", "sys.settrace",
    "sys.setprofile", "sys.addaudithook", "gc.", "marshal.", "pickle.", "import",
    "code.__new__", "function.__new__", "builtins.input", "cpython.", "urllib.", "ftplib.",
    "http.", "smtplib.", "webbrowser.", "sqlite3.", "mmap.", "fcntl.", "resource.",
    "signal.", "syslog.", "winreg.", "_thread.", "threading.", "setopencodehook", "glob.",
    "tempfile.", "posix.", "pty.",
)


def _audit(event, args):
    if _state["running"] and event.startswith(_BLOCKED_PREFIXES):
        _state["violation"] = event
        raise Forbidden(f"blocked operation: {event}")


# ---------------------------------------------------------------- results
def _describe_value(value):
    """(value_type, json_value, repr) for what solution() returned."""
    if value is None:
        return "none", None, None
    if isinstance(value, bool):
        return "bool", value, repr(value)
    if isinstance(value, int):
        if abs(value) < 2**53:
            return "int", value, None
        try:
            return "int", float(value), f"<int with {value.bit_length()} bits>"
        except OverflowError:
            return "int", None, f"<int with {value.bit_length()} bits>"
    if isinstance(value, float):
        if math.isfinite(value):
            return "float", value, None
        return "float", None, repr(value)
    if isinstance(value, str):
        return "str", value[:VALUE_STR_LIMIT], None
    tname = type(value).__name__
    numbers = _REAL.get("numbers")
    if numbers is not None and isinstance(value, numbers.Real):
        try:
            f = float(value)
            return tname, (f if math.isfinite(f) else None), str(value)[:VALUE_STR_LIMIT]
        except Exception:
            pass
    try:
        text = repr(value)
    except BaseException:
        text = f"<unrepresentable {tname}>"
    return tname, None, text[:VALUE_STR_LIMIT]


def _error_line(tb):
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _line_of(source, word):
    """First line of ``source`` mentioning ``word`` (for policy errors found without an AST)."""
    if word:
        for i, line in enumerate(source.splitlines(), 1):
            if word in line:
                return i
    return None


def _short(exc):
    try:
        text = str(exc)
    except BaseException:
        text = ""
    return text[:500]


def run_program(source, builtins_template):
    """Run one program; returns (result dict, harmed: bool)."""
    t0 = time.perf_counter()
    out = CappedWriter(STDOUT_LIMIT)
    res = {"status": "ok"}
    harmed = False
    try:
        code = compile(source, "<program>", "exec", dont_inherit=True)
        _check_names(code)
    except SyntaxError as exc:
        res = {"status": "syntax_error", "error_type": type(exc).__name__,
               "error_message": _short(exc.msg), "error_line": exc.lineno}
        code = None
    except Forbidden as exc:
        res = {"status": "forbidden", "error_type": "Forbidden", "error_message": _short(exc),
               "error_line": _line_of(source, exc.args[0].split("'")[1] if "'" in exc.args[0] else "")}
        code = None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # null bytes, or nesting too deep for the compiler
        res = {"status": "syntax_error", "error_type": type(exc).__name__,
               "error_message": _short(exc)}
        code = None
    if code is not None:
        g = {"__builtins__": dict(builtins_template), "__name__": "__program__"}
        _reset_shared_state()
        _state["violation"] = None
        old_stdout = sys.stdout
        sys.stdout = out
        _state["running"] = True
        _signal.setitimer(_signal.ITIMER_REAL, TIMEOUT)
        try:
            exec(code, g)
            fn = g.get(ENTRY)
            if not callable(fn):
                res = {"status": "no_answer", "error_message": f"no {ENTRY}() defined"}
            else:
                value = fn()
                vtype, vjson, vrepr = _describe_value(value)
                if vtype == "none":
                    res = {"status": "no_answer", "error_message": f"{ENTRY}() returned None"}
                else:
                    res = {"status": "ok", "value_type": vtype, "value": vjson, "value_repr": vrepr}
        except BaseException as exc:  # noqa: BLE001 - everything a program raises is a result
            line = _error_line(exc.__traceback__)
            if isinstance(exc, MemoryError):
                # free the program's frames (and what they hold) before building the result
                exc.__traceback__ = None
                g.clear()
            if isinstance(exc, ProgramTimeout):
                res = {"status": "timeout", "error_type": "Timeout", "error_message": _short(exc)}
            elif isinstance(exc, Forbidden) or _state["violation"]:
                res = {"status": "forbidden", "error_type": "Forbidden", "error_message": _short(exc)}
            elif isinstance(exc, MemoryError):
                res = {"status": "memory_limit", "error_type": "MemoryError",
                       "error_message": _short(exc) or f"memory limit ({MEMORY_MB} MiB) reached"}
                harmed = True
            else:
                res = {"status": "runtime_error", "error_type": type(exc).__name__,
                       "error_message": _short(exc)}
            res["error_line"] = line
            exc = None
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _state["running"] = False
            sys.stdout = old_stdout
        if _state["violation"]:
            # a blocked operation was attempted (and maybe caught by the program)
            if res["status"] != "forbidden":
                res = {"status": "forbidden", "error_type": "Forbidden",
                       "error_message": f"blocked operation: {_state['violation']}"}
            harmed = True
        g.clear()
        if _restore_modules():
            res.setdefault("notes", "modified a shared module (restored)")
    res["stdout"] = out.value()
    res["duration_ms"] = (time.perf_counter() - t0) * 1000.0
    return res, harmed


def _set_limits():
    import resource

    def vm_bytes():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        return 0

    base = vm_bytes()
    limit = base + MEMORY_MB * 1024 * 1024
    for res, value in (
        (resource.RLIMIT_AS, limit),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 16),
        (resource.RLIMIT_NPROC, 0),
    ):
        try:
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError):
            pass


def _die_with_parent():
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except Exception:
        pass


def main():
    # Private copies of the protocol pipes; fds 0-2 then point at /dev/null so nothing a
    # program does at the C level can corrupt the protocol.
    proto_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    _die_with_parent()
    os.environ.clear()

    for name in ALLOWED_MODULES:
        try:
            _sanitized(name)
        except ImportError:
            pass
    if "datetime" in _REAL:  # warm lazy imports so they never happen under the audit hook
        _REAL["datetime"].datetime.strptime("2020", "%Y")
    bt = {n: getattr(builtins, n) for n in SAFE_BUILTIN_NAMES if hasattr(builtins, n)}
    for n in dir(builtins):
        obj = getattr(builtins, n)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            bt[n] = obj
    bt.update({n: _blocked(n) for n in BLOCKED_BUILTINS})
    bt.update(getattr=_safe_getattr, setattr=_safe_setattr, delattr=_safe_delattr,
              __import__=_safe_import, exit=_exit, quit=_exit)
    _signal.signal(_signal.SIGALRM, _on_alarm)
    _set_limits()
    sys.addaudithook(_audit)
    sys.setrecursionlimit(1000)
    dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode
    proto_out.write(dumps({"ready": True, "pid": os.getpid(), "modules": sorted(_COPIES)}).encode() + b"\n")

    done = 0
    for line in proto_in:
        msg = json.loads(line)
        for key, source in msg["batch"]:
            try:
                res, harmed = run_program(source, bt)
            except MemoryError:  # even our own bookkeeping ran out: no allocation until it is freed
                res, harmed = MEMORY_RESULT, True
            except BaseException:  # noqa: BLE001 - never let a program take the worker down silently
                res, harmed = INTERNAL_ERROR_RESULT, True
            res = dict(res)
            res["key"] = key
            done += 1
            recycle = harmed or done >= MAX_PROGRAMS
            if recycle:
                res["recycle"] = True
            try:
                data = dumps(res)
            except (ValueError, TypeError):
                res["value"] = None
                data = dumps(res)
            proto_out.write(data.encode() + b"\n")
            if recycle:
                os._exit(0)
    os._exit(0)


if __name__ == "__main__":
    main()
