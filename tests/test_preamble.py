"""Preambles (`--preamble FILE`): code run before each program in its namespace and sandbox, as the
programs' own runner did (PoT's `from sympy import *` and `solve_it`, PAL's unimported `gcd`), stored
once under its hash, named by the programs imported with it (in their ids) and by each execution."""

import json
from pathlib import Path

import pytest
from conftest import ROOT, pad_cli

from pad_data.sandbox.pool import SandboxPool
from pad_data.stages.execute import execute
from pad_data.stages.ingest import import_programs, ingest
from pad_data.store import Store
from pad_data.store.ids import preamble_id, problem_id, program_id

PAL_MATH = ROOT / "examples" / "preambles" / "pal_math.py"
POT_AQUA = ROOT / "examples" / "preambles" / "pot_aqua.py"

# PAL's AQuA outputs: a solution() using math names it never imports; options and a letter gold
PAL_AQUA = [
    {"question": "What is the greatest common divisor of 84 and 36?", "options": ["A)6", "B)12", "C)18", "D)24"],
     "correct": "B", "code": "def solution():\n    return gcd(84, 36)\n"},
    {"question": "In how many ways can 5 books be arranged on a shelf?", "options": ["A)24", "B)60", "C)120", "D)720"],
     "correct": "C", "code": "def solution():\n    n = 5\n    return factorial(n)\n"},
    {"question": "The area of a square is 49. What is its side?", "options": ["A)6", "B)7", "C)8", "D)9"],
     "correct": "B", "code": "def solution():\n    area = 49\n    side = sqrt(area)\n    return side\n"},
    {"question": "How many 2-person teams can be chosen from 6 people?", "options": "a ) 12 , b ) 15 , c ) 30 , d ) 36",
     "correct": "b", "code": "def solution():\n    return comb(6, 2)\n"},
]
# PoT's AQuA outputs: scripts that set ans with sympy names and solve_it, none of them defined
POT_AQUA_RECS = [
    {"question": "Twice a number minus 10 is 4. What is the number?", "options": ["A)5", "B)6", "C)7", "D)8"],
     "correct": "C", "code": "x = Symbol('x')\nans = solve_it(2 * x - 10 - 4, x)[x]\n"},
    {"question": "Two numbers add to 10 and differ by 2. What is the larger?", "options": ["A)4", "B)6", "C)8", "D)10"],
     "correct": "B", "code": "x, y = symbols('x y')\nsol = solve_it([x + y - 10, x - y - 2], [x, y])\nans = sol[x]\n"},
    {"question": "What is the square root of 144?", "options": ["A)11", "B)12", "C)13", "D)14"],
     "correct": "B", "code": "ans = math.sqrt(144)\n"},
]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _labels(st: Store, dataset: str) -> list[tuple]:
    return st.con.execute("SELECT pr.choice, l.label, e.error_type, e.preamble_id FROM programs p "
                          "JOIN problems pr USING (problem_id) JOIN program_labels l USING (program_id) "
                          "JOIN executions e ON e.seq = l.seq WHERE pr.dataset = ? ORDER BY pr.question",
                          [dataset]).fetchall()


@pytest.mark.parametrize("records, preamble, fast", [(PAL_AQUA, PAL_MATH, True), (POT_AQUA_RECS, POT_AQUA, False)],
                         ids=["pal", "pot"])
def test_aqua_programs_need_their_preamble(tmp_path, records, preamble, fast):
    src = _jsonl(tmp_path / "aqua.jsonl", records)
    pre_id = preamble_id(preamble.read_text())
    with Store(tmp_path / "pad.duckdb") as st:
        import_programs(st, src, "bare", answer_field="correct")
        r = import_programs(st, src, "pre", answer_field="correct", preamble=preamble)
        assert r["preamble"] == pre_id and r["added"] == len(records)
        ran = execute(st, isolation_level="process")
        assert ran["executed"] == 2 * len(records)
        assert {(label, etype) for _, label, etype, _ in _labels(st, "bare")} == {("runtime_error", "NameError")}
        with_pre = _labels(st, "pre")
        assert [label for _, label, _, _ in with_pre] == ["correct"] * len(records)
        assert {p for *_, p in with_pre} == {pre_id}  # each label says what it ran with
        # math names keep programs on the fast path; sympy's star import forks them, as in a program
        assert (ran["pool"]["fast"] == 2 * len(records)) if fast else (ran["pool"]["forked"] >= len(records))


