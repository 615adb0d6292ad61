"""The sandbox worker: a long-lived zygote that runs untrusted programs one after another.

This file is self-contained (standard library only) because it is started as
``python -S -s -B -c <this source>`` inside the isolation layer (bubblewrap where available),
where pad is not importable.

Protocol (newline-delimited JSON):
  parent -> worker, on fd 0: ``{"batch": [[key, source], ...]}``
  worker -> parent, on fd 1: ``{"ready": ...}`` once, then one result object per program,
  in order, sent in bursts (every ``FLUSH_S`` of work and at the end of each batch), and
  ``{"loading": package}`` before importing a package for the next program.

Every program takes one of two paths, and gets the same label on either:

- **fast path, in this process**: programs whose compiled code is provably unable to change
  anything another program can see (no attribute stores, no classes, no imports but
  ``math``, no ``with``/generators/async, no name starting with ``_``, and only builtins that
  cannot reach shared state: see :func:`is_pure`). GSM8K-style programs are almost all here.
- **forked path**: everything else runs in a child forked from this warm process, after the
  child closed the protocol pipes, set its own rlimits and installed a stricter seccomp
  filter (no processes, signals, sockets or file writes). Whatever the child does, even after
  escaping the Python layer, dies with it; it can only write its own result, which this
  process validates.

A timer that fired makes the result ``timeout`` whatever the program does afterwards; turning
the returned value into text happens under the same timer.
"""

import builtins
import gc
import json
import math
import os
import select
import signal as _signal
import sys
import time
import types

CONFIG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
MEMORY_MB = int(CONFIG.get("memory_mb", 512))
STDOUT_LIMIT = int(CONFIG.get("stdout_limit", 8192))
MAX_PROGRAMS = int(CONFIG.get("max_programs", 20000))
TIMEOUT = float(CONFIG.get("timeout", 2.0))
CHILD_GRACE = float(CONFIG.get("child_grace", 0.1))
ENTRY = CONFIG.get("entry") or None  # None: solution() if defined, else the ans variable
POLICY = bool(CONFIG.get("python_policy", True))  # False only in tests of the OS layer
FAST_PATH = bool(CONFIG.get("fast_path", True)) and POLICY
SITE_DIR = CONFIG.get("site_dir")
SECCOMP = CONFIG.get("seccomp") or {}
ALLOWED_MODULES = tuple(
    CONFIG.get(
        "modules",
        "math cmath fractions decimal datetime time itertools functools collections statistics "
        "random re string operator heapq bisect numbers copy typing dataclasses enum".split(),
    )
)
THIRD_PARTY = tuple(CONFIG.get("third_party", ("numpy", "sympy")))
VALUE_STR_LIMIT = 1000
MAX_CHILD_MESSAGE = 1 << 20
FLUSH_S = 0.002
RECURSION_BUDGET = 1000  # frames a program may use, on either path

# Attribute/global names a program may not mention: frame and code introspection is the
# classic way out of a Python-level sandbox. (The OS layer contains programs that get out.)
FORBIDDEN_NAMES = frozenset(
    "gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code ag_await "
    "f_back f_globals f_locals f_builtins f_code f_trace tb_frame tb_next func_globals "
    "func_code mro __globals__ __code__ __closure__ __builtins__ __subclasses__ __bases__ "
    "__base__ __mro__ __dict__ __getattribute__ __reduce__ __reduce_ex__ __self__ __func__ "
    "__wrapped__ __import__ __loader__ __spec__ __traceback__ __objclass__ __defaults__ "
    "__kwdefaults__ __class__ __frame__ __getstate__ __setstate__ __init_subclass__ "
    "__set_name__ __class_getitem__ __weakref__".split()
)
# Module attributes removed from the copies programs see (they reach objects by name).
REMOVED_ATTRS = {
    "operator": {"attrgetter", "methodcaller"},
    "string": {"Formatter", "Template"},
    "functools": {"singledispatchmethod"},
}

