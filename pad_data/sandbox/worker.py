"""The sandbox worker: a long-lived zygote that runs untrusted programs one after another.

This file is self-contained (standard library only) because it is started as
``python -S -s -B -c <this source>`` inside the isolation layer (bubblewrap where available),
where pad is not importable.

Protocol (newline-delimited JSON):
  parent -> worker, on fd 0: ``{"batch": [[key, source], ...]}`` (``[key, source, preamble]`` for a
  program that runs after a preamble: see :func:`compile_program`)
  worker -> parent, on fd 1: ``{"ready": ...}`` once, then one result object per program,
  in order, sent in bursts (every ``FLUSH_S`` of work and at the end of each batch), and
  ``{"loading": package}`` before importing a package for the next program.

Every program takes one of two paths, and gets the same label on either:

- **fast path, in this process**: programs whose compiled code is provably unable to change
  anything another program can see (imports only of ``math`` and ``from fractions import
  Fraction``; classes and attribute stores only with nothing imported but ``math``, whose copy
  is read-only, and classes only on ``object``, exceptions and the program's own classes; no
  ``with``/generators/async; no name starting with ``_`` but the dunder methods a class body
  defines, and none that C code calls back mid-operation; only builtins that cannot reach shared
  state: see :func:`is_pure`). GSM8K-style programs are almost all here.
- **forked path**: everything else runs in a child forked from this warm process, after the
  child closed the protocol pipes, set its own rlimits and installed a stricter seccomp
  filter (no processes, signals, sockets or file writes). Whatever the child does, even after
  escaping the Python layer, dies with it; it can only write its own result, which this
  process validates.

A program's time is its own: CPU time (a profiling timer in the process that runs it), and for
a forked program also time asleep or blocked, never time spent waiting for a core (see
:func:`run_forked`), so a label does not depend on the machine's load; ``WALL_LIMIT`` is the
backstop. A timer that fired makes the result ``timeout`` whatever the program does
afterwards; turning a container's value into text happens under the same timer, and deciding
whether a value is a number runs none of the program's code (:func:`_describe_value`).
"""

import ast
import builtins
import gc
import json
import marshal
import math
import os
import resource
import select
import signal as _signal
import sys
import time
import types

CONFIG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
MEMORY_MB = int(CONFIG.get("memory_mb", 512))
STDOUT_LIMIT = int(CONFIG.get("stdout_limit", 8192))
MAX_PROGRAMS = int(CONFIG.get("max_programs", 20000))
TIMEOUT = float(CONFIG.get("timeout", 2.0))  # seconds of CPU time a program may use
WALL_LIMIT = float(CONFIG.get("wall_limit", 10 * TIMEOUT))  # the backstop for programs that block
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
        "random re string operator heapq bisect numbers copy typing dataclasses enum __future__".split(),
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
    "__set_name__ __class_getitem__ __weakref__ "
    # an ABC's caches are memos of isinstance() filled by whatever ran in the zygote before
    # (a fast-path Fraction program, a package preload): reading them would make one
    # program's output depend on another's
    "_dump_registry _abc_impl _abc_registry _abc_cache _abc_negative_cache "
    "_abc_negative_cache_version _abc_registry_clear _abc_caches_clear".split()
)
# Module attributes replaced in the copies programs see: those that look attributes up by a name
# the program gives, by versions that check the name (or, where that is not enough, by a stub
# that refuses: a program using one is `forbidden`, not a program with an error). Set below,
# once the checks are defined.
REPLACED_ATTRS = {"operator": {}, "string": {}, "functools": {}}

SAFE_BUILTIN_NAMES = (
    "abs all any ascii bin bool bytearray bytes callable chr complex dict dir divmod enumerate "
    "filter float format frozenset hasattr hash hex id int isinstance issubclass iter len list map "
    "max min next object oct ord pow print range repr reversed round set slice sorted str sum "
    "super tuple type zip property staticmethod classmethod Ellipsis NotImplemented "
    "__build_class__ aiter anext"
).split()
# The fast path's builtins: none of them reaches an object shared between programs, or
# creates a class (a class can carry __del__), or looks an attribute up by a computed name.
# Not ``slice``: an extended slice is the one way to an assignment CPython 3.11 gets wrong
# (see :func:`is_pure`).
FAST_BUILTIN_NAMES = (
    "abs all any ascii bin bool chr complex dict divmod enumerate filter float frozenset hex int "
    "isinstance iter len list map max min next oct ord pow print range repr reversed round set "
    "sorted str sum tuple zip object property staticmethod classmethod format"
).split()
# ``fractions`` only as ``from fractions import Fraction``: the module's other names (Decimal and
# its context, numbers and its ABC registry) are never bound, Fraction's own ways to shared
# state (``register``, ``from_decimal``: the decimal context) are denied names, and the ABC
# caches its isinstance() checks fill cannot be read (FORBIDDEN_NAMES).
FAST_MODULES = frozenset(("math", "fractions"))
# A program that stores attributes or defines classes may import only these: every object it
# reaches that it did not make is then a builtin (immutable) or a read-only module copy, so an
# attribute store can land only on its own objects. (Fraction is a Python class: its methods
# and the class itself take attributes.)
OWN_OBJECT_MODULES = frozenset(("math",))
# Names starting with "_" a fast-path program may bind in its own namespaces (module and class
# bodies: STORE_NAME only, never as an attribute): what a class body binds itself, and methods
# that run only when the program's own code or a builtin called by it invokes them, under the
# program's timer, on objects their caller holds: construction, text, arithmetic. Not the
# methods C code calls back in the middle of its own work on a container or an argument
# (comparisons, ``__hash__``, ``__len__``, ``__iter__``, ``__getitem__``, ``__bool__``,
# ``__index__``/``__int__``/``__float__``, ``__call__``): CPython 3.11 keeps borrowed pointers
# across some of those calls (comparing nested lists with an ``__eq__`` that empties them reads
# freed memory), and in the worker itself that would corrupt every later program. Not
# ``__del__`` (runs at collection, after the program), ``__getattr__``, ``__setattr__``,
# ``__new__``, descriptors' ``__get__``/``__set__``, or ``__classcell__`` (super()).
FAST_DUNDER_BINDS = frozenset(
    "__module__ __qualname__ __doc__ __init__ __repr__ __str__ __format__ __neg__ __pos__ "
    "__abs__ __round__ __add__ __radd__ __iadd__ __sub__ __rsub__ __isub__ __mul__ __rmul__ "
    "__imul__ __truediv__ __rtruediv__ __itruediv__ __floordiv__ __rfloordiv__ __ifloordiv__ "
    "__mod__ __rmod__ __imod__ __pow__ __rpow__ __ipow__".split()
)
# Names whose presence sends a program to the forked path (besides any builtin that is not in
# FAST_BUILTIN_NAMES and any name starting with "_").
FAST_EXTRA_DENY = frozenset(("format_map", "with_traceback", "mro", "obj", "register", "from_decimal"))


class Forbidden(Exception):
    """Raised when a program tries something outside the policy."""


class ProgramTimeout(BaseException):
    """Raised into a program by the worker's own timer (the parent's SIGKILL is the backstop)."""


_state = {"running": False, "violation": None, "fired": False, "trusted_import": False, "cpu0": 0.0, "globals": None,
          "overrun": None, "layout": None, "script_answer": None,
          "result_fd": None}  # set by main() for the fast path; a forked program's process just ends


def _exit_now():
    os._exit(0)


def _on_timer(signum, frame):
    if _state["running"]:
        used = time.process_time() - _state["cpu0"]
        if used < TIMEOUT:  # the kernel's profiling timer can run a little ahead of the CPU clock
            _signal.setitimer(_signal.ITIMER_PROF, TIMEOUT - used, 0.05)
            return
        if _state["fired"] and used > TIMEOUT + CHILD_GRACE:
            _state["overrun"]()  # it went on after its timeout, catching it: end it here
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
    """``name`` as an exact ``str`` if a program may look it up: a str subclass could compare
    unequal to a forbidden name in this check and equal in the lookup that follows."""
    if not isinstance(name, str):
        raise Forbidden(f"attribute {name!r} is not allowed")
    name = _STR_COPY(name)
    if not _allowed_name(name):
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


def _wrapper_names(names):
    """The attribute names given to ``functools.update_wrapper``/``wraps``: its defaults, or names
    a program could look up itself (the library reads and writes them with the real getattr)."""
    names = tuple(names)
    for name in names:
        if not (type(name) is str and name in _WRAPPER_DEFAULTS):
            _guard_attr_name(name)
    return tuple(_STR_COPY(name) for name in names)


def _update_wrapper(wrapper, wrapped, assigned=None, updated=None):
    import functools

    return functools.update_wrapper(
        wrapper, wrapped, _wrapper_names(functools.WRAPPER_ASSIGNMENTS if assigned is None else assigned),
        _wrapper_names(functools.WRAPPER_UPDATES if updated is None else updated))


def _wraps(wrapped, assigned=None, updated=None):
    import functools

    return functools.partial(_update_wrapper, wrapped=wrapped, assigned=assigned, updated=updated)


_WRAPPER_DEFAULTS = frozenset(("__module__", "__name__", "__qualname__", "__annotations__", "__doc__", "__dict__"))


def _exit(*args):
    raise SystemExit(*args)


def _blocked(name):
    def blocked(*args, **kwargs):
        raise Forbidden(f"{name}() is not allowed")

    blocked.__name__ = name
    return blocked


