"""The bulk (DuckDB) path of import-programs/ingest gives exactly what the Python path gives.

Every SQL piece is checked against the Python function it stands for (whitespace, gold answers,
program extraction), on the real data and on tricky input; and whole imports of a messy file are
compared row for row, message for message, with the Python path (``bulk.USE_SQL = False``).
"""

import json
import math
import random
import tempfile

import duckdb
import pyarrow as pa

from pad_data.rules.answers import AnswerError, parse_answer
from pad_data.rules.answers_sql import PY_WHITESPACE, chain, gold_layers, strip_sql
from pad_data.rules.extract import extract_program
from pad_data.stages import bulk
from pad_data.store import ids
from pad_data.stages.ingest import IngestError, import_programs, ingest
from pad_data.store import Store, problem_id, program_id


def test_whitespace_is_pythons_own():
    assert PY_WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())


def _sql_values(expr: str, values: list[str]) -> list:
    con = duckdb.connect()
    con.register("t", pa.table({"i": list(range(len(values))), "x": values}))
    return [r[0] for r in con.execute(f"SELECT {expr} FROM t ORDER BY i").fetchall()]


def test_strip_split_and_blank_in_sql_are_pythons():
    ws = PY_WHITESPACE
    rng = random.Random(1)
    values = ["", " ", "a", " a  b ", "a\u00a0\u3000b", "\u2028x\u2029", "x\x1c\x1fy", "\u200bx"]  # \u200b: not space
    values += ["".join(rng.choice(ws + "ab\u200b") for _ in range(rng.randint(0, 8))) for _ in range(3000)]
    assert _sql_values(strip_sql("x"), values) == [v.strip() for v in values]
    assert _sql_values(ids.normalize_sql("x"), values) == [" ".join(v.split()) for v in values]
    assert _sql_values(bulk.blank_sql("x"), values) == [not v.strip() for v in values]


def _answers(shared_data) -> list:
    values = []
    for path in sorted(shared_data.glob("*/*.jsonl")):
        for line in open(path, encoding="utf-8"):
            rec = json.loads(line)
            values += [rec[k] for k in ("answer", "target", "gold", "Answer") if k in rec]
    return values


# hand-written gold answers, by what they try; SQL reads every one of them as answers.py does
EDGE_GOLD = {
    "commas": ["1,234", "1,234.5", "2,3", "1,23", "1,2,3", ",5", "5,", "5,.5", "99999999999999999999 1/2"],
    "currency": ["$12.50", "-$5", "$-5", "5$", "$\u22125", "\u2212$5", "$", "5€", "€ 5", "£3", "¥7", "₹2"],
    "units": ["12 cm", "12 cm.", "150 dollars", "5 apples", "5 km/h", "5 /2 m/s", "12 m^2", "75%", "5 %", "%",
              "3  1/2x", "x=5"],
    "scale words": ["1.2 million", "$2.5k", "5 dozen", "5 Dozens", "3 thousand", "7 K", "3 bn", "2 kg"],
    "unicode minus": ["\u22125", "\u22123 m", "+-5", "- 5", "-0"],
    "fractions": ["3/4", "3 1/2", "1 2/3 cm", "1 23/4", "1/0", "3 1/0", "1/2/3", "1 1/2/3", "5/ 2", "-0/5", "1 2",
                  "1e400/1e400"],
    "exponents and dots": ["1e400", "1e-400", "1.5e3", "-2.5e3", "5e", "1.", ".5", "1.e5", "007", "18.0.",
                           "1" * 400],
    "whitespace": ["\t5 \u00a0", "\u30005\u2028"],
    "text": ["yes", "No", "ab", "1 and 2", "5-6", "", "   "],
    "GSM8K marks": ["Tom ate 3.\n#### 1,500", "#### 1,500", "####", "a ####  ", "#####5", "r\n####\n7",
                    "7 #### 8 #### 9", "#### 1 ##### 2", "r ###### 12", "a\n####\n####\n5", "##########"],
    "JSON values": [True, False, None, 0, -0.0, 2.5, 1e-7, 0.1, 7.0, 123456789012345, -42],
}
# what SQL leaves to answers.py: text beyond ASCII and \u2212$€£¥₹, JSON numbers beyond a double's
# exact integers, other JSON
PYTHON_ONLY = ["5 °C", "٣", "3π", "3½", "½", 1e20, 1e300, 123456789012345678, 10**400, [1], {"v": 1}]


def _sql_golds(values: list, require: bool) -> list[tuple]:
    """``(g_number, g_text, g_rationale, g_sure)`` of each raw answer, by the SQL parser."""
    raws = [json.dumps(v) for v in values]
    con = duckdb.connect()
    con.register("src", pa.table({"i": list(range(len(raws))), "a": raws}))
    sql = chain([f"SELECT i, a::JSON AS _a, {str(require).lower()} AS req FROM src"] + gold_layers("_a", "req"))
    return con.execute(f"SELECT g_number, g_text, g_rationale, g_sure FROM ({sql}) ORDER BY i").fetchall()