def test_ids_record_the_preamble_and_reimport_is_idempotent(tmp_path):
    src = _jsonl(tmp_path / "pal.jsonl", PAL_AQUA[:2])
    text = PAL_MATH.read_text()
    with Store(tmp_path / "pad.duckdb") as st:
        import_programs(st, src, "d", answer_field="correct")
        import_programs(st, src, "d", answer_field="correct", preamble=PAL_MATH)
        again = import_programs(st, src, "d", answer_field="correct", preamble=PAL_MATH)
        assert again["added"] == 0 and again["problems_added"] == 0
        rows = st.con.execute("SELECT problem_id, sample_idx, program, program_id, preamble_id FROM programs "
                              "ORDER BY preamble_id NULLS FIRST, program_id").fetchall()
        assert st.con.execute("SELECT preamble_id, name, text FROM preambles").fetchall() == \
            [(preamble_id(text), "pal_math", text)]
    assert len(rows) == 4
    for prob, idx, program, pid, pre in rows:
        assert pid == program_id(prob, program, "import", idx, "import", pre)
    # without a preamble the id is the one it always was; the same text after one is another program
    bare = {(r[0], r[2]): r[3] for r in rows if r[4] is None}
    pre = {(r[0], r[2]): r[3] for r in rows if r[4] is not None}
    assert bare.keys() == pre.keys() and not set(bare.values()) & set(pre.values())
    q = PAL_AQUA[0]["question"]
    assert bare[(problem_id("d", q), PAL_AQUA[0]["code"])] == program_id(problem_id("d", q), PAL_AQUA[0]["code"], "import")


def test_pot_programs_of_real_data_with_a_preamble(tmp_path, shared_data):
    """PoT's MultiArith programs (`import math`, `import numpy as np`, `ans = solver()`) after a preamble
    that imports math names: the same labels as without it, and the bulk (SQL) path names the preamble."""
    src = tmp_path / "multiarith.jsonl"
    src.write_text("".join((shared_data / "pot" / "multiarith_zs.jsonl").read_text().splitlines(True)[:60]))
    with Store(tmp_path / "pad.duckdb") as st:
        for ds, pre in (("bare", None), ("pre", PAL_MATH)):
            import_programs(st, src, ds, program_field="generated", preamble=pre)
        execute(st, isolation_level="process")
        got = {ds: [(lab, et) for _, lab, et, _ in _labels(st, ds)] for ds in ("bare", "pre")}
        assert st.scalar("SELECT count(*) FROM programs WHERE preamble_id = ?", [preamble_id(PAL_MATH.read_text())]) == 60
    assert got["pre"] == got["bare"] and sum(lab == "correct" for lab, _ in got["pre"]) >= 50


def test_bad_preamble_is_one_line_and_stores_nothing(tmp_path, db):
    src = _jsonl(tmp_path / "pal.jsonl", PAL_AQUA)
    bad = tmp_path / "bad.py"
    bad.write_text("from math import gcd\ndef helper(:\n    pass\n")
    empty = tmp_path / "empty.py"
    empty.write_text("\n  \n")
    for pre, message in ((tmp_path / "missing.py", f"error: {tmp_path / 'missing.py'}: no such preamble file"),
                         (bad, f"error: {bad}:2: the preamble does not compile: invalid syntax"),
                         (empty, f"error: {empty}: the preamble is empty")):
        res = pad_cli("--db", db, "import-programs", src, "--dataset", "d", "--answer-field", "correct",
                      "--preamble", pre)
        assert res.returncode == 1 and res.stderr.strip() == message, res.stderr
        res = pad_cli("--db", db, "execute", "--isolation", "process", "--preamble", pre)
        assert res.returncode == 1 and res.stderr.strip().endswith(message), res.stderr
    with Store(db) as st:
        assert [st.scalar(f"SELECT count(*) FROM {t}") for t in ("problems", "programs", "preambles", "executions")] \
            == [0, 0, 0, 0]