SAFE_BUILTIN_NAMES = (
    "abs all any ascii bin bool bytearray bytes callable chr complex dict dir divmod enumerate "
    "filter float format frozenset hasattr hash hex id int isinstance issubclass iter len list map "
    "max min next object oct ord pow print range repr reversed round set slice sorted str sum "
    "super tuple type zip property staticmethod classmethod Ellipsis NotImplemented "
    "__build_class__ aiter anext"
).split()
# The fast path's builtins: none of them reaches an object shared between programs, or
# creates a class (a class can carry __del__), or looks an attribute up by a computed name.
FAST_BUILTIN_NAMES = (
    "abs all any ascii bin bool chr complex dict divmod enumerate filter float frozenset hex int "
    "isinstance iter len list map max min next oct ord pow print range repr reversed round set "
    "slice sorted str sum tuple zip"
).split()
FAST_MODULES = frozenset(("math",))
# Names whose presence sends a program to the forked path (besides any builtin that is not in
# FAST_BUILTIN_NAMES and any name starting with "_").
FAST_EXTRA_DENY = frozenset(("format", "format_map", "with_traceback", "mro", "obj"))


class Forbidden(Exception):
    """Raised when a program tries something outside the policy."""


class ProgramTimeout(BaseException):
    """Raised into a program by the worker's own timer (the parent's SIGKILL is the backstop)."""


_state = {"running": False, "violation": None, "fired": False, "trusted_import": False}


def _on_alarm(signum, frame):
    if _state["running"]:
        _state["fired"] = True
        raise ProgramTimeout(f"exceeded {TIMEOUT:g} s")


def _allowed_name(name):
    return name not in FORBIDDEN_NAMES


def _check_names(code):
    """Reject code that mentions a forbidden attribute or global (recursing into nested code).
    Names live in ``co_names``, and (for ``case C(attr=...)`` patterns) in tuples of strings."""
    for name in code.co_names:
        if not _allowed_name(name):
            raise Forbidden(f"use of name {name!r} is not allowed")
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _check_names(const)
        elif isinstance(const, tuple):
            for item in const:
                if isinstance(item, str) and not _allowed_name(item):
                    raise Forbidden(f"use of name {item!r} is not allowed")


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


# ---------------------------------------------------------------- modules
_REAL = {}
_COPIES = {}


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
    return copy


_LOADED_THIRD_PARTY = set()