BLOCKED_BUILTINS = "open input eval exec compile globals locals vars breakpoint help memoryview".split()


def _attrgetter(*names):
    """``operator.attrgetter`` through the checked getattr, each dotted part checked."""
    if not names:
        raise TypeError("attrgetter expected 1 argument, got 0")
    if not all(isinstance(name, str) for name in names):
        raise TypeError("attribute name must be a string")
    parts = [[_guard_attr_name(p) for p in _guard_attr_name(name).split(".")] for name in names]

    def get(obj):
        values = []
        for path in parts:
            value = obj
            for part in path:
                value = getattr(value, part)
            values.append(value)
        return values[0] if len(values) == 1 else tuple(values)

    return get


def _methodcaller(name, *args, **kwargs):
    """``operator.methodcaller`` through the checked getattr."""
    if not isinstance(name, str):
        raise TypeError("method name must be a string")
    name = _guard_attr_name(name)

    def call(obj):
        return getattr(obj, name)(*args, **kwargs)

    return call


REPLACED_ATTRS["functools"].update(update_wrapper=_update_wrapper, wraps=_wraps,
                                   singledispatchmethod=_blocked("functools.singledispatchmethod"))
REPLACED_ATTRS["operator"].update(attrgetter=_attrgetter, methodcaller=_methodcaller)
# a Formatter looks fields up by names in its format string (a Template only in its mapping)
REPLACED_ATTRS["string"].update(Formatter=_blocked("string.Formatter"))


# ---------------------------------------------------------------- modules
_REAL = {}
_COPIES = {}


class _ReadOnlyModule(types.ModuleType):
    """A module copy: one serves every program of a worker, so no program may rebind its names
    (on the fast path an attribute store would reach the next program; forked, it behaves the
    same)."""

    __slots__ = ()


def _read_only(self, name, value=None):
    raise Forbidden("modules are read-only")


def _sanitized(name):
    """A read-only copy of module ``name`` holding only public attributes that are not modules."""
    if name in _COPIES:
        return _COPIES[name]
    real = __import__(name)
    for part in name.split(".")[1:]:
        real = getattr(real, part)
    copy = _ReadOnlyModule(name)
    for attr, value in vars(real).items():
        if attr.startswith("_"):
            continue
        if isinstance(value, types.ModuleType):
            sub = value.__name__
            if sub in ALLOWED_MODULES:
                copy.__dict__[attr] = _sanitized(sub)
            continue
        copy.__dict__[attr] = REPLACED_ATTRS.get(name, {}).get(attr, value)
    _REAL[name] = real
    _COPIES[name] = copy
    return copy


_LOADED_THIRD_PARTY = set()
_THIRD_PARTY_MODULES = {}  # preloaded package name -> module, for the fast path's __import__
# In the numpy zygote: the packages its worker loads and it does not (sympy). A program reaching
# one by a name no import statement shows (an annotation string that typing evaluates), a library
# importing what this zygote never loaded, or a value of a class this zygote never learnt is run
# by the worker instead (_defer_to_worker).
_DEFERRED = set()
DEFERRED = "deferred"  # a numpy-zygote child's answer: the worker, which holds every package, runs it


def _write_all(fd, data):
    """Write all of ``data`` to the pipe ``fd`` (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _defer_to_worker():
    """End a numpy-zygote child with the answer that the worker must run its program: at once,
    so the program can neither catch the refusal nor do anything after it."""
    _write_all(_state["result_fd"], _encode({"status": DEFERRED}))
    os._exit(0)


# Modules a C function of an allowed module imports through the calling frame's __import__,
# which is the program's (time.strptime and datetime.strptime: _strptime; the namereplace
# error handler: unicodedata). Found by the entry-point sweep in tests/test_sandbox_trust.py.
_C_IMPORTS = frozenset({"_strptime", "unicodedata"})


def _called_from_c():
    """True when the program's frame is in a call, not at an import statement of its own."""
    frame = sys._getframe(2)
    return frame.f_code.co_code[frame.f_lasti] not in _IMPORT_NAME


def _safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    """``__import__`` for programs: sanitized copies of the allowlisted standard modules, and
    the preloaded third-party packages (numpy, sympy) as they are."""
    if level != 0:
        raise Forbidden("relative imports are not allowed")
    top = name.split(".")[0]
    if top in _DEFERRED:
        _defer_to_worker()
    if top in _LOADED_THIRD_PARTY:
        _state["trusted_import"] = True  # a package's own lazy imports read its files
        try:
            return _REAL_IMPORT(name, globals, locals, fromlist, level)
        finally:
            _state["trusted_import"] = False
    if name in _C_IMPORTS and _called_from_c():
        return sys.modules[name]  # loaded before any program (main)
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
    """The fast path's ``__import__`` (is_pure() admits FAST_MODULES and a preloaded package the
    program never uses, so any other name comes from a C function importing for itself:
    :data:`_C_IMPORTS`, loaded before any program)."""
    if level == 0 and name in _C_MODULES:
        return _C_MODULES[name]
    if level == 0 and not fromlist and name in _THIRD_PARTY:  # bound, never used: is_pure()
        return _THIRD_PARTY[name]
    if level != 0 or name not in FAST_MODULES:
        raise Forbidden(f"import of module {name!r} is not allowed")
    return _COPIES[name]


_REAL_IMPORT = builtins.__import__


def _isolated(fn, **names):
    """``fn`` rebuilt with a globals dict holding only ``names``: a program that reaches its
    ``__globals__`` finds nothing of the worker there."""
    return types.FunctionType(fn.__code__, dict(names, __builtins__={}), fn.__name__, fn.__defaults__)


_ReadOnlyModule.__setattr__ = _ReadOnlyModule.__delattr__ = _isolated(_read_only, Forbidden=Forbidden)



# ---------------------------------------------------------------- the fast-path check
def _opcodes(*names):
    import dis

    return frozenset(dis.opmap[n] for n in names if n in dis.opmap)


# Opcodes that store into shared namespaces or run code later (context managers, generators,
# coroutines) are routed to the forked path.
_IMPURE_OPS = _opcodes("IMPORT_STAR",
                       "BEFORE_WITH", "BEFORE_ASYNC_WITH", "SETUP_WITH", "SETUP_ASYNC_WITH",
                       "SETUP_ANNOTATIONS", "GET_AWAITABLE", "GET_AITER", "GET_ANEXT",
                       "ASYNC_GEN_WRAP", "SEND", "PRINT_EXPR", "YIELD_FROM", "LOAD_SUPER_ATTR",
                       "CALL_INTRINSIC_1", "CALL_INTRINSIC_2", "STORE_GLOBAL", "DELETE_GLOBAL",
                       "MATCH_CLASS", "MATCH_KEYS")  # match reads attributes named in co_consts
# Opcodes that store attributes or define classes: on the fast path only with nothing imported
# but OWN_OBJECT_MODULES, so the objects they can reach are the program's own.
_OWN_OBJECT_OPS = _opcodes("STORE_ATTR", "DELETE_ATTR", "LOAD_BUILD_CLASS")
_ATTR_STORES = _opcodes("STORE_ATTR", "DELETE_ATTR")
# ``del name``, which the compiler also emits after every ``except ... as name`` block
_NAME_DELETES = _opcodes("DELETE_NAME", "DELETE_FAST", "DELETE_DEREF")
_IMPORT_NAME = _opcodes("IMPORT_NAME")
_BUILD_SLICE = next(iter(_opcodes("BUILD_SLICE")))
_STORE_SUBSCR = next(iter(_opcodes("STORE_SUBSCR")))
_STORE_NAME = next(iter(_opcodes("STORE_NAME")))
_HAS_NAME = frozenset(__import__("dis").hasname)
_EXTENDED_ARG = next(iter(_opcodes("EXTENDED_ARG")))
_LOAD_NAME = next(iter(_opcodes("LOAD_NAME")))
_PUSH_NULL = next(iter(_opcodes("PUSH_NULL")))
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
_FAST_BUILTINS["__build_class__"] = builtins.__build_class__  # LOAD_BUILD_CLASS reads it; no name can
_FAST_DENY = _FAST_DENY - frozenset(n for n in _FAST_BUILTINS if not n.startswith("_"))
_BUILTIN_BASES = frozenset(n for n, v in _FAST_BUILTINS.items() if v is object or n in dir(builtins)
                           and isinstance(v, type) and issubclass(v, BaseException))
_BUILTIN_NAMES = frozenset(dir(builtins))
# Builtin exceptions with fields of their own in C (OSError's filename, UnicodeDecodeError's
# object...): an attribute store can put any object there, and their C code trusts the field's
# type (a str as a UnicodeDecodeError's object is read as bytes) or holds it borrowed while it
# calls the program (OSError's str() formats errno, whose __str__ may drop the filename, then
# the freed filename).
_FIELD_EXCEPTIONS = frozenset(n for n in _BUILTIN_BASES if getattr(builtins, n).__basicsize__
                              > BaseException.__basicsize__)
_LOAD_BUILD_CLASS = next(iter(_opcodes("LOAD_BUILD_CLASS")))


def _imported_names(code):
    """Names the IMPORT_NAME instructions of ``code`` import."""
    raw, out, ext = code.co_code, [], 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | ext
        ext = (arg << 8) if op == _EXTENDED_ARG else 0
        if op in _IMPORT_NAME:
            out.append(code.co_names[arg])
    return out


def _instructions(code):
    """``(opcode, argument)`` pairs of ``code``, EXTENDED_ARG folded in."""
    raw, ext = code.co_code, 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | ext
        ext = (arg << 8) if op == _EXTENDED_ARG else 0
        yield op, arg