def test_execute_preamble_runs_programs_imported_without_one(tmp_path, db):
    """`pad execute --preamble F` runs programs imported without a preamble after F (each execution
    records it); a program imported with another preamble is an error, before anything runs."""
    src = _jsonl(tmp_path / "pal.jsonl", PAL_AQUA)
    other = tmp_path / "other.py"
    other.write_text("from math import gcd\n")
    pad_cli("--db", db, "import-programs", src, "--dataset", "bare", "--answer-field", "correct", check=True)
    pad_cli("--db", db, "import-programs", src, "--dataset", "pre", "--answer-field", "correct",
            "--preamble", other, check=True)
    res = pad_cli("--db", db, "execute", "--isolation", "process", "--preamble", PAL_MATH)
    assert res.returncode == 1 and res.stderr.strip().splitlines()[-1] == (
        f"error: --preamble {PAL_MATH}: 4 of the programs to execute were imported with another preamble "
        f"({preamble_id(other.read_text())}), which they run with: leave out --preamble, or select other programs "
        "(--dataset, --origin)")
    with Store(db) as st:
        assert st.scalar("SELECT count(*) FROM executions") == 0
    pad_cli("--db", db, "execute", "--isolation", "process", "--dataset", "bare", check=True)
    res = pad_cli("--db", db, "execute", "--isolation", "process", "--dataset", "bare", "--rerun",
                  "--preamble", PAL_MATH, check=True)
    assert "correct │ 4" in res.stdout
    pad_cli("--db", db, "execute", "--isolation", "process", check=True)  # "pre": its own preamble
    with Store(db, read_only=True) as st:
        history = st.con.execute("SELECT pr.dataset, e.label, e.preamble_id FROM executions e JOIN programs p "
                                 "USING (program_id) JOIN problems pr USING (problem_id) ORDER BY e.seq").fetchall()
        current = st.con.execute("SELECT dataset, label, preamble_id FROM labeled_programs WHERE question = ?",
                                 [PAL_AQUA[0]["question"]]).fetchall()
    pal_id, other_id = preamble_id(PAL_MATH.read_text()), preamble_id(other.read_text())
    assert [h for h in history if h[0] == "bare"] == [("bare", "runtime_error", None)] * 4 + \
        [("bare", "correct", pal_id)] * 4
    assert sorted(current) == [("bare", "correct", pal_id), ("pre", "correct", other_id)]


def test_error_lines_are_the_programs_and_preamble_errors_say_so():
    preamble = "# helpers\nfrom math import gcd\n\ndef half(x):\n    return x / 2\n"
    cases = {
        "name": ("def solution():\n    x = 1\n    return y\n", preamble, ("runtime_error", "NameError", 3)),
        "in_helper": ("def solution():\n    return half('a')\n", preamble, ("runtime_error", "TypeError", 2)),
        "syntax": ("def solution():\n    return (1,\n", preamble, ("syntax_error", "SyntaxError", 2)),
        "future": ("from __future__ import annotations\ndef solution() -> int:\n    return gcd(4, 6) + z\n",
                   preamble, ("runtime_error", "NameError", 3)),
        "indented": ("    return 5\n", "def solution():\n    x = 1\n", ("syntax_error", "IndentationError", 1)),
        "raises": ("def solution():\n    return 1\n", "x = 1\ny = 1 / 0\n", ("runtime_error", "PreambleError", None)),
        "forbidden": ("def solution():\n    return 1\n", "import os\n", ("forbidden", "Forbidden", None)),
        "bad": ("def solution():\n    return 1\n", "x = (1,\n", ("syntax_error", "SyntaxError", None)),
    }
    with SandboxPool(workers=1, timeout=2.0, isolation_level="process") as pool:
        res = dict(pool.map((k, src, pre) for k, (src, pre, _) in cases.items()))
    for k, (_, _, want) in cases.items():
        assert (res[k].status, res[k].error_type, res[k].error_line) == want, (k, res[k])
    assert res["raises"].error_message == "preamble line 2: ZeroDivisionError: division by zero"
    assert res["forbidden"].error_message.startswith("preamble line 1: import of module 'os'")
    assert res["bad"].error_message == "preamble line 1: '(' was never closed"