def _python_gold(value, require: bool) -> tuple | str:
    """answers.py's gold answer, or 'error' where it raises an AnswerError (and nothing else)."""
    try:
        gold = parse_answer(value, require_number=require)
    except AnswerError:
        return "error"
    return gold.number, gold.text, gold.rationale


def _assert_agree(values: list, require: bool) -> list:
    """Where SQL is sure, its gold answer is answers.py's (a zero's sign too); returns the values
    it is not sure of (answers.py decides those, and raises nothing but an AnswerError)."""
    unsure = []
    for value, (number, text, rationale, sure) in zip(values, _sql_golds(values, require)):
        python = _python_gold(value, require)
        if not sure:
            unsure.append(value)
            continue
        assert python == (number, text, rationale), (value, require)
        if number is not None:
            assert math.copysign(1, python[0]) == math.copysign(1, number), value
    return unsure


def test_the_sql_gold_parser_is_answers_py(shared_data):
    real = _answers(shared_data)
    gsm = [v for v in real if isinstance(v, str) and "####" in v]
    assert len(real) > 20000 and len(gsm) == 7473 + 1319
    edge = [v for group in EDGE_GOLD.values() for v in group]
    marked = [f"r\n#### {v}" for v in edge if isinstance(v, str)]
    marked_python = [f"r\n#### {v}" for v in PYTHON_ONLY if isinstance(v, str)]
    # every real gold answer and every hand-written one is read in SQL, as answers.py reads it
    assert _assert_agree(real + edge + marked + marked_python + PYTHON_ONLY, require=False) == \
        marked_python + PYTHON_ONLY
    # GSM8K format: every real GSM8K answer is read in SQL; what SQL leaves is an error in
    # answers.py, an answer beyond SQL's alphabet, or not text (ingest rejects it before)
    unsure = _assert_agree(gsm + edge + marked + marked_python + PYTHON_ONLY, require=True)
    assert not set(gsm) & set(map(str, unsure))
    assert [v for v in unsure if isinstance(v, str) and _python_gold(v, True) != "error"] == \
        ["r\n#### 5 °C", "r\n#### ٣"]


def test_the_sql_gold_parser_is_answers_py_on_random_input():
    rng = random.Random(0)
    fuzz = ["".join(rng.choices(["1", "0", ",", ".", " ", "/", "-", "$", "%", "e", "cm", "####", "k", "€",
                                 "\n", "\u2212", "x", "°"], k=rng.randint(1, 8))) for _ in range(3000)]
    fuzz += [rng.uniform(-1e6, 1e6) for _ in range(500)] + [rng.randint(-10**15, 10**15) for _ in range(500)]
    assert len(_assert_agree(fuzz, require=False)) < len(fuzz) * 0.2
    assert len(_assert_agree(fuzz, require=True)) > len(fuzz) * 0.5  # mostly errors: no mark


TRICKY_TEXT = ["  Tom\u00a0has 3\n apples. ", "a\x1fb", "it's \"quoted\"", "back\\slash", "\u2028line\u2029",
               "\u3000wide\u3000", "x\x1c\x1dy", "\u200bzero-width", "tab\tand  spaces", "ünïcödé 😀", "", "''"]


def test_ids_in_sql_are_the_stores():
    for dataset in ("gsm8k", "it's", "a\x1fb", "\u00a0d "):
        assert _sql_values(ids.problem_id_sql(dataset, "x"), TRICKY_TEXT) == \
            [problem_id(dataset, q) for q in TRICKY_TEXT], dataset
    rows = [(problem_id("d", q), origin, teacher, k, q) for k, q in enumerate(TRICKY_TEXT)
            for origin, teacher in (("import", "import"), ("teacher", "o'brien\x1f"), ("human", ""))]
    con = duckdb.connect()
    con.register("t", pa.table({"i": list(range(len(rows))), "p": [r[0] for r in rows], "o": [r[1] for r in rows],
                                "t": [r[2] for r in rows], "k": [r[3] for r in rows], "g": [r[4] for r in rows]}))
    sql = f"SELECT {ids.program_id_sql('p', 'o', 't', 'k', 'g')} FROM t ORDER BY i"
    got = [r[0] for r in con.execute(sql).fetchall()]
    assert got == [program_id(p, g, teacher=t, sample_idx=k, origin=o) for p, o, t, k, g in rows]


