"""The forked path's cost: what a forked program is made from, and what it no longer redoes.

Once a worker has loaded numpy and sympy, programs that import neither are forked from a lean
second zygote, and programs that import numpy alone from a numpy one (pad_data/sandbox/worker.py,
``_Zygote``), and the packages are warmed in the
zygote so a forked program does not redo their lazy imports. Checked at the OS layer (the
Python policy off, so a program can read its own /proc), and by duration ratios measured in
the same run (never absolute times: the machine may be busy).
"""

from __future__ import annotations

import json
import statistics

import pytest

from pad_data.sandbox.pool import SandboxPool

pytestmark = pytest.mark.e2e

VM_SIZE = "import json\nwith open('/proc/self/statm') as f:\n    vm = int(f.read().split()[0])\n"
NUMPY_VM = "import numpy as np\n" + VM_SIZE + "print(json.dumps({'vm': vm, 'np': float(np.sum(np.arange(3)))}))\nans = 1\n"
CLASS_VM = VM_SIZE + "class P:\n    pass\nprint(json.dumps({'vm': vm, 'p': type(P()).__name__}))\nans = 1\n"
# forked, not for numpy: super() (a class cell) and a module outside the fast path's
CLASS = ("class Problem(dict):\n    def __init__(self):\n        super().__init__(a={i})\n\n    def answer(self):\n"
         "        return self['a'] * 2 + 1\n\n\ndef solution():\n    return Problem().answer()\n")
FRACTION = "import fractions\n\n\ndef solution():\n    return float(fractions.Fraction({i}, 4) + fractions.Fraction(1, 4))\n"
SYMPY = ("from sympy import symbols, Eq, solve\n\n\ndef solution():\n    x = symbols('x')\n"
         "    return float(solve(Eq(x, {i} * 3 + 2), x)[0])\n")


def test_after_numpy_loads_a_program_that_does_not_use_it_is_forked_from_the_lean_zygote():
    with SandboxPool(workers=1, timeout=10.0, python_policy=False) as pool:
        res = dict(pool.map([("before", CLASS_VM), ("numpy", NUMPY_VM), ("after", CLASS_VM), ("numpy2", NUMPY_VM)]))
    assert all(r.status == "ok" for r in res.values()), res
    vm = {k: json.loads(r.stdout)["vm"] for k, r in res.items()}
    # the numpy programs' process holds both packages; the class program's, before and after, neither
    assert vm["after"] < 0.6 * vm["numpy"] and vm["after"] < 0.6 * vm["numpy2"], vm
    assert vm["after"] < 1.5 * vm["before"], vm


SYMPY_VM = "import sympy\n" + VM_SIZE + "print(json.dumps({'vm': vm, 's': str(sympy.Integer(2))}))\nans = 1\n"
RANDOM = "import numpy as np\nans = float(np.random.rand())\n"


def test_after_sympy_loads_a_numpy_program_is_forked_from_the_numpy_zygote():
    with SandboxPool(workers=1, timeout=10.0, python_policy=False) as pool:
        res = dict(pool.map([("sympy", SYMPY_VM), ("numpy", NUMPY_VM), ("sympy2", SYMPY_VM), ("numpy2", NUMPY_VM)]))
    assert all(r.status == "ok" for r in res.values()), res
    vm = {k: json.loads(r.stdout)["vm"] for k, r in res.items()}
    # a numpy program's process holds numpy, not sympy
    assert max(vm["numpy"], vm["numpy2"]) < 0.85 * min(vm["sympy"], vm["sympy2"]), vm


def test_numpy_s_random_state_is_the_same_in_the_numpy_zygote_and_the_full_one():
    with_sympy = "import sympy\n" + RANDOM  # forked from the worker, which holds both packages
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map([("first", RANDOM), ("both", with_sympy), ("again", RANDOM), ("both2", with_sympy)]))
    assert {(r.status, r.value) for r in res.values()} == {("ok", 0.5488135039273248)}, res


# numpy alone by its import statements, yet it reaches for sympy: typing evaluates the annotation's text
# (with the program's __import__), and the program catches whatever that raises
SYMPY_BY_ANNOTATION = ("import numpy as np\nimport typing\n\n\ndef f(x: \"__import__('sympy').Integer(7)\"):\n"
                       "    pass\n\n\ndef solution():\n    try:\n        x = int(typing.get_type_hints(f)['x'])\n"
                       "    except BaseException:\n        x = -1\n    return x + int(np.int64(1))\n")


def test_a_numpy_program_that_reaches_sympy_gets_the_label_of_the_worker_holding_both():
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map([("numpy", SYMPY_BY_ANNOTATION), ("both", "import sympy\n" + SYMPY_BY_ANNOTATION),
                             ("random", RANDOM), ("again", SYMPY_BY_ANNOTATION)]))
        stats = dict(pool.stats)
    # the annotation is name-checked as the program's own code, wherever the program runs: `forbidden`
    # from the numpy zygote as from the worker holding both (which once gave ok 8 and -1)
    assert {k: (r.status, r.value) for k, r in res.items()} == {
        "numpy": ("forbidden", None), "both": ("forbidden", None), "random": ("ok", 0.5488135039273248),
        "again": ("forbidden", None)}, res
    assert {res[k].error_message for k in ("numpy", "both", "again")} == {
        "blocked operation: use of name '__import__' is not allowed"}, res
    assert (stats["spawned"], stats["crashes"], stats["recycled"]) == (1, 0, 0), stats


# a class the worker learnt when sympy loaded (pathlib's, which sympy imports), reached from numpy alone
PATH_FROM_NUMPY = ("import numpy as np\n\n\ndef solution():\n"
                   "    return np.testing._private.utils.pathlib.PurePosixPath('a', 'b')\n")