def _safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` for programs: sanitized copies of the allowlisted standard modules, and
    the preloaded third-party packages (numpy, sympy) as they are."""
    if level != 0:
        raise Forbidden("relative imports are not allowed")
    top = name.split(".")[0]
    if top in _LOADED_THIRD_PARTY:
        _state["trusted_import"] = True  # a package's own lazy imports read its files
        try:
            return _REAL_IMPORT(name, globals, locals, fromlist, level)
        finally:
            _state["trusted_import"] = False
    if name not in _COPIES and top not in _COPIES:
        raise Forbidden(f"import of module {name!r} is not allowed")
    mod = _COPIES.get(name) if fromlist else _COPIES[top]
    if mod is None:
        raise Forbidden(f"import of module {name!r} is not allowed")
    for attr in fromlist or ():
        if attr != "*" and not _allowed_name(attr):
            raise Forbidden(f"import of {attr!r} is not allowed")
    return mod


def _fast_import(name, globals=None, locals=None, fromlist=(), level=0):
    """The fast path's ``__import__`` (is_pure() admits only FAST_MODULES)."""
    if level != 0 or name not in FAST_MODULES:
        raise Forbidden(f"import of module {name!r} is not allowed")
    return _COPIES[name]


_REAL_IMPORT = builtins.__import__


def _isolated(fn, **names):
    """``fn`` rebuilt with a globals dict holding only ``names``: a program that reaches its
    ``__globals__`` finds nothing of the worker there."""
    return types.FunctionType(fn.__code__, dict(names, __builtins__={}), fn.__name__, fn.__defaults__)


# ---------------------------------------------------------------- the fast-path check
def _opcodes(*names):
    import dis

    return frozenset(dis.opmap[n] for n in names if n in dis.opmap)


# Opcodes that store into objects a program did not create, define classes, or run code
# later (context managers, generators, coroutines) are routed to the forked path.
_IMPURE_OPS = _opcodes("STORE_ATTR", "DELETE_ATTR", "LOAD_BUILD_CLASS", "IMPORT_STAR",
                       "BEFORE_WITH", "BEFORE_ASYNC_WITH", "SETUP_WITH", "SETUP_ASYNC_WITH",
                       "SETUP_ANNOTATIONS", "GET_AWAITABLE", "GET_AITER", "GET_ANEXT",
                       "ASYNC_GEN_WRAP", "SEND", "PRINT_EXPR", "YIELD_FROM", "LOAD_SUPER_ATTR",
                       "CALL_INTRINSIC_1", "CALL_INTRINSIC_2", "STORE_GLOBAL", "DELETE_GLOBAL",
                       "MATCH_CLASS", "MATCH_KEYS")  # match reads attributes named in co_consts
_IMPORT_NAME = _opcodes("IMPORT_NAME")
_EXTENDED_ARG = next(iter(_opcodes("EXTENDED_ARG")))
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200  # GENERATOR COROUTINE ITERABLE_COROUTINE ASYNC_GENERATOR
_FAST_DENY = FAST_EXTRA_DENY | FORBIDDEN_NAMES | frozenset(
    n for n in set(dir(builtins)) | set(SAFE_BUILTIN_NAMES) | set(BLOCKED_BUILTINS)
    | {"getattr", "setattr", "delattr", "exit", "quit", "copyright", "credits", "license"}
    if n not in FAST_BUILTIN_NAMES)
_FAST_BUILTINS = {n: getattr(builtins, n) for n in FAST_BUILTIN_NAMES}
_FAST_BUILTINS.update({n: getattr(builtins, n) for n in dir(builtins)
                       if isinstance(getattr(builtins, n), type)
                       and issubclass(getattr(builtins, n), BaseException)})
_FAST_BUILTINS["__import__"] = None  # set in main(), once the math copy exists
_FAST_DENY = _FAST_DENY - frozenset(n for n in _FAST_BUILTINS if not n.startswith("_"))


def _imported_names(code):
    """Names the IMPORT_NAME instructions of ``code`` import."""
    raw, out, ext = code.co_code, [], 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | ext
        ext = (arg << 8) if op == _EXTENDED_ARG else 0
        if op in _IMPORT_NAME:
            out.append(code.co_names[arg])
    return out


def is_pure(code):
    """True when running ``code`` can change nothing that outlives it (so nothing another
    program could see). Checked on every nested code object:

    - no opcode in ``_IMPURE_OPS`` (attribute stores, classes, ``with``, star imports, globals
      declared ``global``...), no generator or coroutine other than a generator expression;
    - every name (globals, attributes, methods) is public (no leading ``_``) and is not a
      builtin outside ``FAST_BUILTIN_NAMES`` (no ``getattr``, ``type``, ``vars``, ``open``...);
    - imports only of ``FAST_MODULES``.

    Reachable objects are then the program's own, immutable constants, builtin functions and
    types (whose attributes cannot be set), and a module copy no opcode can write to.
    """
    stack = [code]
    while stack:
        c = stack.pop()
        raw = c.co_code
        ops = set(raw[::2])
        if not _IMPURE_OPS.isdisjoint(ops):
            return False
        if c.co_flags & _GENERATOR_FLAGS and c.co_name != "<genexpr>":
            return False
        for name in c.co_names:
            if name[:1] == "_" or name in _FAST_DENY:
                return False
        if not _IMPORT_NAME.isdisjoint(ops):
            if any(n not in FAST_MODULES for n in _imported_names(c)):
                return False
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                stack.append(const)
    return True


def _third_party_imports(code):
    """Top-level names of preloadable packages that ``code`` imports."""
    found, stack = set(), [code]
    while stack:
        c = stack.pop()
        if not _IMPORT_NAME.isdisjoint(c.co_code[::2]):
            found.update(n.split(".")[0] for n in _imported_names(c))
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return found & set(THIRD_PARTY)


# ---------------------------------------------------------------- per-program state
INTERNAL_ERROR_RESULT = {"status": "crashed", "error_type": "WorkerError",
                         "error_message": "the worker failed while running this program",
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


# ---------------------------------------------------------------- audit hook (PEP 578)
_BLOCKED_PREFIXES = (
    "open", "os.", "socket.", "subprocess.", "shutil.", "ctypes.", "sys.settrace",
    "sys.setprofile", "sys.addaudithook", "gc.", "marshal.", "pickle.", "import",
    "code.__new__", "function.__new__", "builtins.input", "cpython.", "urllib.", "ftplib.",
    "http.", "smtplib.", "webbrowser.", "sqlite3.", "mmap.", "fcntl.", "resource.",
    "signal.", "syslog.", "winreg.", "_thread.", "threading.", "setopencodehook", "glob.",
    "tempfile.", "posix.", "pty.",
)


_READ_ROOTS = []  # the Python installation and the preloaded packages: imports read them
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _import_read(event, args):
    """True for what a lazy import inside a preloaded package does: import one of its
    modules, list or read (never write) files under the Python installation."""
    if event == "import":
        return str(args[0]).split(".")[0] in _LOADED_THIRD_PARTY
    if event == "marshal.loads":  # a cached .pyc (marshal itself is not importable by programs)
        return True
    if event in ("open", "os.listdir", "os.scandir"):
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or ".." in path or not path.startswith(tuple(_READ_ROOTS)):
            return False
        if event == "open":
            mode, flags = args[1], args[2]
            return (mode is None or "r" in mode and "+" not in mode) and not (flags or 0) & _WRITE_FLAGS
        return True
    return False


def _audit(event, args):
    if _state["running"] and not _state["trusted_import"] and event.startswith(_BLOCKED_PREFIXES) \
            and not _import_read(event, args):
        _state["violation"] = event
        raise Forbidden(f"blocked operation: {event}")


# ---------------------------------------------------------------- results
def _describe_value(value):
    """(value_type, json_value, repr) for what the program returned."""
    if value is None:
        return "none", None, None
    if isinstance(value, bool):
        return "bool", value, repr(value)
    if type(value) is int:
        if abs(value) < 2**53:
            return "int", value, None
        try:
            return "int", float(value), f"<int with {value.bit_length()} bits>"
        except OverflowError:
            return "int", None, f"<int with {value.bit_length()} bits>"
    if type(value) is float:
        if math.isfinite(value):
            return "float", value, None
        return "float", None, repr(value)
    if type(value) is str:
        return "str", value[:VALUE_STR_LIMIT], None
    tname = str(type(value).__name__)[:100]
    numbers = _REAL.get("numbers")
    if numbers is not None and isinstance(value, numbers.Real):
        try:
            f = float(value)
            return tname, (f if math.isfinite(f) else None), str(str(value))[:VALUE_STR_LIMIT]
        except Exception:
            pass
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        try:  # a numpy scalar (np.float64 is a float subclass and handled above)
            inner = value.item()
            if isinstance(inner, (bool, int, float)):
                vtype, vjson, vrepr = _describe_value(inner)
                return tname, vjson, vrepr if vrepr is not None else str(inner)
        except Exception:
            pass
    try:
        text = str(repr(value))
    except Exception:  # a timeout (BaseException) still ends the program
        text = f"<unrepresentable {tname}>"
    return tname, None, text[:VALUE_STR_LIMIT]


def _error_line(tb):
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _short(exc):
    try:
        text = str(exc)
    except BaseException:
        text = ""
    return text[:500]


def _line_of(source, word):
    """First line of ``source`` mentioning ``word`` (for policy errors found without an AST)."""
    if word:
        for i, line in enumerate(source.splitlines(), 1):
            if word in line:
                return i
    return None


def compile_program(source):
    """``(code, None)`` or ``(None, result)`` for a program that does not compile or names
    something the policy forbids."""
    try:
        code = compile(source, "<program>", "exec", dont_inherit=True)
        if POLICY:
            _check_names(code)
        return code, None
    except SyntaxError as exc:
        return None, {"status": "syntax_error", "error_type": type(exc).__name__,
                      "error_message": _short(exc.msg), "error_line": exc.lineno}
    except Forbidden as exc:
        word = exc.args[0].split("'")[1] if "'" in exc.args[0] else ""
        return None, {"status": "forbidden", "error_type": "Forbidden", "error_message": _short(exc),
                      "error_line": _line_of(source, word)}
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        # null bytes, or nesting too deep for the compiler
        return None, {"status": "syntax_error", "error_type": type(exc).__name__,
                      "error_message": _short(exc)}


def _answer(g):
    """``(answer, how)``: the entry function's return value or the entry variable's value."""
    if ENTRY:
        if ENTRY not in g:
            raise LookupError(f"no {ENTRY}() or {ENTRY} variable defined")
        obj = g[ENTRY]
        return (obj(), ENTRY + "()") if callable(obj) else (obj, ENTRY)
    if callable(g.get("solution")):
        return g["solution"](), "solution()"
    if "ans" in g:
        return g["ans"], "ans"
    raise LookupError("no solution() defined and no ans variable set")


def run_program(code, builtins_template):
    """Run compiled ``code`` in this process; returns (result dict, harmed: bool)."""
    out = CappedWriter(STDOUT_LIMIT)
    harmed = False
    g = {"__builtins__": dict(builtins_template), "__name__": "__program__"}
    depth, frame = 0, sys._getframe()
    while frame is not None:  # the same recursion budget whichever path called us
        depth, frame = depth + 1, frame.f_back
    sys.setrecursionlimit(depth + RECURSION_BUDGET)
    _state["violation"] = None
    _state["fired"] = False
    old_stdout = sys.stdout
    sys.stdout = out
    _state["running"] = True
    _signal.setitimer(_signal.ITIMER_REAL, TIMEOUT, 0.05)
    try:
        exec(code, g)
        try:
            value, how = _answer(g)
        except LookupError as exc:
            res = {"status": "no_answer", "error_message": str(exc)}
        else:
            vtype, vjson, vrepr = _describe_value(value)
            if vtype == "none":
                res = {"status": "no_answer", "error_message": f"{how} is None"}
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
            res = {"status": "runtime_error", "error_type": str(type(exc).__name__)[:100],
                   "error_message": _short(exc)}
        res["error_line"] = line
        exc = None
    finally:
        _state["running"] = False
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        sys.stdout = old_stdout
    if _state["fired"]:  # the timer fired: whatever the program did afterwards, it timed out
        res = {"status": "timeout", "error_type": "Timeout", "error_message": f"exceeded {TIMEOUT:g} s"}
    elif _state["violation"]:
        # a blocked operation was attempted (and maybe caught by the program)
        if res["status"] != "forbidden":
            res = {"status": "forbidden", "error_type": "Forbidden",
                   "error_message": f"blocked operation: {_state['violation']}"}
        harmed = True
    g.clear()
    res["stdout"] = out.value()
    return res, harmed


# ---------------------------------------------------------------- the forked path
_PROTOCOL_FDS = []


def _vm_bytes():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _set_rlimits():
    """The zygote's own limits: no file writes or core dumps, and a soft address-space budget
    for fast-path programs (raised only around trusted package imports)."""
    import resource

    limit = _vm_bytes() + MEMORY_MB * 1024 * 1024
    for res, soft, hard in ((resource.RLIMIT_FSIZE, 0, 0), (resource.RLIMIT_CORE, 0, 0),
                            (resource.RLIMIT_AS, limit, resource.RLIM_INFINITY)):
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            pass


_CHILD_LIMITS = []  # what each forked program sets, computed once in the zygote
_SECCOMP_FILTERS = {}  # name -> (libc, keepalive buffer, struct sock_fprog), built once


def _prepare_seccomp(name, hex_program):
    import ctypes

    program = bytes.fromhex(hex_program)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(program, len(program))
    _SECCOMP_FILTERS[name] = (libc, buf, SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p)))


def _install_seccomp(name):
    import ctypes

    libc, _, prog = _SECCOMP_FILTERS[name]
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")


def _child(code, wfd, bt):
    """In the forked child: lock down, run, write the result to ``wfd``, exit."""
    data = b""
    try:
        for fd in _PROTOCOL_FDS:
            os.close(fd)
        if "random" in _REAL:  # random reseeds itself from the OS after fork: undo that
            _REAL["random"].seed(0)
        import resource

        limit = _vm_bytes() + MEMORY_MB * 1024 * 1024  # the same headroom whatever ran before
        for res, soft, hard in _CHILD_LIMITS:
            if res == resource.RLIMIT_AS:
                soft = hard = limit
            resource.setrlimit(res, (soft, hard))
        if "child" in _SECCOMP_FILTERS:
            _install_seccomp("child")
        res, _ = run_program(code, bt)
        data = _encode(res)
    except BaseException:  # noqa: BLE001
        data = b""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(wfd, view):]
    finally:
        os._exit(0)


def run_forked(code, bt):
    """Run ``code`` in a child forked from this process; returns (result dict, harmed=False)."""
    rfd, wfd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(code, wfd, bt)
    os.close(wfd)
    deadline = started + TIMEOUT + CHILD_GRACE
    chunks, size, killed = [], 0, False
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or size > MAX_CHILD_MESSAGE:
                os.kill(pid, _signal.SIGKILL)
                killed = True
                break
            if not poller.poll(left * 1000):
                continue
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(rfd)
    _, status = os.waitpid(pid, 0)
    if killed and size <= MAX_CHILD_MESSAGE or time.monotonic() - started >= TIMEOUT:
        # measured here, not taken from the child: a program that ran past its time is a
        # timeout even if it reset its own timer state
        return {"status": "timeout", "error_type": "Timeout", "error_message": f"exceeded {TIMEOUT:g} s",
                "stdout": ""}, False
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == _signal.SIGXCPU:
            return {"status": "timeout", "error_type": "Timeout",
                    "error_message": f"exceeded {TIMEOUT:g} s (CPU)", "stdout": ""}, False
        try:
            how = _signal.Signals(sig).name
        except ValueError:
            how = f"signal {sig}"
        return {"status": "crashed", "error_type": "WorkerDied",
                "error_message": f"the interpreter died ({how})", "stdout": ""}, False
    try:
        msg = json.loads(b"".join(chunks))
        if not isinstance(msg, dict) or not isinstance(msg.get("status"), str):
            raise ValueError
    except ValueError:
        how = f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else "no result"
        return {"status": "crashed", "error_type": "ProtocolError",
                "error_message": f"the program's process ended without a valid result ({how})",
                "stdout": ""}, False
    return {k: msg[k] for k in _RESULT_FIELDS if k in msg}, False


_RESULT_FIELDS = ("status", "value", "value_type", "value_repr", "error_type", "error_message",
                  "error_line", "stdout")


# ---------------------------------------------------------------- main loop
_dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode


def _encode(res):
    try:
        return _dumps(res).encode() + b"\n"
    except (ValueError, TypeError):
        res = dict(res, value=None)
        return _dumps(res).encode() + b"\n"


def handle(source, policy_bt, notify):
    """Compile, choose the path, run: (result dict, harmed)."""
    t0 = time.perf_counter()
    code, res = compile_program(source)
    harmed = False
    path = None
    if code is not None:
        if FAST_PATH and is_pure(code):
            path = "fast"
            res, harmed = run_program(code, _FAST_BUILTINS)
            counts = gc.get_count()
            if counts[1] or counts[2]:  # the program made enough objects for the collector to run:
                gc.collect()  # whatever cycles it left must not eat a later program's memory
            if res["status"] == "memory_limit" and _RAN[0]:
                res["retry"] = True  # earlier programs may have fragmented this worker: rerun fresh
        else:
            path = "fork"
            for pkg in sorted(_third_party_imports(code) - _LOADED_THIRD_PARTY):
                notify({"loading": pkg})  # the parent extends this program's deadline
                _preload(pkg)
            res, harmed = run_forked(code, policy_bt)
    res["duration_ms"] = (time.perf_counter() - t0) * 1000.0
    res["path"] = path
    _RAN[0] += 1
    return res, harmed


_RAN = [0]  # programs this worker has run


_PRELOAD_SUBMODULES = {"numpy": ("numpy.random", "numpy.linalg", "numpy.fft", "numpy.polynomial")}


def _preload(pkg):
    """Import a third-party package in the zygote (outside any program), once."""
    import importlib
    import resource

    if pkg in _LOADED_THIRD_PARTY:
        return
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        importlib.import_module(pkg)
        for sub in _PRELOAD_SUBMODULES.get(pkg, ()):
            importlib.import_module(sub)
        if pkg == "numpy":
            sys.modules["numpy"].random.seed(0)
        _LOADED_THIRD_PARTY.add(pkg)
    except Exception:
        pass
    finally:
        _set_rlimits()
        _child_limits()
        gc.freeze()  # children never scan (and so never copy) what the zygote holds


def _child_limits():
    """Compute once, in the zygote, the rlimits each forked program sets."""
    import resource

    limit = _vm_bytes() + MEMORY_MB * 1024 * 1024
    cpu = int(TIMEOUT + CHILD_GRACE) + 2
    _CHILD_LIMITS[:] = [(resource.RLIMIT_FSIZE, 0, 0), (resource.RLIMIT_CORE, 0, 0),
                        (resource.RLIMIT_AS, limit, limit), (resource.RLIMIT_NOFILE, 16, 16),
                        (resource.RLIMIT_NPROC, 0, 0), (resource.RLIMIT_CPU, cpu, cpu)]


def _die_with_parent():
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        libc.prctl(4, 0)  # PR_SET_DUMPABLE 0: no ptrace or /proc/PID/mem from siblings
    except Exception:
        pass


def main():
    # Private copies of the protocol pipes; fds 0-2 then point at /dev/null so nothing a
    # program does at the C level can corrupt the protocol.
    proto_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    _PROTOCOL_FDS.extend((proto_in.fileno(), proto_out.fileno()))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    sys.path[:] = [p for p in sys.path if p] + ([SITE_DIR] if SITE_DIR else [])
    _READ_ROOTS.extend(os.path.join(os.path.realpath(p), "") for p in
                       [os.path.dirname(os.__file__)] + ([SITE_DIR] if SITE_DIR else []))
    _die_with_parent()
    os.environ.clear()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # no threads: children are forked from this process

    for name in ALLOWED_MODULES:
        try:
            _sanitized(name)
        except ImportError:
            pass
    if "random" in _REAL:  # every program starts from the same random state
        _REAL["random"].seed(0)
    if "datetime" in _REAL:  # warm lazy imports so they never happen under the audit hook
        _REAL["datetime"].datetime.strptime("2020", "%Y")
        _REAL["datetime"].date(2020, 1, 1).strftime("%Y")
    import ctypes  # noqa: F401 - loaded before seccomp and the audit hook, used by children

    _FAST_BUILTINS["__import__"] = _isolated(
        _fast_import, FAST_MODULES=FAST_MODULES, Forbidden=Forbidden,
        _COPIES={n: _COPIES[n] for n in FAST_MODULES if n in _COPIES})
    if POLICY:
        bt = {n: getattr(builtins, n) for n in SAFE_BUILTIN_NAMES if hasattr(builtins, n)}
        for n in dir(builtins):
            obj = getattr(builtins, n)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                bt[n] = obj
        bt.update({n: _blocked(n) for n in BLOCKED_BUILTINS})
        bt.update(getattr=_safe_getattr, setattr=_safe_setattr, delattr=_safe_delattr,
                  __import__=_safe_import, exit=_exit, quit=_exit)
    else:
        bt = dict(vars(builtins))
    _signal.signal(_signal.SIGALRM, _on_alarm)
    _set_rlimits()
    _child_limits()
    for name, program in SECCOMP.items():
        _prepare_seccomp(name, program)
    seccomp_on = False
    if "sandbox" in _SECCOMP_FILTERS:
        _install_seccomp("sandbox")
        seccomp_on = True
    gc.freeze()
    if POLICY:
        sys.addaudithook(_audit)
    proto_out.write(_dumps({"ready": True, "pid": os.getpid(), "modules": sorted(_COPIES),
                            "seccomp": seccomp_on}).encode() + b"\n")

    # Results go out in small bursts (one write per FLUSH_S of work, and at the end of every
    # batch): far fewer wake-ups of the parent. A program that hangs or kills the worker loses
    # at most the burst before it, and the parent then reruns each pending program alone.
    out_buf = []
    flushed_at = time.perf_counter()

    def flush():
        nonlocal flushed_at
        if out_buf:
            proto_out.write(b"".join(out_buf))
            out_buf.clear()
        flushed_at = time.perf_counter()

    def notify(msg):
        flush()
        proto_out.write(_encode(msg))

    done = 0
    for line in proto_in:
        msg = json.loads(line)
        for key, source in msg["batch"]:
            if out_buf and time.perf_counter() - flushed_at > FLUSH_S:
                flush()
            try:
                res, harmed = handle(source, bt, notify)
            except MemoryError:  # even our own bookkeeping ran out: no allocation until it is freed
                res, harmed = dict(INTERNAL_ERROR_RESULT, status="memory_limit", error_type="MemoryError",
                                   error_message="memory limit reached"), True
            except BaseException:  # noqa: BLE001 - never let a program take the worker down silently
                res, harmed = dict(INTERNAL_ERROR_RESULT), True
                if _state["fired"]:
                    res.update(status="timeout", error_type="Timeout",
                               error_message=f"exceeded {TIMEOUT:g} s")
            res["key"] = key
            done += 1
            recycle = harmed or done >= MAX_PROGRAMS
            if recycle:
                res["recycle"] = True
            out_buf.append(_encode(res))
            if recycle:
                flush()
                os._exit(0)
        flush()
    os._exit(0)


if __name__ == "__main__":
    main()
