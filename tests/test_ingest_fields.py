"""Fields of `pad ingest` / `pad import-programs`: dotted paths into nested objects, empty samples
in a list, `--no-gold` and empty field names; the bulk (SQL) path and the Python path agree."""

import json

import duckdb
import pytest

from pad_data.stages import bulk
from pad_data.stages.ingest import IngestError, import_programs, ingest
from pad_data.store import Store

from conftest import pad_cli
from test_bulk_import import _both


def _pot_gsm8k(shared_data) -> list[dict]:
    """PoT's GSM8K records that hold programs (line 1 is its prompt, two have none)."""
    recs = [json.loads(line) for line in open(shared_data / "pot" / "gsm8k.jsonl", encoding="utf-8")]
    return [r for r in recs if isinstance(r.get("generated"), list)]


def _write(path, records) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _rows(db, query: str) -> list:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


NESTED = {"question_field": ["meta.q"], "program_field": "175b_verification.solution",
          "answer_field": "175b_verification.answer"}


def test_nested_fields_by_dotted_path_in_sql_and_python(monkeypatch, tmp_path, shared_data):
    recs = _pot_gsm8k(shared_data)[:300]
    flat = _write(tmp_path / "flat.jsonl", recs)
    nested = [{"meta": {"q": r["question"], "id": i}, "175b_verification": {"solution": r["generated"],
                                                                            "answer": r["answer"]}}
              for i, r in enumerate(recs)]
    # a key named with the dots wins over the path; a list on the way is no path; duplicate keys: the last
    nested[1]["175b_verification.solution"] = "ans = 1"
    nested[2]["175b_verification"] = [nested[2]["175b_verification"]]
    dup = json.dumps(nested[3]).replace('"answer":', '"answer": 0, "answer":')
    f = _write(tmp_path / "nested.jsonl", nested[:3] + [dup] + nested[4:])

    (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(
        monkeypatch, tmp_path, import_programs, f, "pot", skip_invalid=True, **NESTED)
    assert err_sql is None and r_sql == r_py and rows_sql == rows_py
    assert r_sql["skipped_records"] == [f"{f}:3: missing field '175b_verification.solution'"]
    with bulk.SourceRead(f, bulk.Spec("pot", programs=True, **NESTED), skipped=[]) as reading:
        assert reading.fast >= 290  # read in SQL, but for the lines above
    programs = {r[0]: r for r in rows_sql[1]}

    # the same programs as the flat file gives, but for the record whose key with dots wins
    with Store(tmp_path / "flat.duckdb") as st:
        import_programs(st, flat, "pot", program_field="generated")
        flat_rows = st.con.execute("SELECT program_id, problem_id, origin, teacher, sample_idx, program, completion "
                                   "FROM programs").fetchall()
        flat_problems = st.con.execute("SELECT problem_id, answer, answer_text FROM problems").fetchall()
    missing = {r[0] for r in flat_rows} - set(programs)
    assert len(missing) == 2 and len(programs) == len(flat_rows) - 1  # record 3 skipped, record 2's program replaced
    assert {r[0]: r for r in flat_rows if r[0] not in missing}.items() <= programs.items()
    assert {r[0]: r[4:7] for r in rows_sql[0]} == {pid: (a, t, None) for pid, a, t in flat_problems
                                                   if pid in {p[1] for p in programs.values()}}

    # ingest: a nested question and answer, both paths alike
    for kwargs in ({"question_field": "meta.q", "answer_field": "175b_verification.answer"},
                   {"question_field": "meta.q", "answer_field": "175b_verification.answr"}):
        (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(monkeypatch, tmp_path, ingest, f, "n", **kwargs)
        assert (r_sql, err_sql, rows_sql) == (r_py, err_py, rows_py)
    assert err_sql == (f"{f}: no record has field '175b_verification.answr' (--answer-field) "
                       "(did you mean '175b_verification.answer'?)")


def test_an_empty_sample_skips_that_sample_only(db, tmp_path, shared_data, monkeypatch):
    recs = _pot_gsm8k(shared_data)[:40]
    for i, r in enumerate(recs):
        if i % 10 == 0:
            r["generated"] = [r["generated"][0], "  \n", r["generated"][0] + "\n# again", ""]
    f = _write(tmp_path / "pot.jsonl", recs)
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "pot", "--program-field", "generated", check=True)
    assert res.stderr.splitlines() == [f"skipped {f}:{i}: field 'generated' element {k} is empty (that sample only)"
                                       for i in (1, 11, 21, 31) for k in (1, 3)]
    assert "read 44 programs from 40 records, added 44 (new problems: 40), skipped 8 empty samples" in res.stdout
    # the samples kept count up without gaps
    assert _rows(db, "SELECT sample_idx, count(*) FROM programs GROUP BY 1 ORDER BY 1") == [(0, 40), (1, 4)]

    # nothing but empty samples: that record is bad (an error; with --skip-invalid, skipped)
    _write(f, recs[:3] + [{**recs[3], "generated": ["", " "]}])
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "p2", "--program-field", "generated")
    assert res.returncode == 1 and res.stderr == f"error: {f}:4: field 'generated' has only empty samples\n"
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "p2", "--program-field", "generated",
                  "--skip-invalid", check=True)
    assert res.stderr.splitlines() == [f"skipped {f}:4: field 'generated' has only empty samples",
                                       f"skipped {f}:1: field 'generated' element 1 is empty (that sample only)",
                                       f"skipped {f}:1: field 'generated' element 3 is empty (that sample only)"]
    # both paths alike, also for a record dropped as a conflict (its empty samples are not reported)
    conflict = {**recs[0], "answer": recs[0]["answer"] + 1}
    _write(f, recs[:12] + [conflict])
    (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(
        monkeypatch, tmp_path, import_programs, f, "pot", program_field="generated", skip_invalid=True)
    assert err_sql is None and r_sql == r_py and rows_sql == rows_py
    assert r_sql["skipped_samples"] == [f"{f}:11: field 'generated' element {k} is empty (that sample only)"
                                        for k in (1, 3)] and r_sql["skipped"] == 2


def test_no_gold_is_said_and_an_empty_field_name_is_an_error(db, tmp_path, shared_data, monkeypatch):
    gsm = shared_data / "gsm8k" / "test.jsonl"
    res = pad_cli("--db", db, "ingest", gsm, "--dataset", "g", "--answer-field", "")
    assert res.returncode == 1 and res.stderr == \
        "error: --answer-field is empty: to read the problems without gold answers, pass --no-gold\n"
    res = pad_cli("--db", db, "ingest", gsm, "--dataset", "g", "--no-gold", "--answer-field", "answer")
    assert res.returncode == 1 and res.stderr == "error: --no-gold reads no gold answer: leave out --answer-field\n"
    pot = shared_data / "pot" / "multiarith_zs.jsonl"
    for option, message in (("--answer-field", "--answer-field is empty"), ("--program-field", "--program-field is "
                            "empty"), ("--question-field", "--question-field is empty")):
        res = pad_cli("--db", db, "import-programs", pot, "--dataset", "m", option, "")
        assert res.returncode == 1 and res.stderr.startswith(f"error: {message}"), option
    assert _rows(db, "SELECT count(*) FROM problems") == [(0,)]

    res = pad_cli("--db", db, "ingest", gsm, "--dataset", "g", "--no-gold", "--limit", "50", check=True)
    assert "read 50 problems, added 50" in res.stdout and res.stderr == ""  # no warning: asked for
    res = pad_cli("--db", db, "import-programs", pot, "--dataset", "m", "--program-field", "generated", "--no-gold",
                  check=True)
    assert "read 599 programs" in res.stdout and res.stderr == ""
    assert _rows(db, "SELECT dataset, count(*), count(*) FILTER (WHERE answer IS NOT NULL OR answer_text IS NOT NULL "
                     "OR rationale IS NOT NULL) FROM problems GROUP BY 1 ORDER BY 1") == [("g", 50, 0), ("m", 579, 0)]
    # the same questions (ids) as with their gold
    with Store(tmp_path / "gold.duckdb") as st:
        ingest(st, gsm, "g", limit=50)
        ids = {r[0] for r in st.con.execute("SELECT problem_id FROM problems").fetchall()}
    assert {r[0] for r in _rows(db, "SELECT problem_id FROM problems WHERE dataset = 'g'")} == ids

    # both paths alike, whatever the format
    mixed = _write(tmp_path / "mixed.jsonl", [{"question": "Q1?", "answer": "#### 4"}, {"input": "Q2?", "target": 5},
                                              {"question": "Q3?", "answer": "no mark"}, {"input": "Q4?"}])
    for fmt in ("auto", "jsonl", "gsm8k", "pal"):
        (r_sql, err_sql, rows_sql), (r_py, err_py, rows_py) = _both(monkeypatch, tmp_path, ingest, mixed, fmt,
                                                                    fmt=fmt, no_gold=True)
        assert (r_sql, err_sql, rows_sql) == (r_py, err_py, rows_py), fmt
        assert (err_sql is None) == (fmt in ("auto", "jsonl")), (fmt, err_sql)  # gsm8k, pal: a question field missing
    with pytest.raises(IngestError, match="--answer-field is empty"):
        with Store(tmp_path / "x.duckdb") as st:
            import_programs(st, pot, "m", answer_field=" ")