def _unused_import(code, name):
    """True when module-level ``code`` binds package ``name`` (``import numpy as np``) and nothing
    ever reads the binding: no instruction but that STORE_NAME names it, in any code object
    (PoT's zero-shot programs all import numpy and most never use it). The module object is
    then unreachable: a fast-path program has no globals(), vars() or getattr()."""
    ops = list(_instructions(code))
    bound = None
    for i, (op, arg) in enumerate(ops[:-1]):
        if op in _IMPORT_NAME and code.co_names[arg] == name:
            nxt, narg = ops[i + 1]
            if nxt != _STORE_NAME or bound not in (None, narg):
                return False
            bound = narg
    if bound is None:
        return False
    for op, arg in ops:  # LOAD_GLOBAL and (3.12) LOAD_ATTR/LOAD_SUPER_ATTR shift the name index
        if op in _HAS_NAME and op != _STORE_NAME and bound in (arg, arg >> 1, arg >> 2) \
                and not (op in _IMPORT_NAME and arg == bound):  # ``import numpy`` binds its own name
            return False
    target, stack = code.co_names[bound], [k for k in code.co_consts if isinstance(k, types.CodeType)]
    while stack:
        c = stack.pop()
        if target in c.co_names:
            return False
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return True


def is_pure(code):
    """True when running ``code`` can change nothing that outlives it (so nothing another
    program could see). Checked on every nested code object:

    - no opcode in ``_IMPURE_OPS`` (``with``, star imports, globals declared ``global``...), no
      generator or coroutine other than a generator expression;
    - every name is public (no leading ``_``) and is not a builtin outside ``FAST_BUILTIN_NAMES``
      (no ``getattr``, ``type``, ``vars``, ``open``...), except the names of
      ``FAST_DUNDER_BINDS`` bound in the program's own namespaces and ``__name__`` read
      (:func:`_binds_dunders_only`);
    - imports only of ``FAST_MODULES`` (fractions only as ``from fractions import Fraction``),
      and of preloaded packages the program never uses (:func:`_unused_import`);
    - attribute stores and class definitions (``_OWN_OBJECT_OPS``) only when everything
      imported is in ``OWN_OBJECT_MODULES``;
    - no item store in a program that builds a slice with a step: CPython 3.11 writes an
      extended slice's items at positions it computed before iterating the new items, so a
      generator expression that shrinks the list meanwhile writes past its end;
    - no attribute store in a program that names a builtin exception with fields of its own in
      C (``_FIELD_EXCEPTIONS``) or binds a caught exception (``except ... as e``: a
      UnicodeDecodeError is a ValueError), so a store never lands in such a field;
    - class statements only on ``object``, builtin exceptions and the program's own classes,
      with no keyword (:func:`_plain_bases`): any other base lends a class C code whose
      invariants a subclass can break (a ``staticmethod`` subclass whose ``__init__`` skips the
      base's leaves a NULL that calling it dereferences; a ``str`` subclass reaches the worker's
      own bookkeeping).

    Reachable objects are then the program's own, immutable constants, builtin functions and
    types (whose attributes cannot be set), read-only module copies and, with no attribute
    store or class, the Fraction class.
    """
    stack, imported, own_objects, step_slice, item_store, classes = [code], set(), False, False, False, False
    attr_store = field_exceptions = False
    while stack:
        c = stack.pop()
        raw = c.co_code
        ops = set(raw[::2])
        if not _IMPURE_OPS.isdisjoint(ops):
            return False
        if c.co_flags & _GENERATOR_FLAGS and c.co_name != "<genexpr>":
            return False
        own_objects = own_objects or not _OWN_OBJECT_OPS.isdisjoint(ops)
        item_store = item_store or _STORE_SUBSCR in ops
        classes = classes or _LOAD_BUILD_CLASS in ops
        attr_store = attr_store or not _ATTR_STORES.isdisjoint(ops)
        field_exceptions = (field_exceptions or not _NAME_DELETES.isdisjoint(ops)
                            or not _FIELD_EXCEPTIONS.isdisjoint(c.co_names))
        if _BUILD_SLICE in ops and not step_slice:
            step_slice = any(op == _BUILD_SLICE and arg == 3 for op, arg in _instructions(c))
        private = False
        for name in c.co_names:
            if name[:1] == "_":
                private = True
            elif name in _FAST_DENY:
                return False
        if private and not _binds_dunders_only(c):
            return False
        if "format" in c.co_names and not _formats_constants_only(c):
            return False
        if not _IMPORT_NAME.isdisjoint(ops):
            for n in _imported_names(c):
                if n in FAST_MODULES and (n != "fractions" or _imports_fraction_only(c)):
                    imported.add(n)
                elif not (c is code and n in _THIRD_PARTY_MODULES and _unused_import(c, n)):
                    return False
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                stack.append(const)
    return (not (step_slice and item_store) and (not own_objects or imported <= OWN_OBJECT_MODULES)
            and not (attr_store and field_exceptions) and not (classes and not _plain_bases(code)))


_DUNDER_READS = frozenset(("LOAD_NAME", "LOAD_GLOBAL"))


def _binds_dunders_only(code):
    """True when every name of ``code`` starting with ``_`` is one of ``FAST_DUNDER_BINDS`` bound
    by STORE_NAME (a module or class body binding its own name: ``def __init__``) or
    ``__name__`` read (a class body reads it for ``__module__``): never an attribute, a global
    store or a builtin."""
    import dis

    for ins in dis.get_instructions(code):
        name = ins.argval
        if ins.opcode in _HAS_NAME and isinstance(name, str) and name[:1] == "_":
            if not (ins.opname == "STORE_NAME" and name in FAST_DUNDER_BINDS
                    or ins.opname in _DUNDER_READS and name == "__name__"):
                return False
    return True


_BINDS = _opcodes("STORE_NAME", "STORE_FAST", "STORE_DEREF", "STORE_GLOBAL", "DELETE_NAME", "DELETE_FAST",
                  "DELETE_DEREF", "DELETE_GLOBAL")
_NAME_LOADS = _opcodes("LOAD_NAME", "LOAD_GLOBAL", "LOAD_FAST", "LOAD_DEREF", "LOAD_CLASSDEREF")
_CLASS_BODY = _opcodes("LOAD_CLOSURE", "BUILD_TUPLE", "MAKE_FUNCTION")
_BY_CO_NAMES = _opcodes("STORE_NAME", "DELETE_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME")
_LOAD_GLOBAL = next(iter(_opcodes("LOAD_GLOBAL")))
_LOAD_CONST = next(iter(_opcodes("LOAD_CONST")))
_CALL = next(iter(_opcodes("CALL")))
_NOT_SEEN = _opcodes("CACHE", "PUSH_NULL", "PRECALL") | {_EXTENDED_ARG}


def _name_of(code, op, arg):
    """The name a name, global, local or cell instruction of ``code`` uses (3.11's encoding)."""
    if op == _LOAD_GLOBAL:
        return code.co_names[arg >> 1]
    if op in _BY_CO_NAMES:
        return code.co_names[arg]
    return code._varname_from_oparg(arg)


def _plain_bases(code):
    """True when every class statement of ``code`` names its bases, with no keyword, and each
    base is ``object`` or a builtin exception that nothing in the program rebinds, or a class of
    the program's own whose name nothing but undecorated class statements binds (no argument,
    assignment, loop, import or ``del`` of it, in any scope): then every base is one the
    zygote's ``__build_class__`` builds."""
    binds, classes, bases, stack = {}, {}, [], [code]
    while stack:
        c = stack.pop()
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        nargs = c.co_argcount + c.co_kwonlyargcount + bool(c.co_flags & 0x04) + bool(c.co_flags & 0x08)
        for name in c.co_varnames[:nargs]:
            binds[name] = binds.get(name, 0) + 1
        ins = [(op, arg) for op, arg in _instructions(c) if op not in _NOT_SEEN]
        for i, (op, arg) in enumerate(ins):
            if op in _BINDS:
                name = _name_of(c, op, arg)
                binds[name] = binds.get(name, 0) + 1
            if op != _LOAD_BUILD_CLASS:
                continue
            j = i + 1  # the class body's function, then the class's name, its bases, the call
            while j < len(ins) and (ins[j][0] in _CLASS_BODY or ins[j][0] == _LOAD_CONST
                                    and isinstance(c.co_consts[ins[j][1]], types.CodeType)):
                j += 1
            if j >= len(ins) or ins[j][0] != _LOAD_CONST or not isinstance(c.co_consts[ins[j][1]], str):
                return False
            name, j = c.co_consts[ins[j][1]], j + 1
            while j < len(ins) and ins[j][0] in _NAME_LOADS:
                bases.append(_name_of(c, *ins[j]))
                j += 1
            if j + 1 >= len(ins) or ins[j][0] != _CALL:
                return False  # a keyword (KW_NAMES), or a base that is not a name
            if ins[j + 1][0] in _BINDS and _name_of(c, *ins[j + 1]) == name:
                classes[name] = classes.get(name, 0) + 1  # bound by the class statement itself
    return all(base in _BUILTIN_BASES and base not in binds
               or base not in _BUILTIN_NAMES and base in classes and binds[base] == classes[base]
               for base in bases)