COMPLETIONS = [
    "def solution():\n    return 3 + 4\n", "\n\n  \ndef solution():\n    x = 1\n\n    return x   \n\n",
    "import math\ndef solution():\n    return math.pi\n", "from x import y\n@dec\ndef f():\n    pass",
    "def solution():\n    return 1\nThis returns 1.", "def solution():\n    return 1\nans = solution()",
    "Here:\n```python\ndef solution():\n    return 7\n```\nDone.", "def solution():\r\n    return 1\r\n",
    "def solution():\n    return 1\n# done\n", "def solution():\n\tif True:\n\t\treturn 2\n",
    "def solution():\n    s = \'\'\'\nnot code\n\'\'\'\n    return s", "class A:\n    pass\nclass B(A):\n    x = 1",
    "def solution(:\n    return", "def solution():\n    return 1\nde", "def solution():\n    return 1\nimp",
    "  def solution():\n    return 1", "x = 1\nans = x", "def solution():\n    return 1\n\u00a0x = 2",
    "def solution():\n    return 1\x0c\n", "def solution():\n    return \'\u2028\'\n", "def f():\n    return 1\ndefault = 2",
    "import numpy as np\ndef solver():\n    return np.sum([1, 2])\nans = solver()\n", "@", "def solution(): return 1",
    # fences: the first Python block that defines solution(), else (parsing needed) Python decides
    "```\ndef solution():\n    return 1\n```", "```py\nx = 1\n```\n```python\n\n\ndef solution():\n    return 2\n\n```",
    "```js\ndef solution():\n  return 0\n```\n```Python3 extra\n  def solution ():\n    return 3\n```",
    "Sure.\n```python\nans = 4\n```", "```python\ndef solution():\n    return 5", "text ```python\ndef solution():\n```",
    "```python\ns = \"\"\"\n```\n\"\"\"\ndef solution():\n    return s\n```", "x = 1 \\\n```python\ndef solution():\n```",
    "```python\ndef solution():\n    return 6\n```\n```python\ndef solution():\n    return 7\n```",
    "```\n\u3000def solution():\n    return 8\n```", "```python\r\ndef solution():\r\n    return 9\r\n```",
]


def test_code_in_sql_is_extract_program(shared_data):
    completions = list(COMPLETIONS)
    for name in ("gsm8k", "svamp", "multiarith_zs"):
        for line in open(shared_data / "pot" / f"{name}.jsonl", encoding="utf-8"):
            gen = json.loads(line).get("generated")
            completions += gen if isinstance(gen, list) else [gen]
    got = _sql_values(bulk.code_sql("x"), completions)
    sure = [(c, g) for c, g in zip(completions, got) if g is not None]
    assert [g for _, g in sure] == [extract_program(c) for c, _ in sure]
    sql_read = {c for c, _ in sure}
    assert {COMPLETIONS[i] for i in (0, 1, 2, 6, 24, 25, 26, 28, 32, 33, 34)} <= sql_read  # plain; fenced, solution()
    assert not {COMPLETIONS[i] for i in (4, 7, 10, 27, 30, 31)} & sql_read  # prose, \r\n, no solution(), strings


Q = "Ann has 3 pens and buys 4. How many?"
MESSY = [
    {"question": Q, "answer": "3 + 4 = 7\n#### 7", "program": "def solution():\n    return 3 + 4\n"},
    '{"question": "dup key?", "question": "' + Q + '", "answer": 7, "program": "ans = 7"}',  # Python: the last
    {"question": Q, "answer": 7, "program": ["def solution():\n    return 7", "```python\nans = 7\n```"],
     "teacher": "t1"},
    '{"qu\\u0065stion": "escaped key", "answer": 1, "program": "ans = 1"}',
    '{"question": "trailing comma", "answer": 1, "program": "ans = 1",}',
    '{"question": "nan", "answer": NaN, "program": "ans = 1"}',
    '{"question": "lower nan", "answer": nan, "program": "ans = 1"}',
    "", "   ", "not json", "[1, 2]", '"a string"',
    {"question": "  Bo\u00a0has 10 cards\n and loses  2. ", "answer": "$8", "program": "ans = 10 - 2",
     "model": "m1"},
    {"question": "teacher number", "answer": 2.5, "program": "ans = 2.5", "teacher": 5},
    {"question": "teacher empty", "answer": -0.0, "program": "ans = 0", "teacher": "", "model": "m2"},
    {"question": "no gold", "program": "Here it is:\n```\nans = 3\n```"},
    {"question": "bool gold", "answer": True, "program": "def solution():\n    return True\nprint(solution())"},
    {"question": "big int", "answer": 123456789012345678901234, "program": "ans = 1"},
    {"question": "inf", "answer": 1e999, "program": "ans = 1"},
    {"question": "unicode gold", "answer": "5 °C", "program": "ans = 5"},
    {"question": "arabic digit", "answer": "#### ٣", "program": "ans = 3"},
    {"question": "conflict", "answer": 1, "program": "ans = 1"},
    {"question": "conflict", "answer": 2, "program": "ans = 2"},
    {"question": Q, "answer": "7", "program": "import math\nans = math.floor(7.5)\nprint(ans)\n"},
    {"question": "", "answer": 1, "program": "ans = 1"},
    {"question": "empty program", "answer": 1, "program": " \n"},
    {"question": "bad list", "answer": 1, "program": ["ans = 1", 2]},
    {"question": "gold list", "answer": [1], "program": "ans = 1"},
    {"question": "crlf", "answer": "#### 3", "program": "def solution():\r\n    return 3\r\n"},
    {"question": "mixed 3 1/2", "answer": "3 1/2 cups", "program": "ans = 3.5"},
]