def test_fast_path_admits_preamble_and_program_as_one_program():
    """The preamble is admitted with the program as one code, never separately: each pair takes the
    path its concatenation takes as a program, whatever the preamble does; and no program sees
    another's state."""
    warm = "import numpy\nans = int(numpy.int64(1))\n"  # numpy preloaded: unused imports may stay fast
    pairs = [
        ("import numpy as np\n", "def solution():\n    return 3\n"),  # bound, never read: fast, as in a program
        ("import numpy as np\n", "def solution():\n    return int(np.int64(3))\n"),  # read: forked
        ("np = 1\n", "import numpy as np\nans = 3\n"),
        ("from math import *\n", "ans = floor(3.5)\n"),  # a star import
        ("import math\nmath.tau = 3\n", "ans = math.tau\n"),  # a store into a read-only module copy
        ("f = getattr\n", "ans = 3\n"),
        ("class A:\n    pass\n", "ans = 3\n"),  # a class, nothing imported: fast
        ("def g():\n    yield 1\n", "ans = 3\n"),
        ("import fractions\n", "ans = 3\n"),  # the module bound: forked
        ("from fractions import Fraction\n", "class A:\n    pass\nans = 3\n"),  # Fraction and a class
        ("from fractions import Fraction\n", "ans = int(Fraction(6, 2))\n"),
        ("from math import gcd\nseen = []\n", "seen.append(1)\nans = len(seen) + gcd(4, 6)\n"),
    ]

    def paths(items):
        out = {}
        with SandboxPool(workers=1, timeout=2.0, isolation_level="process") as pool:
            list(pool.map([("warm", warm)]))
            for key, *item in items:
                fast = pool.stats["fast"]
                (_, r), = pool.map([(key, *item)])
                out[key] = (pool.stats["fast"] > fast, r.status, r.value)
        return out

    together = paths([(i, prog, pre) for i, (pre, prog) in enumerate(pairs)])
    alone = paths([(i, pre + "pass\n" + prog) for i, (pre, prog) in enumerate(pairs)])
    assert together == alone
    assert [fast for fast, _, _ in together.values()] == [True, False, False, False, True, False, True, False,
                                                         False, False, True, True]
    assert together[4][1:] == ("forbidden", None) and together[10][1:] == ("ok", 3)
    with SandboxPool(workers=1, timeout=2.0, isolation_level="process") as pool:
        last = pairs[-1]
        assert {r.value for _, r in pool.map((i, last[1], last[0]) for i in range(20))} == {3}


def test_ingest_counts_repeats_within_the_file_apart_from_stored(tmp_path, db):
    recs = [{"question": f"What is {i} + 1?", "answer": i + 1} for i in range(5)]
    src = _jsonl(tmp_path / "train.jsonl", recs + recs[:2] + recs[:1])
    res = pad_cli("--db", db, "ingest", src, "--dataset", "d", check=True)
    assert res.stdout == "d/train: read 8 problems, added 5 (0 already stored, 3 repeated within the file)\n"
    more = _jsonl(tmp_path / "more_train.jsonl", recs[3:] + [{"question": "What is 9 + 1?", "answer": 10}])
    res = pad_cli("--db", db, "ingest", more, "--dataset", "d", check=True)
    assert res.stdout == "d/train: read 3 problems, added 1 (2 already stored)\n"
    with Store(db) as st:
        r = ingest(st, src, "d")
    assert (r["read"], r["repeated"], r["added"], r["stored"]) == (8, 3, 0, 5)


def test_run_programs_with_preamble(tmp_path, db):
    recs = [{k: r[k] for k in ("question", "code")} | {"answer": a} for r, a in zip(PAL_AQUA[:2], (12, 120))]
    src = _jsonl(tmp_path / "pal.jsonl", recs)
    res = pad_cli("--db", db, "run", "--programs", src, "--dataset", "d", "--preamble", tmp_path / "nope.py")
    assert res.returncode == 1 and res.stderr.strip() == f"error: {tmp_path / 'nope.py'}: no such preamble file"
    pad_cli("--db", db, "run", "--programs", src, "--dataset", "d", "--preamble", PAL_MATH, check=True)
    with Store(db, read_only=True) as st:
        assert st.con.execute("SELECT label, preamble_id FROM labeled_programs WHERE dataset = 'd'").fetchall() == \
            [("correct", preamble_id(PAL_MATH.read_text()))] * 2