def _formats_constants_only(code):
    """True when every ``.format`` in ``code`` is called on a string constant whose replacement
    fields name no attribute or item (``"{:.2f}".format(x)``, ``"{0} {name!r}"``): a field such as
    ``{0.__globals__}`` looks attributes up by a name no other check sees. The builtin
    ``format(value, spec)`` formats by the value's own type and is admitted as a name."""
    import dis

    previous = None
    for ins in dis.get_instructions(code):
        if ins.argval == "format" and ins.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            # a jump target could get its receiver from another branch than the constant before it
            if ins.is_jump_target or previous is None or previous.opname != "LOAD_CONST" \
                    or type(previous.argval) is not str or not _plain_fields(previous.argval):
                return False
        previous = ins
    return True


def _plain_fields(text):
    """True when ``text`` is a well-formed format string none of whose replacement fields names an
    attribute or item, or nests a field in its format spec."""
    import string

    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:  # .format() looks up the fields before the malformed part, then raises
        return False
    for _, name, spec, _ in fields:
        if name is None:
            continue
        if not (name == "" or name.isdigit() or name.isidentifier()) or "{" in (spec or "") \
                or "}" in (spec or ""):
            return False
    return True


def _imports_fraction_only(code):
    """True when each import of ``fractions`` in ``code`` is ``from fractions import Fraction``
    (``as`` any name): the module object itself is never bound."""
    import dis

    ins = list(dis.get_instructions(code))
    for i, x in enumerate(ins):
        if x.opname == "IMPORT_NAME" and x.argval == "fractions":
            if not (0 < i < len(ins) - 3 and ins[i - 1].opname == "LOAD_CONST"
                    and ins[i - 1].argval == ("Fraction",)
                    and ins[i + 1].opname == "IMPORT_FROM" and ins[i + 1].argval == "Fraction"
                    and ins[i + 2].opname in ("STORE_NAME", "STORE_FAST", "STORE_DEREF")
                    and ins[i + 3].opname == "POP_TOP"):
                return False
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


_STR_COPY = str.__str__  # a str subclass's characters as an exact str, calling none of its methods


def _plain(text):
    """``text`` (a str, maybe of a class the program defined) as an exact str. ``str()``,
    ``repr()`` and ``print`` accept a subclass from the program's ``__str__``/``__repr__``; its
    ``__getitem__``, ``__len__`` or ``__iter__`` would run in the worker's own bookkeeping (past
    the caps on stdout and messages, and, for what they return, in the JSON encoder after the
    program's timer stopped)."""
    return text if type(text) is str else _STR_COPY(text)


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
        s = _plain(s)
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


_READ_ROOTS = []  # the import path (the Python installation, the preloaded packages): imports read them
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


_LIBRARY_TOPS = set()  # top-level packages loaded before any program ran (stdlib's and preloaded ones)


def _library_module(top):
    """A module a library may import lazily while a program runs: a standard module (with the
    interpreter's own ``_sysconfigdata_*``), or one of a package loaded before the program ran
    (``encodings.cp1252`` for ``str.encode``, ``atexit`` for ``sympy.nsolve``, numpy's and
    sympy's own modules). What a module does once imported is audited as ever."""
    return top in _LIBRARY_TOPS or top in sys.stdlib_module_names or top.startswith("_sysconfigdata_")


def _import_read(event, args):
    """True for what a library's own lazy import does: list or read (never write) files
    under the Python installation."""
    if event == "marshal.loads":  # a cached .pyc (marshal itself is not importable by programs)
        return True
    if event in ("open", "os.listdir", "os.scandir"):
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or ".." in path or not (path.rstrip("/") + "/").startswith(tuple(_READ_ROOTS)):
            return False
        if event == "open":
            mode, flags = args[1], args[2]
            return (mode is None or "r" in mode and "+" not in mode) and not (flags or 0) & _WRITE_FLAGS
        return True
    return False


def _program_importing():
    """True when the code doing an import is the program's (or code it had evaluated), not a
    library's."""
    frame = sys._getframe(1)
    while frame is not None and (frame.f_globals is _WORKER_GLOBALS
                                 or str(frame.f_globals.get("__name__")).startswith("importlib")):
        frame = frame.f_back  # this worker's hook and _safe_import, and importlib's machinery
    return frame is not None and (frame.f_code.co_filename == "<program>" or frame.f_globals is _state["globals"])


_WORKER_GLOBALS = globals()


def _learn_libraries():
    """What programs may use without running code of their own: the classes and number types
    now loaded (:func:`_learn_types`) and the packages whose lazy imports are allowed."""
    _learn_types()
    _LIBRARY_TOPS.update(name.partition(".")[0] for name in sys.modules)


def _audit(event, args):
    if event == "exec" and _state["running"] and _evaluated_by_typing():
        # an annotation string typing evaluates (get_type_hints, functools.singledispatch) is
        # code the program wrote: the same names are forbidden in it as in the program
        try:
            _check_names(args[0])
        except Forbidden as exc:
            _state["violation"] = str(exc)[:200]
            raise
        return
    if _state["running"] and not _state["trusted_import"] and event.startswith(_BLOCKED_PREFIXES):
        if event == "import" and not _program_importing():
            top = str(args[0]).partition(".")[0]
            if _library_module(top):
                return
            if _DEFERRED:  # the worker may hold it: it decides, as for any program it forks
                _defer_to_worker()
            # a library probing for an optional package (sympy's lambdify for scipy): absent,
            # as the library expects, and nothing the program did
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        if _import_read(event, args):
            return
        what = f"{event} {args[0]!r}" if args and isinstance(args[0], (str, bytes, int)) else event
        _state["violation"] = what[:200]
        raise Forbidden(f"blocked operation: {_state['violation']}")


def _evaluated_by_typing():
    """True when the code being evaluated is typing's evaluation of a forward reference."""
    frame = sys._getframe(2)  # _audit's caller: the frame that called eval
    return frame.f_code.co_name == "_evaluate" and frame.f_globals.get("__name__") == "typing"


# ---------------------------------------------------------------- results
def _describe_value(value):
    """(value_type, json_value, repr) for what the program returned, decided without running
    any code the program defined: a number is one of the library types pad knows (exact type,
    never a subclass), converted by pad's own rule (:data:`_NUMBERS`), never through a method
    the program could have replaced. An instance of a class the program defined, or of a
    library class it subclassed, is shown by its type name alone (non_numeric)."""
    if value is None:
        return "none", None, None
    cls = type(value)
    if cls is bool:
        return "bool", value, repr(value)
    if cls is int:
        if abs(value) < 2**53:
            return "int", value, None
        try:
            return "int", float(value), f"<int with {value.bit_length()} bits>"
        except OverflowError:
            return "int", None, f"<int with {value.bit_length()} bits>"
    if cls is float:
        if math.isfinite(value):
            return "float", value, None
        return "float", None, repr(value)
    if cls is str:
        return "str", value[:VALUE_STR_LIMIT], None
    tname = _plain(_TYPE_NAME(cls))[:100]
    if id(cls) not in _KNOWN_TYPES:  # defined by the program (or the class of its own subclass)
        if _DEFERRED:  # or a library's that the worker learnt with sympy (pathlib's) and this zygote did not
            _defer_to_worker()
        return tname, None, f"<{tname} object>"
    convert = _NUMBERS.get(id(cls))
    if convert is not None:
        try:
            number, text = convert(value)
        except Exception:  # pad's own conversion failed: not a number (a timeout still ends the program)
            number = text = None
        if type(number) in (bool, int, float):
            _, vjson, vrepr = _describe_value(number)
            return tname, vjson, (text or vrepr or repr(number))[:VALUE_STR_LIMIT]
    try:
        text = _plain(repr(value))  # a library type; a container may hold the program's objects
    except Exception:  # a timeout (BaseException) still ends the program
        text = f"<unrepresentable {tname}>"
    return tname, None, text[:VALUE_STR_LIMIT]


_TYPE_NAME = type.__dict__["__name__"].__get__  # a metaclass cannot intercept it
_KNOWN_TYPES = {}  # id -> every class that existed before any program ran (kept alive here)
_NUMBERS = {}  # id(type) -> value -> (int | float | bool, text or None), for library numbers


def _learn_types():
    """Record every class now in the process (builtins, the allowed modules, preloaded packages)
    and the library number types with pad's conversion for each. Called before any program
    runs and after each package is preloaded."""
    stack, seen = [object], set()
    while stack:
        cls = stack.pop()
        if id(cls) not in seen:
            seen.add(id(cls))
            _KNOWN_TYPES[id(cls)] = cls
            stack.extend(type.__subclasses__(cls))
    fractions = _REAL.get("fractions")
    if fractions is not None:
        slot_n, slot_d = (fractions.Fraction.__dict__[k].__get__ for k in ("_numerator", "_denominator"))
        _NUMBERS[id(fractions.Fraction)] = lambda v: _ratio(slot_n(v), slot_d(v))
    decimal = _REAL.get("decimal")
    if decimal is not None:  # an immutable type: its methods are its own
        to_float, to_str = decimal.Decimal.__float__, decimal.Decimal.__str__
        _NUMBERS[id(decimal.Decimal)] = lambda v: (to_float(v), to_str(v))
    np = sys.modules.get("numpy") if "numpy" in _LOADED_THIRD_PARTY else None
    if np is not None:  # numpy's scalar and array types are immutable: their own methods are safe
        item = np.generic.item

        def scalar(v):
            x = item(v)
            return (x if type(x) in (bool, int, float) else float(v)), None  # a longdouble's item() is itself

        for t in set(np.sctypeDict.values()):
            if issubclass(t, (np.integer, np.floating, np.bool_)):
                _NUMBERS[id(t)] = scalar
        array_item, ndarray = np.ndarray.item, np.ndarray
        _NUMBERS[id(np.ndarray)] = lambda v: ((array_item(v), None) if ndarray.ndim.__get__(v) == 0
                                              and ndarray.dtype.__get__(v).kind in "biuf" else (None, None))
    sympy = sys.modules.get("sympy") if "sympy" in _LOADED_THIRD_PARTY else None
    if sympy is not None:  # sympy's classes can be patched: read their slots, not their methods
        stack = [sympy.Rational]
        while stack:
            cls = stack.pop()
            get_p, get_q = _sympy_part(cls, "p"), _sympy_part(cls, "q")
            _NUMBERS[id(cls)] = lambda v, get_p=get_p, get_q=get_q: _ratio(get_p(v), get_q(v))
            stack.extend(type.__subclasses__(cls))
        slot_mpf = sympy.Float.__dict__["_mpf_"].__get__
        stack = [sympy.Float]
        while stack:
            cls = stack.pop()
            _NUMBERS[id(cls)] = lambda v: (_mpf_to_float(slot_mpf(v)), None)
            stack.extend(type.__subclasses__(cls))