def _write(path, records):
    path.write_bytes(b"".join((r if isinstance(r, str) else json.dumps(r)).encode() + b"\n" for r in records)
                     + b'{"question": "bad utf8 \xff", "answer": 1, "program": "ans = 1"}\n'
                     + b'{"question": "last line, no newline", "answer": "#### 4", "program": "ans = 4"}')
    return path


def _dump(db) -> tuple:
    con = duckdb.connect(str(db), read_only=True)
    try:
        problems = con.execute("SELECT problem_id, dataset, split, question, answer, answer_text, rationale, source "
                               "FROM problems ORDER BY problem_id").fetchall()
        programs = con.execute("SELECT program_id, problem_id, origin, teacher, sample_idx, program, completion "
                               "FROM programs ORDER BY program_id").fetchall()
    finally:
        con.close()
    return problems, programs


def _both(monkeypatch, tmp_path, fn, *args, fresh=True, **kwargs):
    """(result, exception message, store rows) with the SQL path and with the Python path, each
    in a store of its own (a fresh one, or the one the last call used)."""
    out = []
    for use_sql in (True, False):
        monkeypatch.setattr(bulk, "USE_SQL", use_sql)
        n = len(list(tmp_path.glob(f"{use_sql}-*.duckdb")))
        db = tmp_path / f"{use_sql}-{n if fresh else max(n - 1, 0)}.duckdb"
        with Store(db) as st:
            try:
                r, err = fn(st, *args, **kwargs), None
            except IngestError as exc:
                r, err = None, str(exc)
        out.append((r, err, _dump(db)))
    monkeypatch.setattr(bulk, "USE_SQL", True)
    return out


def test_bulk_import_is_the_python_import_row_for_row(monkeypatch, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    f = _write(tmp_path / "messy.jsonl", MESSY)
    (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(
        monkeypatch, tmp_path, import_programs, f, "m", skip_invalid=True)
    assert err_sql is None and r_sql == r_py and rows_sql == rows_py
    assert (r_sql["skipped"], r_sql["records"], r_sql["read"]) == (14, 16, 17) and len(rows_sql[1]) == 17
    samples = sorted(s for _, pid, _, _, s, _, _ in rows_sql[1] if pid == problem_id("m", Q))
    assert samples == [0, 1, 2, 3, 4]  # counted across fast, slow and list records of one question
    # strict: the same first error; with a limit, the same records
    for kwargs in ({}, {"limit": 3}):
        (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(monkeypatch, tmp_path, import_programs, f, "m",
                                                                  **kwargs)
        assert (r_sql, err_sql, rows_sql) == (r_py, err_py, rows_py), kwargs
    assert err_sql is None and r_sql["records"] == 3
    # the bulk path did read most lines in SQL
    with bulk.SourceRead(f, bulk.Spec("m", programs=True), skipped=[]) as reading:
        assert reading.fast >= 8 and len(reading.slow) + reading.fast == 24
    assert not list(scratch.iterdir())  # every read's scratch database is gone, failed ones too


def test_bulk_ingest_is_the_python_ingest(monkeypatch, tmp_path, shared_data):
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Q1?", "answer": "2 + 2 = 4\n#### 4"},
        {"input": "Q2?", "target": 5.5},
        {"problem": "Q3?", "gold": "yes"},
        {"question": "Q4?", "answer": "no mark here"},
        {"input": "Q5?", "target": None},
    ]) + "\n")
    for fmt in ("auto", "jsonl", "gsm8k", "pal"):
        (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(monkeypatch, tmp_path, ingest, f, fmt, fmt=fmt,
                                                                  fresh=False)
        assert (r_sql, err_sql, rows_sql) == (r_py, err_py, rows_py), fmt
    (r_sql, _, rows_sql), (r_py, _, rows_py) = _both(monkeypatch, tmp_path, ingest,
                                                     shared_data / "gsm8k" / "test.jsonl", "gsm8k", fresh=False)
    assert r_sql == r_py and rows_sql == rows_py and r_sql["read"] == 1319