OWN_CLASS = "import numpy as np\n\n\nclass P:\n    pass\n\n\ndef solution():\n    return P()\n"


def test_a_numpy_program_s_value_is_shown_as_the_worker_holding_both_shows_it():
    items = [(k, src) for k, p in (("path", PATH_FROM_NUMPY), ("own", OWN_CLASS))
             for k, src in ((k, p), (k + "+sympy", "import sympy\n" + p))]
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map(items))
    got = {k: (r.status, r.value_type, r.value_repr) for k, r in res.items()}
    # from the numpy zygote alone: '<PurePosixPath object>', a class it never learnt taken for the program's
    assert got == {"path": ("ok", "PurePosixPath", "PurePosixPath('a/b')"),
                   "path+sympy": ("ok", "PurePosixPath", "PurePosixPath('a/b')"),
                   "own": ("ok", "P", "<P object>"), "own+sympy": ("ok", "P", "<P object>")}, got


def _durations(pool: SandboxPool, template: str, n: int, tag: str) -> list[float]:
    forked = pool.stats["forked"]
    res = dict(pool.map([(f"{tag}{i}", template.format(i=i)) for i in range(n)]))
    assert all(r.status == "ok" for r in res.values()), [r for r in res.values() if r.status != "ok"][:2]
    assert pool.stats["forked"] - forked == n
    return [r.duration_ms for r in res.values()]


def test_forked_programs_pay_neither_for_packages_they_do_not_use_nor_for_warming_them():
    with SandboxPool(workers=1, timeout=10.0) as pool:
        lean = statistics.median(_durations(pool, CLASS, 150, "a") + _durations(pool, FRACTION, 150, "b"))
        sympy = statistics.median(_durations(pool, SYMPY, 40, "s"))  # loads numpy and sympy in the worker
        after = statistics.median(_durations(pool, CLASS, 150, "c") + _durations(pool, FRACTION, 150, "d"))
    # forked from the big zygote a trivial program took ~2x as long; a cold sympy solve() ~10x
    assert after < 1.6 * lean, (lean, after)
    assert sympy < 6 * lean, (lean, sympy)


PREAMBLE = "from fractions import Fraction\nK = 3\n"
# its error is on line 6 of the program, whatever the preamble's length
AFTER_PREAMBLE = "class A:\n    pass\n\n\ndef solution():\n    return Fraction(K, 4) + 1 / 0\n"
BAD_PREAMBLE = "from fractions import Fraction\nK = 1 / 0\n"
# code objects nested deeper than marshal carries (and within what the compiler and the name
# check accept): nothing to do with numpy, so it must run the same once numpy is loaded
DEEP = "import statistics\n\n\nf = " + "lambda: " * 1000 + "41\nans = 2 * 21\n"
# the order a loop over a set constant takes: marshal would rebuild the set in another one
GREEDY = ("import statistics\n\n\ndef solution():\n    left, used = 200, 0\n"
          "    for coin in {25, 186, 18, 175}:\n        used += left // coin\n        left %= coin\n    return used\n")


def test_programs_forked_from_the_lean_zygote_get_the_label_they_get_before_numpy_loads():
    def labels(res):
        return {k: (r.status, r.value, r.error_type, r.error_line, r.error_message)
                for k, r in res.items() if k != "numpy"}

    programs = [("pre", AFTER_PREAMBLE, PREAMBLE), ("bad_pre", "class A:\n    pass\nans = 1\n", BAD_PREAMBLE),
                ("deep", DEEP), ("greedy", GREEDY)]
    with SandboxPool(workers=1, timeout=10.0) as pool:
        before = labels(dict(pool.map(programs)))
        after = labels(dict(pool.map([("numpy", "import numpy as np\nans = int(np.sum(np.arange(3)))\n")]
                                     + programs)))
        recycled = pool.stats["recycled"]
    assert before["pre"] == ("runtime_error", None, "ZeroDivisionError", 6, "division by zero"), before
    assert before["bad_pre"][2:4] == ("PreambleError", None) and "preamble line 2" in before["bad_pre"][4], before
    assert before["deep"][:2] == ("ok", 42), before
    assert before["greedy"][:2] == ("ok", 8), before
    assert after == before
    assert recycled == 0


def test_sympy_random_state_is_the_same_in_every_worker():
    program = "from sympy import randprime\n\n\ndef solution():\n    return int(randprime(1, 10**9))\n"
    with SandboxPool(workers=1, timeout=10.0, max_programs_per_worker=1) as pool:  # a fresh worker each
        res = dict(pool.map([(i, program) for i in range(2)]))
        spawned = pool.stats["spawned"]
    assert spawned >= 2
    assert all(r.status == "ok" for r in res.values()), res
    assert len({r.value for r in res.values()}) == 1, res


def test_when_a_program_s_finalizers_run_does_not_depend_on_what_its_zygote_ran_before():
    # each Node is a cycle: its __del__ runs when the collector next runs, which the counts a
    # child inherits decided (the worker's allocations for earlier programs, the lean zygote's)
    program = ("class Node:\n    def __init__(self):\n        self.me = self\n\n    def __del__(self):\n"
               "        log.append(1)\n\n\nlog = []\nfor i in range(1500):\n    Node()\nans = len(log)\n")
    items = [(f"p{i}", program) for i in range(3)]
    with SandboxPool(workers=1, timeout=10.0) as pool:
        res = dict(pool.map(items))
        res.update(dict(pool.map([("numpy", "import numpy as np\nans = 1\n")] + [(f"q{i}", program) for i in range(3)])))
    values = {k: (r.status, r.value) for k, r in res.items() if k != "numpy"}
    assert len(set(values.values())) == 1 and values["p0"][0] == "ok" and values["p0"][1] > 0, values