def _sympy_part(cls, name):
    """How to read a sympy rational's numerator or denominator without its methods: the instance
    slot, or the class's own constant (``Integer.q``; ``One``, ``Half``... are singletons whose
    ``p`` and ``q`` are class attributes), as it stood before any program ran."""
    for c in cls.__mro__:
        if name in c.__dict__:
            part = c.__dict__[name]
            return part.__get__ if type(part) is not int else (lambda v, part=part: part)
    return lambda v: None


def _ratio(num, den):
    """A fraction's value and text from its numerator and denominator, both exact ints."""
    if type(num) is not int or type(den) is not int or den == 0:
        return None, None
    return (num if den == 1 else num / den), (str(num) if den == 1 else f"{num}/{den}")


def _mpf_to_float(mpf):
    """The float of an mpmath ``(sign, mantissa, exponent, bitcount)`` tuple; None if not finite."""
    if type(mpf) is not tuple or len(mpf) != 4:
        return None
    sign, man, exp, _ = mpf
    if type(man) is not int:
        man = int(man) if id(type(man)) in _KNOWN_TYPES else None  # gmpy's mpz
    if type(man) is not int or type(exp) is not int or sign not in (0, 1):
        return None
    if man == 0:
        return 0.0 if exp == 0 else None  # mpmath's inf and nan have a zero mantissa
    extra = man.bit_length() - 64  # a high-precision mantissa would overflow float()
    if extra > 0:
        man, exp = man >> extra, exp + extra
    value = math.ldexp(float(man), exp)
    return -value if sign else value


def _where(line):
    """``(in_preamble, line)``: a line of the compiled code as a line of the program, or of its
    preamble (see :func:`compile_program` for the layout)."""
    layout = _state["layout"]
    if layout is None or line is None:
        return False, line
    head, size = layout
    if line <= head:
        return False, line
    if line <= head + size:
        return True, line - head
    return False, line - size


def _error_line(tb):
    """``(line, preamble_line)``: the program's line of the innermost frame of its own code, or,
    when no frame of the program's own lines is on the way (the preamble raised while it ran),
    None and the preamble's line."""
    line = pre = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            in_preamble, n = _where(tb.tb_lineno)
            if in_preamble:
                pre = n
            else:
                line = n
        tb = tb.tb_next
    return line, (pre if line is None else None)


def _blame_preamble(res, line):
    """Say that the error of ``res`` is the preamble's (at its ``line``), not the program's."""
    where = f"preamble line {line}: " if line else "preamble: "
    if res["status"] == "runtime_error":
        res["error_message"] = _short(f"{where}{res['error_type']}: {res['error_message']}")
        res["error_type"] = "PreambleError"
    else:
        res["error_message"] = _short(where + (res.get("error_message") or ""))
    res["error_line"] = None


def _short(exc):
    try:
        text = _plain(str(exc))
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


def _recursion_budget():
    """RECURSION_BUDGET frames from the caller on, whoever calls: a program gets the same budget on
    either path, and so does its compilation (the compiler's depth limit is a multiple of it),
    whatever ran in this worker before. (The builtin calls that lead from here to the program,
    ``exec`` and ``compile``, are made as ``f(*args)``: the interpreter counts a plain call to a
    builtin as one level more until the caller's code is specialized, after about eight
    programs, and then not, which gave later programs one frame more.)"""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    sys.setrecursionlimit(depth + RECURSION_BUDGET)


def compile_program(source, preamble=None):
    """``(code, None)`` or ``(None, result)`` for a program that does not compile or names
    something the policy forbids.

    A ``preamble`` (code run before the program, in its namespace) is compiled with the program
    as one code: ``preamble + "pass" + program``, so everything downstream (the name check, the
    fast path's admission, the audit hook) sees preamble and program as one program, never the
    program alone. ``pass`` ends any block the preamble's last line opened. A program whose
    ``from __future__`` imports must come first gets the preamble right after them. Line numbers
    go back to the program's own (or the preamble's, for an error of its own) through
    ``_state["layout"]``: ``(head, size)``, the program's first ``head`` lines, then ``size``
    lines of preamble. A program that does not compile is reported as compiled alone: its own
    lines and message."""
    _state["layout"] = None
    if not preamble:
        return _compile(source)
    pre = _preamble(preamble)
    if isinstance(pre, dict):
        return None, dict(pre)
    code, res = _compile_after(pre, source, 0)
    if code is not None or res["status"] != "syntax_error":
        return code, res
    own, own_res = _compile(source)
    if own is None:
        return None, own_res
    head = _future_head(source)
    if head:
        code, res = _compile_after(pre, source, head)
        if code is not None or res["status"] != "syntax_error":
            return code, res
    _state["layout"] = None
    return None, {"status": "syntax_error", "error_type": res["error_type"], "error_line": None,
                  "error_message": _short(f"the program does not compile after its preamble: {res['error_message']}")}


def _compile_after(pre, source, head):
    """:func:`_compile` of ``pre`` put after the program's first ``head`` lines, the layout set
    and a policy error's line placed (in the program, or the preamble's own)."""
    if head:
        lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        source = "\n".join(lines[:head]) + "\n" + pre + "\n".join(lines[head:])
    else:
        source = pre + source
    _state["layout"] = (head, pre.count("\n"))
    code, res = _compile(source)
    if res is not None and res["status"] != "syntax_error":
        in_preamble, res["error_line"] = _where(res.get("error_line"))
        if in_preamble:
            _blame_preamble(res, res["error_line"])
    return code, res


_PREAMBLES = {}  # preamble text -> the text as compiled before a program, or the result of one that does not compile


def _preamble(text):
    """The preamble as it goes before a program (line breaks as ``\\n``, ending with ``pass``), or,
    for a preamble that does not compile alone, the result every program with it gets."""
    if text in _PREAMBLES:
        return _PREAMBLES[text]
    if len(_PREAMBLES) >= 64:
        _PREAMBLES.clear()
    pre = text.replace("\r\n", "\n").replace("\r", "\n")
    pre = pre + ("" if pre.endswith("\n") else "\n") + "pass\n"
    _state["layout"] = None
    code, res = _compile(pre)
    if code is None:
        _blame_preamble(res, res.get("error_line"))
        pre = res
    _PREAMBLES[text] = pre
    return pre


def _future_head(source):
    """Lines of the program's leading docstring and ``from __future__`` imports (0 if none)."""
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 0
    head = 0
    for i, node in enumerate(body):
        docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
            and isinstance(node.value.value, str)
        if not (docstring or isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            break
        head = node.end_lineno
    return head


def _compile(source):
    """:func:`compile_program` of one text."""
    try:
        _recursion_budget()
        code = compile(*(source, "<program>", "exec"), dont_inherit=True)  # f(*args): _recursion_budget
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
    except MemoryError as exc:  # the worker retires after it (harmed): no program after it pays
        return None, {"status": "memory_limit", "error_type": "MemoryError", "error_message": _short(exc)}
    except (ValueError, RecursionError, OverflowError) as exc:
        # null bytes, or nesting too deep for the compiler
        return None, {"status": "syntax_error", "error_type": type(exc).__name__,
                      "error_message": _short(exc)}


def _find_answer(g):
    """``(obj, call, how)`` for the program's entry (the function to call or the variable to
    read), or None when it defines none. Plain dict lookups: no program code runs here, so an
    exception the program raises is never mistaken for a missing entry."""
    if ENTRY:
        obj = g.get(ENTRY, _MISSING)
        if obj is _MISSING:
            return None
        return (obj, True, ENTRY + "()") if callable(obj) else (obj, False, ENTRY)
    obj = g.get("solution", _MISSING)
    if callable(obj):
        return obj, True, "solution()"
    obj = g.get("ans", _MISSING)
    return None if obj is _MISSING else (obj, False, "ans")


_MISSING = object()
_RECORDER = "\x00entry"  # a name no program can write: the module's own calls of its entry go through it


def _record_entry_calls(code, g):
    """``code`` with the module's own calls of its entry function (``print(solution())``,
    ``ans = solution(12)``, a ``__main__`` block; the name loaded right after ``PUSH_NULL``, as a
    callee) made through a recorder bound in ``g``: the first value such a call returns is the
    program's answer, and the function is not called again (a second call repeated its side
    effects on module state and its time, and one needing arguments failed). Calls inside the
    program's functions (recursion) go to the function itself."""
    name = ENTRY or "solution"
    names = code.co_names
    if name not in names or len(names) > 255:  # beyond one byte the rewrite would move jumps
        return code
    raw = bytearray(code.co_code)
    callee, found = bytes((_PUSH_NULL, 0, _LOAD_NAME, names.index(name))), False
    at = raw.find(callee)
    while at >= 0:
        if at % 2 == 0:  # an instruction's start, not an argument byte
            raw[at + 3], found = len(names), True
        at = raw.find(callee, at + 1)
    if not found:
        return code

    def call(*args, **kwargs):
        fn = g.get(name, _MISSING)
        if fn is _MISSING:
            raise NameError(f"name {name!r} is not defined")
        value = fn(*args, **kwargs)
        if _state["script_answer"] is None:
            _state["script_answer"] = (value,)
        return value

    g[_RECORDER] = call
    return code.replace(co_code=bytes(raw), co_names=names + (_RECORDER,))


def run_program(code, builtins_template, as_main=False):
    """Run compiled ``code`` in this process; returns (result dict, harmed: bool). ``as_main`` (a
    forked child only): the program runs as the script ``__main__``, as ``python program.py``
    would run it (``if __name__ == "__main__":`` blocks run, and dataclasses and typing find
    the program's names through ``sys.modules``). On the fast path ``__name__`` is ``"__main__"`` too."""
    out = CappedWriter(STDOUT_LIMIT)
    harmed = False
    if as_main:
        main_module = types.ModuleType("__main__")
        sys.modules["__main__"] = main_module
        g = main_module.__dict__
        g["__builtins__"] = dict(builtins_template)
    else:
        g = {"__builtins__": dict(builtins_template), "__name__": "__main__"}  # classes' __module__ too
    _state["globals"] = g
    _recursion_budget()
    _state["violation"] = None
    _state["fired"] = False
    if as_main:
        # the collector's counts (inherited, and lowered by every object freed since) tell when
        # it next runs, so when a program's finalizers run: the same in every child, whatever
        # its zygote did before
        gc.freeze()
        gc.collect()
    _state["script_answer"] = None
    code = _record_entry_calls(code, g)
    _state["cpu0"] = time.process_time()
    old_stdout = sys.stdout
    sys.stdout = out
    _state["running"] = True
    _signal.setitimer(_signal.ITIMER_PROF, TIMEOUT, 0.05)  # CPU time: the machine's load does not count
    try:
        try:
            exec(*(code, g))  # f(*args): never specialized, so the same depth for every program
        except SystemExit as exc:
            if not (exc.code is None or exc.code is False or (type(exc.code) is int and exc.code == 0)):
                raise
            # exit() or exit(0) ends the script as `python program.py` ends it: not an error,
            # and its answer is looked up as after its last line
        entry = _find_answer(g)
        if entry is None:
            res = {"status": "no_answer", "error_message": f"no {ENTRY}() or {ENTRY} variable defined" if ENTRY
                   else "no solution() defined and no ans variable set"}
        else:
            obj, call, how = entry
            if call and _state["script_answer"] is not None:  # the value of the script's own call
                value = _state["script_answer"][0]
            else:
                value = obj() if call else obj
            entry = obj = None
            vtype, vjson, vrepr = _describe_value(value)
            if vtype == "none":
                res = {"status": "no_answer", "error_message": f"{how} is None"}
            else:
                res = {"status": "ok", "value_type": vtype, "value": vjson, "value_repr": vrepr}
    except BaseException as exc:  # noqa: BLE001 - everything a program raises is a result
        line, preamble_line = _error_line(exc.__traceback__)
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
            res = {"status": "runtime_error", "error_type": _plain(_TYPE_NAME(type(exc)))[:100],
                   "error_message": _short(exc)}
        res["error_line"] = line
        if preamble_line is not None:
            _blame_preamble(res, preamble_line)
        exc = None
    finally:
        _state["running"] = False
        _signal.setitimer(_signal.ITIMER_PROF, 0)
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
    """This process's address-space size (VmSize), from ``/proc/self/statm``: read in every forked
    child, and an order of magnitude cheaper than ``/proc/self/status``."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            return int(os.read(fd, 64).split()[0]) * _PAGE
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _set_rlimits():
    """The zygote's own limits: no file writes or core dumps, and a soft address-space budget
    for fast-path programs (raised only around trusted package imports)."""
    if _LIBC[0] is not None:
        _LIBC[0].malloc_trim(0)
        _BRK_BASE[0] = _LIBC[0].sbrk(0)
    _VM_BASE[0] = _vm_bytes()
    limit = _VM_BASE[0] + MEMORY_MB * 1024 * 1024
    for res, soft, hard in ((resource.RLIMIT_FSIZE, 0, 0), (resource.RLIMIT_CORE, 0, 0),
                            (resource.RLIMIT_AS, limit, resource.RLIM_INFINITY)):
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OSError):
            pass


_VM_BASE = [0]  # the zygote's address space when its limits were set
RETIRE_SLACK = 64 << 20  # a worker whose address space grew more than this since then retires
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
        _state["result_fd"] = wfd
        if "random" in _REAL:  # random reseeds itself from the OS after fork: undo that
            _REAL["random"].seed(0)
        import resource

        # the same headroom whatever ran before: the free heap it inherits is room it can use
        limit = _vm_bytes() - _free_heap() + MEMORY_MB * 1024 * 1024
        for res, soft, hard in _CHILD_LIMITS:
            if res == resource.RLIMIT_AS:
                soft = hard = limit
            resource.setrlimit(res, (soft, hard))
        _state["overrun"] = _exit_now
        if "child" in _SECCOMP_FILTERS:
            _install_seccomp("child")
        res, _ = run_program(code, bt, as_main=True)
        data = _encode(res)
    except BaseException:  # noqa: BLE001
        data = b""
    try:
        _write_all(wfd, data)
    finally:
        os._exit(0)


def run_forked(code, bt):
    """Run ``code`` in a child forked from this process; returns (result dict, harmed=False).

    The child's time is what it ran or chose to wait: CPU time (its own timer raises at
    TIMEOUT; RLIMIT_CPU and the CPU time it is reaped with are the backstops) plus time
    asleep or blocked, read from the kernel's per-task run-queue accounting, so a child that
    sleeps, or closed its pipe and waits, is killed at TIMEOUT + CHILD_GRACE of its own time.
    Time spent waiting for a core on a busy machine does not count; WALL_LIMIT bounds it."""
    rfd, wfd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(code, wfd, bt)
    os.close(wfd)
    chunks, size, killed, eof, exited = [], 0, False, False, False
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(rfd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    limit, wall_end = TIMEOUT + CHILD_GRACE, started + WALL_LIMIT + CHILD_GRACE
    try:
        while not (eof and exited):
            now = time.monotonic()
            left = min(wall_end - now, limit - _own_time(pid, now - started, limit))
            if left <= 0 or size > MAX_CHILD_MESSAGE:
                os.kill(pid, _signal.SIGKILL)
                killed = True
                break
            for fd, _ in poller.poll(max(left, 0.001) * 1000):
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                    continue
                chunk = os.read(rfd, 1 << 16)
                if not chunk:
                    eof = True
                    poller.unregister(rfd)
                chunks.append(chunk)
                size += len(chunk)
    finally:
        os.close(rfd)
        os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    timed_out = {"status": "timeout", "error_type": "Timeout", "error_message": f"exceeded {TIMEOUT:g} s",
                 "stdout": ""}
    if killed and size <= MAX_CHILD_MESSAGE or usage.ru_utime + usage.ru_stime >= TIMEOUT:
        # measured here, not taken from the child: a program that ran past its time is a
        # timeout even if it reset its own timer state
        return timed_out, False
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == _signal.SIGXCPU:
            return timed_out, False
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
    except (ValueError, RecursionError):  # RecursionError: a result nested too deep to parse
        how = f"exit code {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else "no result"
        return {"status": "crashed", "error_type": "ProtocolError",
                "error_message": f"the program's process ended without a valid result ({how})",
                "stdout": ""}, False
    return {k: msg[k] for k in _RESULT_FIELDS if k in msg}, False


def _own_time(pid, wall, limit):
    """A child's own time after ``wall`` seconds: wall time less the time it waited for a core
    (``/proc/PID/schedstat``). Read only once the wall time could exceed ``limit``."""
    if wall < limit:
        return wall
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as fh:
            waited = int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0  # no run-queue accounting: CPU time and WALL_LIMIT still bound the child
    return wall - waited


_RESULT_FIELDS = ("status", "value", "value_type", "value_repr", "error_type", "error_message",
                  "error_line", "stdout")


class _Zygote:
    """A zygote forked from this worker while it loads the packages, serving the forked programs
    that need less than the worker then holds: the lean one (before numpy and sympy) for programs
    that import neither, the numpy one (numpy loaded and warmed, sympy not yet) for programs that
    import numpy alone. A fork costs about in proportion to the memory of the process it is made
    from (here: fork + exit + wait ~1.9 ms lean, ~5 ms with numpy, ~13 ms with numpy and sympy, at
    load 13), so a program pays only for the packages it uses. It gets the program's text,
    compiles it as this worker did and runs it as :func:`run_forked` does here (same limits,
    filters and builtins); it serves this worker alone over a pipe pair and ends when the worker
    does."""

    def __init__(self):
        self.pid = 0
        self.requests = -1
        self.replies = None

    def start(self, policy_bt, defer=frozenset()):
        """Fork the zygote; ``defer``: the packages it sends back to this worker (_DEFERRED)."""
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(request_w)
                os.close(reply_r)
                for fd in _PROTOCOL_FDS:  # never the worker's protocol
                    os.close(fd)
                _PROTOCOL_FDS[:] = [request_r, reply_w]  # what its children close
                _DEFERRED.update(defer)
                # its own CPU time grows with every fork: only its children are limited
                resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                self._serve(request_r, reply_w, policy_bt)
            finally:
                os._exit(0)
        os.close(request_r)
        os.close(reply_w)
        _PROTOCOL_FDS.extend((request_w, reply_r))  # closed in this worker's own children
        self.pid, self.requests, self.replies = pid, request_w, os.fdopen(reply_r, "rb")

    @staticmethod
    def _serve(request_r, reply_w, policy_bt):
        requests = os.fdopen(request_r, "rb")
        while True:  # EOF: the worker has exited
            head = requests.read(4)
            if len(head) < 4:
                return
            source, preamble = marshal.loads(requests.read(int.from_bytes(head, "little")))
            # compiled here as in the worker, not sent as code: marshal rebuilds a set constant in
            # another order (``for c in {25, 186, 18}`` iterates differently) and refuses deep
            # nesting, and compile_program sets the layout that places a preamble's lines
            code, res = compile_program(source, preamble)
            _trim_heap()  # a large program's text and code, freed: never room for the next one
            if code is not None:
                res, _ = run_forked(code, policy_bt)
            _write_all(reply_w, _encode(res))

    def run(self, source, preamble):
        """The program (``source`` after ``preamble``) compiled and run by :func:`run_forked` in the
        zygote: (result, harmed). A zygote that is gone makes the result an internal error and
        retires this worker."""
        try:
            data = marshal.dumps((source, preamble))
            _write_all(self.requests, len(data).to_bytes(4, "little") + data)
            res = json.loads(self.replies.readline())
            if not isinstance(res, dict) or not isinstance(res.get("status"), str):
                raise ValueError("no result")
            return res, False
        except (OSError, ValueError):
            self.pid = 0
            return dict(INTERNAL_ERROR_RESULT), True


_LEAN = _Zygote()  # forked before any package loads
_NUMPY = _Zygote()  # forked once numpy is loaded and warmed, before sympy


# ---------------------------------------------------------------- main loop
_dumps = json.JSONEncoder(ensure_ascii=True, allow_nan=False).encode


def _encode(res):
    try:
        return _dumps(res).encode() + b"\n"
    except (ValueError, TypeError):
        res = dict(res, value=None)
        return _dumps(res).encode() + b"\n"


def handle(source, policy_bt, notify, preamble=None):
    """Compile (after ``preamble``, if any), choose the path, run: (result dict, harmed)."""
    t0 = time.perf_counter()
    _state["fired"] = False
    # for every program, whichever path: the CPU this worker spends on programs it hands to a
    # zygote (compiling, checking) must not use up the limit an earlier fast-path program armed
    _arm_cpu_limit()
    code, res = compile_program(source, preamble)
    harmed = res is not None and res["status"] == "memory_limit"
    path = None
    if code is not None:
        if not _PRELOADED[0] and _third_party_imports(code):
            # before the path is chosen: the fast path admits a preloaded package a program
            # imports and never uses, and that must not depend on whether an earlier one loaded it
            notify({"loading": True})  # the parent holds this program's clock meanwhile
            _LEAN.start(policy_bt)  # while this process is still lean
            _preload_all(policy_bt)
            notify({"loaded": True})  # the program's clock starts now
            _arm_cpu_limit()  # the preload lifted it
        if FAST_PATH and is_pure(code):
            path = "fast"
            codecs_known, modules_known = len(_CODEC_CACHE), len(sys.modules)
            res, harmed = run_program(code, _FAST_BUILTINS)
            if len(_CODEC_CACHE) != codecs_known:
                _forget_failed_codecs()
            # whatever cycles the program left must not eat a later program's memory: those made
            # since the last collection are in generation 0 (nearly free when it is empty)
            counts = gc.get_count()
            gc.collect(2 if counts[1] or counts[2] else 0)
            if res["status"] == "memory_limit":
                # earlier programs may have fragmented this worker: the label comes from a child
                # with the full headroom; the worker goes on unless the bomb left it larger
                path = "fork"
                res, _ = run_forked(code, policy_bt)
                harmed = False
            # a module it made this worker import (a codec's) would show in sys.modules, which a
            # package's module hands any forked program (numpy._pytesttester.sys): the worker retires
            harmed = harmed or _grown() or len(sys.modules) != modules_known
        else:
            path = "fork"
            third_party = _third_party_imports(code)
            zygote = _LEAN if not third_party else _NUMPY if third_party == {"numpy"} else None
            if _PRELOADED[0] and zygote is not None and zygote.pid:
                res, harmed = zygote.run(source, preamble)
                if res["status"] == DEFERRED:
                    res, harmed = run_forked(code, policy_bt)
            else:
                res, harmed = run_forked(code, policy_bt)
    _trim_heap()  # what the program, or compiling it, left
    res["duration_ms"] = (time.perf_counter() - t0) * 1000.0
    res["path"] = path
    return res, harmed


_CPU_REARM_AT = [0.0]  # the worker's CPU time at which its RLIMIT_CPU is set again


def _arm_cpu_limit():
    """Keep the worker's soft RLIMIT_CPU between TIMEOUT + 0.25 and TIMEOUT + 1.5 s of CPU
    ahead (it counts whole seconds): a fast-path program looping inside C code, where the
    timer's handler cannot run, gets SIGXCPU, which the parent labels ``timeout``. Set again
    every 0.25 s of the worker's CPU time, not per program."""
    cpu = time.process_time()
    if cpu >= _CPU_REARM_AT[0]:
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(cpu + TIMEOUT + 0.5), resource.RLIM_INFINITY))
        _CPU_REARM_AT[0] = cpu + 0.25


_CODEC_CACHE = sys.modules["encodings"]._cache  # the one lazy import a fast-path program reaches


def _forget_failed_codecs():
    """Drop the codec lookups that failed during a fast-path program: ``encodings`` caches a
    failed lookup for good, and one that failed because the program had filled the worker's
    memory (the codec's C module could not load) would fail for every later program. A lookup
    that failed for a real reason fails again, as it would in a fresh worker."""
    for name in [name for name, entry in _CODEC_CACHE.items() if entry is None]:
        del _CODEC_CACHE[name]


def _grown():
    """True when this worker's address space has grown more than RETIRE_SLACK above its base
    (what a program left behind, or the allocator kept): it then retires, so no later program
    starts with less headroom. Read (a file read) only when the peak RSS (a getrusage call, far
    cheaper) rose by that much since the last look."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if peak <= _PEAK_SEEN[0] + RETIRE_SLACK:
        return False
    _PEAK_SEEN[0] = peak
    return _vm_bytes() > _VM_BASE[0] + RETIRE_SLACK


_PEAK_SEEN = [0]
_PRELOAD_SUBMODULES = {"numpy": ("numpy.random", "numpy.linalg", "numpy.fft", "numpy.polynomial")}


_PRELOADED = [False]  # _preload_all has run in this worker

# Fixed calls run once in the zygote after the packages load: they make each package import
# the modules it loads lazily and build its caches there, work a forked program would
# otherwise redo and throw away (sympy's first solve() in a child: ~130 ms, after this ~10 ms).
# The same calls in every worker, before any program uses the package; nothing random.
_WARM_UP = {
    "numpy": "import numpy as np\n"
             "a = np.array([1.5, 2, 3, 4])\n"
             "float(np.round(np.mean(a) * np.sum(a) / np.prod(a), 2)), int(np.floor(np.sqrt(a).max()))\n"
             "np.arange(5).tolist(), np.linspace(0, 1, 5).sum(), np.cumsum(a), np.float64(2.5).item()\n"
             "np.linalg.solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0]))\n",
    "sympy": "from sympy import Eq, N, Rational, Symbol, factorial, nsimplify, simplify, solve, sqrt, symbols\n"
             "x, y = symbols('x y')\n"
             "float(solve(Eq(2 * x + 3, 7), x)[0]), solve([Eq(x + y, 10), Eq(x - y, 2)], [x, y])\n"
             "solve(x**2 - 4, x), solve(Eq(Symbol('z') / 3, Rational(5, 2)))\n"
             "float(simplify(Rational(3, 4) * 8 + sqrt(16))), N(sqrt(2)), nsimplify(0.25), int(factorial(5))\n",
}


def _preload_all(policy_bt):
    """Import every third-party package (numpy, then sympy) in the zygote, outside any program,
    the first time a program needs one of them: a worker then has none or all of them loaded,
    so what one library finds of another (sympy looks for numpy) never depends on which
    programs ran before. Once numpy is loaded and warmed, the numpy zygote is forked
    (:class:`_Zygote`): the programs it serves import numpy alone."""
    import importlib

    _PRELOADED[0] = True  # once: a package that is not installed is not looked for again
    try:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        _CPU_REARM_AT[0] = 0.0
        for pkg in THIRD_PARTY:
            try:
                importlib.import_module(pkg)
                for sub in _PRELOAD_SUBMODULES.get(pkg, ()):
                    importlib.import_module(sub)
                _LOADED_THIRD_PARTY.add(pkg)
                _THIRD_PARTY_MODULES[pkg] = sys.modules[pkg]
            except Exception:  # not installed: a program importing it gets ImportError
                continue
            try:
                exec(_WARM_UP.get(pkg, ""), {})  # noqa: S102 - pad's own fixed code, not a program's
            except Exception:  # a package version without one of these names: it warms less
                pass
            if pkg == "numpy" and pkg != THIRD_PARTY[-1]:
                _settle_packages()
                _NUMPY.start(policy_bt, defer=frozenset(THIRD_PARTY) - _LOADED_THIRD_PARTY)
                resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        _seed_packages()
    finally:
        _settle_packages()


def _settle_packages():
    """After packages loaded: their random state seeded, their types and lazy imports learnt, the
    zygote's limits and its children's set again for its new size, its heap frozen."""
    _seed_packages()
    _learn_libraries()
    _set_rlimits()
    _child_limits()
    _PEAK_SEEN[0] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gc.freeze()  # children never scan (and so never copy) what the zygote holds


def _seed_packages():
    """Every program starts from the same random state in the packages too: numpy's global
    generator, and sympy's own two (``sympy.core.random``: randprime, factoring, the order its
    assumptions are tried in), which sympy seeds from the OS when imported, so a different state
    in every worker. Set after the warm-up, so it cannot consume any."""
    if "numpy" in _LOADED_THIRD_PARTY:
        sys.modules["numpy"].random.seed(0)
    rng = sys.modules.get("sympy.core.random") if "sympy" in _LOADED_THIRD_PARTY else None
    if rng is not None and callable(getattr(rng, "seed", None)):
        rng.seed(0)


def _child_limits():
    """Compute once, in the zygote, the rlimits each forked program sets."""

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


def _take_protocol_pipes():
    """Private copies of the protocol pipes; fds 0-2 then point at /dev/null so nothing a
    program does at the C level can corrupt the protocol."""
    proto_in = os.fdopen(os.dup(0), "rb", buffering=1 << 16)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    _PROTOCOL_FDS.extend((proto_in.fileno(), proto_out.fileno()))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdout = sys.stderr = open(os.devnull, "w")
    return proto_in, proto_out


def _settle_process():
    """The import path, what imports may read, death with the parent, and an environment
    with nothing inherited but single-threaded math libraries."""
    sys.path[:] = [p for p in sys.path if p] + ([SITE_DIR] if SITE_DIR else [])
    _READ_ROOTS.extend(os.path.join(os.path.realpath(p), "") for p in  # what imports read
                       [os.path.dirname(os.__file__)] + sys.path)
    _die_with_parent()
    _load_libc()
    os.environ.clear()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # no threads: children are forked from this process


def _load_libc():
    """glibc, for :func:`_trim_heap` (None elsewhere: nothing to trim the same way)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.sbrk.restype = ctypes.c_void_p
        libc.sbrk.argtypes = [ctypes.c_ssize_t]
        libc.malloc_trim(0)
        _LIBC[0] = libc

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

        libc.mallinfo2.restype = MallInfo2
        libc.mallinfo2()
        _MALLINFO[0] = libc.mallinfo2
    except Exception:
        pass


_MALLINFO = [None]


def _free_heap():
    """Bytes of heap malloc holds free (mapped, so counted in the address space, and reusable)."""
    try:
        return _MALLINFO[0]().fordblks if _MALLINFO[0] is not None else 0
    except Exception:
        return 0


_LIBC = [None]
_BRK_BASE = [0]  # the heap's end when the zygote's limits were last set
TRIM_SLACK = 4 << 20


def _trim_heap():
    """Give back the freed heap a program (or compiling one) left: once a program has freed a
    large block, glibc keeps up to twice as much freed heap mapped, room the next program (or a
    child forked next, whose limit counts from the mapped size) could use beyond its memory
    limit. One call per program; a trim only when the heap ended TRIM_SLACK past its base."""
    libc = _LIBC[0]
    if libc is not None and libc.sbrk(0) > _BRK_BASE[0] + TRIM_SLACK:
        libc.malloc_trim(0)
        _BRK_BASE[0] = max(_BRK_BASE[0], libc.sbrk(0) - TRIM_SLACK)  # what stays is the worker's own


def _load_allowed_modules():
    """The sanitized module copies, warmed so no lazy import happens under the audit hook,
    and the fast path's ``__import__`` over them."""
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
    for name in _C_IMPORTS:
        __import__(name)
    import ctypes  # noqa: F401 - loaded before seccomp and the audit hook, used by children

    _learn_libraries()

    _FAST_BUILTINS["__import__"] = _isolated(
        _fast_import, FAST_MODULES=FAST_MODULES, Forbidden=Forbidden,
        _COPIES={n: _COPIES[n] for n in FAST_MODULES if n in _COPIES},
        _C_MODULES={n: sys.modules[n] for n in _C_IMPORTS}, _THIRD_PARTY=_THIRD_PARTY_MODULES)


def _forked_builtins():
    """The builtins of a program on the forked path: the safe ones, every exception class,
    the blocked ones as stubs that raise Forbidden, and guarded attribute access and import."""
    if not POLICY:
        return dict(vars(builtins))
    bt = {n: getattr(builtins, n) for n in SAFE_BUILTIN_NAMES if hasattr(builtins, n)}
    for n in dir(builtins):
        obj = getattr(builtins, n)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            bt[n] = obj
    bt.update({n: _blocked(n) for n in BLOCKED_BUILTINS})
    bt.update(getattr=_safe_getattr, setattr=_safe_setattr, delattr=_safe_delattr,
              __import__=_safe_import, exit=_exit, quit=_exit)
    return bt


def _lock_down():
    """The timer's handler, the zygote's and children's rlimits, the seccomp filters (the
    worker's own installed now), a frozen heap and the audit hook. Returns whether this
    worker runs under seccomp."""
    _signal.signal(_signal.SIGPROF, _on_timer)
    _set_rlimits()
    _child_limits()
    _PEAK_SEEN[0] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for name, program in SECCOMP.items():
        _prepare_seccomp(name, program)
    seccomp_on = False
    if "sandbox" in _SECCOMP_FILTERS:
        _install_seccomp("sandbox")
        seccomp_on = True
    gc.freeze()
    if POLICY:
        sys.addaudithook(_audit)
    return seccomp_on


class _Replies:
    """Results go out in small bursts (one write per FLUSH_S of work, and at the end of every
    batch): far fewer wake-ups of the parent. A program that hangs or kills the worker loses
    at most the burst before it, and the parent then reruns each pending program alone."""

    def __init__(self, proto_out):
        self.proto_out = proto_out
        self.buf = []
        self.flushed_at = time.perf_counter()
        self.key = None  # the program now running, and when it started (for overrun)
        self.started = 0.0

    def flush(self):
        if self.buf:
            self.proto_out.write(b"".join(self.buf))
            self.buf.clear()
        self.flushed_at = time.perf_counter()

    def notify(self, msg):
        self.flush()
        self.proto_out.write(_encode(msg))

    def overrun(self):
        """A fast-path program still running past its timeout + grace (it catches the timer's
        exception): its result is ``timeout`` and the worker retires now, without the parent
        having to kill it and rerun its batch."""
        self.buf.append(_encode({"key": self.key, "status": "timeout", "error_type": "Timeout",
                                 "error_message": f"exceeded {TIMEOUT:g} s", "stdout": "", "path": "fast",
                                 "duration_ms": (time.perf_counter() - self.started) * 1000.0,
                                 "recycle": True}))
        self.flush()
        os._exit(0)


def _handle_guarded(source, bt, notify, preamble=None):
    """:func:`handle`, with a failure of the worker itself turned into the program's result
    (and the worker retired): never let a program take the worker down silently."""
    try:
        return handle(source, bt, notify, preamble)
    except MemoryError:  # even our own bookkeeping ran out: no allocation until it is freed
        return dict(INTERNAL_ERROR_RESULT, status="memory_limit", error_type="MemoryError",
                    error_message="memory limit reached"), True
    except BaseException:  # noqa: BLE001
        res = dict(INTERNAL_ERROR_RESULT)
        if _state["fired"]:
            res.update(status="timeout", error_type="Timeout", error_message=f"exceeded {TIMEOUT:g} s")
        return res, True


def _serve(proto_in, replies, bt):
    """Run every batch the parent sends, one result per program; the worker exits when a
    program harmed it or it has run MAX_PROGRAMS."""
    done, notify = 0, replies.notify
    for line in proto_in:
        msg = json.loads(line)
        for key, source, *preamble in msg["batch"]:
            replies.key, replies.started = key, time.perf_counter()
            if replies.buf and time.perf_counter() - replies.flushed_at > FLUSH_S:
                replies.flush()
            res, harmed = _handle_guarded(source, bt, notify, preamble[0] if preamble else None)
            res["key"] = key
            done += 1
            recycle = harmed or done >= MAX_PROGRAMS
            if recycle:
                res["recycle"] = True
            replies.buf.append(_encode(res))
            if recycle:
                replies.flush()
                os._exit(0)
        replies.flush()
    os._exit(0)


def main():
    proto_in, proto_out = _take_protocol_pipes()
    _settle_process()
    _load_allowed_modules()
    bt = _forked_builtins()
    seccomp_on = _lock_down()
    proto_out.write(_dumps({"ready": True, "pid": os.getpid(), "modules": sorted(_COPIES),
                            "seccomp": seccomp_on}).encode() + b"\n")
    replies = _Replies(proto_out)
    _state["overrun"] = replies.overrun
    _serve(proto_in, replies, bt)


if __name__ == "__main__":
    main()
