import json

import duckdb
import pandas as pd
import pytest

from pad_data.stages.ingest import IngestError, import_programs, ingest
from pad_data.store import Store

from conftest import pad_cli


def count(db, table="problems"):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


def test_gsm8k_train_gives_7473_numeric_problems_and_rerun_adds_nothing(db, shared_data):
    with Store(db) as st:
        r = ingest(st, shared_data / "gsm8k" / "train.jsonl", "gsm8k")
        assert r == {"read": 7473, "repeated": 0, "added": 7473, "stored": 0, "split": "train", "updated": 0,
                     "relabeled": 0, "differ": 0, "warning": None}
        assert st.scalar("SELECT count(*) FROM problems WHERE answer IS NOT NULL") == 7473
        assert st.scalar("SELECT answer FROM problems WHERE question LIKE 'Natalia sold clips%'") == 72.0
        assert st.scalar("SELECT count(*) FROM problems WHERE rationale LIKE '%<<%'") > 7000
        assert ingest(st, shared_data / "gsm8k" / "train.jsonl", "gsm8k")["added"] == 0
        assert st.scalar("SELECT count(*) FROM problems") == 7473


@pytest.mark.parametrize("name,n", [("gsm", 1319), ("svamp", 1000), ("asdiv", 2096), ("mawpsmultiarith", 600),
                                    ("mawpsaddsub", 395), ("mawpssingleeq", 508), ("mawpssingleop", 562)])
def test_pal_files(db, shared_data, name, n):
    path = shared_data / "pal" / f"{name}.jsonl"
    lines = sum(1 for line in open(path) if line.strip())
    with Store(db) as st:
        r = ingest(st, path, name)
        assert r["read"] == lines and r["split"] == "test"
        distinct = st.scalar("SELECT count(*) FROM problems")
        assert distinct == r["added"] <= lines
        assert st.scalar("SELECT count(*) FROM problems WHERE answer IS NULL") == 0


def test_parquet_csv_json_sources(db, tmp_path):
    rows = [{"question": f"What is {i} plus {i}?", "answer": 2 * i} for i in range(5)]
    pd.DataFrame(rows).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame(rows).to_csv(tmp_path / "b.csv", index=False)
    (tmp_path / "c.json").write_text(json.dumps(rows))
    with Store(db) as st:
        for i, f in enumerate(["a.parquet", "b.csv", "c.json"]):
            r = ingest(st, tmp_path / f, f"d{i}")
            assert r["added"] == 5
        assert st.scalar("SELECT sum(answer) FROM problems WHERE dataset = 'd1'") == 20.0


def test_local_hugging_face_dataset_directory(db, tmp_path):
    import datasets
    ds = datasets.DatasetDict({"test": datasets.Dataset.from_list(
        [{"question": "Q1? Tom has 2 apples and gets 3 more.", "answer": "2+3=5\n#### 5"}])})
    ds.save_to_disk(tmp_path / "hf")
    with Store(db) as st:
        r = ingest(st, tmp_path / "hf", "local", fmt="gsm8k")
        assert r["added"] == 1 and r["split"] == "test"
        assert st.scalar("SELECT answer FROM problems") == 5.0


def test_hub_dataset_offline_fails_clearly(db):
    res = pad_cli("--db", db, "ingest", "openai/gsm8k", "--dataset", "gsm8k", "--config", "main",
                  env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert res.returncode == 1
    err = res.stderr.strip()
    assert err.startswith("error: openai/gsm8k: cannot load Hugging Face dataset") and "\n" not in err
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("content,message", [
    (b'{"question": "a", "answer": "#### 1"}\n{"question": "b", "answer": "#### 2"\n', "bad.jsonl:2: invalid JSON"),
    (b'{"question": "a", "answer": "#### 1"}\n{"answer": "#### 2"}\n', "bad.jsonl:2: missing field 'question'"),
    (b'{"question": 5, "answer": "#### 1"}\n', "bad.jsonl:1: field 'question' must be a string, got int"),
    (b'{"question": "a", "answer": "#### x"}\n', "bad.jsonl:1: field 'answer': answer after '####' is not a number"),
    (b'{"question": "a", "answer": "#### 1"}\n\xff\xfe\n', "bad.jsonl:2: not valid UTF-8"),
    (b"", "bad.jsonl: empty, no records"),
    (b"[1, 2]\n", "bad.jsonl:1: expected a JSON object, got list"),
])
def test_malformed_input_is_rejected_whole_with_a_clear_error(db, tmp_path, content, message):
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "kept?", "answer": "#### 3"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    pad_cli("--db", db, "ingest", good, "--dataset", "d", "--format", "gsm8k", check=True)
    res = pad_cli("--db", db, "ingest", bad, "--dataset", "d", "--format", "gsm8k")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert count(db) == 1  # the good file is intact, nothing from the bad one landed


def test_import_programs_pal_style_with_fences(db, tmp_path):
    recs = [
        {"input": "Ann has 3 pens and buys 4. How many?", "target": 7,
         "code": "Here is my program:\n```python\ndef solution():\n    return 3 + 4\n```\nIt returns 7."},
        {"input": "Ann has 3 pens and buys 4. How many?", "target": 7,
         "code": "def solution():\n    return 3 * 4\n"},
        {"input": "Bo has 10 cards and loses 2. How many?", "target": 8,
         "code": "def solution():\n    return 10 - 2"},
    ]
    f = tmp_path / "progs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs))
    with Store(db) as st:
        r = import_programs(st, f, "mini", teacher="codex")
        assert (r["read"], r["added"], r["problems_added"]) == (3, 3, 2)
        assert import_programs(st, f, "mini", teacher="codex")["added"] == 0
        progs = st.df("SELECT program, completion, sample_idx FROM programs ORDER BY program")
        assert "def solution():\n    return 3 + 4\n" in list(progs.program)
        assert any("Here is my program" in c for c in progs.completion)
        assert sorted(progs.sample_idx) == [0, 0, 1]


def test_import_programs_missing_program_field_names_the_fields(db, tmp_path, shared_data):
    f = tmp_path / "p.jsonl"
    f.write_text('{"question": "q", "answer": 1}\n')
    with Store(db) as st, pytest.raises(IngestError, match=r"p.jsonl: no record has a program field \(program, code, "
                                        r"generation, completion\): name it with --program-field; fields: answer, "
                                        r"question$"):
        import_programs(st, f, "x")
    pot = shared_data / "pot" / "multiarith_zs.jsonl"
    res = pad_cli("--db", db, "import-programs", pot, "--dataset", "ma", "--program-field", "generate")
    assert res.returncode == 1 and res.stderr == \
        f"error: {pot}: no record has field 'generate' (--program-field) (did you mean 'generated'?)\n"
    res = pad_cli("--db", db, "import-programs", pot, "--dataset", "ma", "--program-field", "175b_verification.code")
    assert res.returncode == 1 and res.stderr == f"error: {pot}: no record has field '175b_verification.code' " \
        "(--program-field); fields: answer, executed, generated, question\n"
    assert count(db) == 0


def _write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _programs(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT p.question, g.sample_idx, g.program, g.completion FROM programs g "
                           "JOIN problems p USING (problem_id) ORDER BY p.question, g.sample_idx").fetchall()
    finally:
        con.close()


WHOLE = 'RATES = {\n    "pen": 3,\n    "book": 4,\n}\n\n\nif __name__ == "__main__":\n    ans = RATES["pen"] + RATES["book"]\n'


def test_import_programs_a_list_of_samples_per_record(db, tmp_path):
    f = _write_jsonl(tmp_path / "pot.jsonl", [
        {"question": "Ann has 3 pens and 4 books. How many things?", "answer": 7.0,
         "generated": ["def solution():\n    return 3 + 4", "ans = 3 * 4"]},
        {"question": "Bo has 10 cards and loses 2. How many?", "answer": "8", "generated": "ans = 10 - 2"},
        {"question": "Ann has 3 pens and 4 books. How many things?", "answer": 7.0,
         "generated": ["\n" + WHOLE + "\n\n"]},  # the same question again: its sample keeps counting up
    ])
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "pot", "--program-field", "generated", check=True)
    assert "read 4 programs from 3 records, added 4 (new problems: 2)" in res.stdout
    rows = _programs(db)
    ann = [r for r in rows if r[0].startswith("Ann")]
    assert [r[1] for r in ann] == [0, 1, 2] and [r[1] for r in rows if r[0].startswith("Bo")] == [0]
    assert [r[2] for r in ann] == ["def solution():\n    return 3 + 4\n", "ans = 3 * 4\n", WHOLE]
    assert ann[2][3] == "\n" + WHOLE + "\n\n"  # the raw completion is kept as it was
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "pot", "--program-field", "generated", check=True)
    assert "added 0 (new problems: 0)" in res.stdout and len(_programs(db)) == 4


@pytest.mark.parametrize("value,message", [
    ([], "p.jsonl:2: field 'generated' is an empty list"),
    (["ans = 1", 5], "p.jsonl:2: field 'generated' element 1: must be a string, got int"),
    (["ans = 1", None], "p.jsonl:2: field 'generated' element 1: must be a string, got NoneType"),
    (["", "  "], "p.jsonl:2: field 'generated' has only empty samples"),
    ({"code": "ans = 1"}, "p.jsonl:2: field 'generated' must be a string or a list of strings, got dict"),
])
def test_import_programs_rejects_a_bad_sample_list_whole(db, tmp_path, value, message):
    f = _write_jsonl(tmp_path / "p.jsonl", [{"question": "fine?", "answer": 1, "generated": ["ans = 1"]},
                                            {"question": "bad?", "answer": 1, "generated": value}])
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "d", "--program-field", "generated")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and message in lines[0], res.stderr
    assert count(db, "programs") == 0 and count(db) == 0


def test_import_programs_question_from_several_fields(db, tmp_path):
    f = _write_jsonl(tmp_path / "svamp.jsonl", [
        {"Body": "Paco had 26 cookies. ", "Question": " How many are left if he ate 9?", "Answer": 17,
         "Equation": "( 26.0 - 9.0 )", "code": "ans = 26 - 9"},
    ])
    joined = "Paco had 26 cookies. How many are left if he ate 9?"
    pad_cli("--db", db, "import-programs", f, "--dataset", "a", "--question-field", "Body,Question",
            "--answer-field", "Answer", check=True)
    pad_cli("--db", db, "import-programs", f, "--dataset", "b", "--question-field", "Body",
            "--question-field", "Question", "--answer-field", "Answer", check=True)
    pad_cli("--db", db, "import-programs", f, "--dataset", "c", "--question-field", "Question, Body",
            "--answer-field", "Answer", check=True)
    with Store(db) as st:
        got = dict(st.con.execute("SELECT dataset, question FROM problems").fetchall())
        assert got == {"a": joined, "b": joined, "c": "How many are left if he ate 9? Paco had 26 cookies."}
        assert st.scalar("SELECT answer FROM problems WHERE dataset = 'a'") == 17.0
        r = import_programs(st, f, "api", question_field=["Body", "Question"], answer_field="Answer")
        assert r["read"] == 1 and st.scalar("SELECT question FROM problems WHERE dataset = 'api'") == joined
        with pytest.raises(IngestError, match=r"svamp.jsonl: no record has field 'Passage' \(--question-field\)"):
            import_programs(st, f, "api2", question_field=["Passage", "Question"])
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "e", "--question-field", "Body,Equation2")
    assert res.returncode == 1 and \
        "svamp.jsonl: no record has field 'Equation2' (--question-field) (did you mean 'Equation'?)" in res.stderr


MESSY = [
    '{"prompt": "Question: a few-shot prompt, not a record"}',                    # 1: no program field
    {"question": "What is 2 + 2?", "answer": 4, "code": "ans = 2 + 2"},         # 2: good
    '{"question": "cut off", "answer": 1, "code": "ans',                          # 3: invalid JSON
    "",                                                                           # 4: blank, not a record
    '[1, 2]',                                                                     # 5: not an object
    {"question": "What is 3 + 3?", "answer": {"value": 6}, "code": "ans = 6"},  # 6: bad answer type
    {"question": 7, "answer": 7, "code": "ans = 7"},                            # 7: question not a string
    {"question": "What is 5 + 5?", "answer": "10", "code": ["ans = 10", "ans = 5 * 2"]},  # 8: good, 2 samples
    {"question": "What is 6 + 6?", "answer": 12, "code": ["ans = 12", 12]},     # 9: bad sample
]


JSON_ERROR = "Invalid control character at (column 50)"  # the newline ends the string


def test_import_programs_strict_by_default_and_skip_invalid_reports_every_skipped_record(db, tmp_path):
    f = _write_jsonl(tmp_path / "messy.jsonl", MESSY)
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "m", "--program-field", "code")  # lines that are not records come first
    assert res.returncode == 1 and res.stderr.strip() == f"error: {f}:3: invalid JSON: {JSON_ERROR}"
    assert count(db, "programs") == 0
    _write_jsonl(f, [r for i, r in enumerate(MESSY, 1) if i not in (3, 5)])
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "m", "--program-field", "code")  # then the first bad record
    assert res.returncode == 1 and res.stderr.strip() == f"error: {f}:1: missing field 'code'"
    assert count(db, "programs") == 0
    _write_jsonl(f, MESSY)

    res = pad_cli("--db", db, "import-programs", f, "--dataset", "m", "--program-field", "code", "--skip-invalid")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"skipped {f}:1: missing field 'code'",
        f"skipped {f}:3: invalid JSON: {JSON_ERROR}",
        f"skipped {f}:5: expected a JSON object, got list",
        f"skipped {f}:6: field 'answer' must be a number or string, got dict",
        f"skipped {f}:7: field 'question' must be a string, got int",
        f"skipped {f}:9: field 'code' element 1: must be a string, got int",
    ]
    assert "m: read 3 programs from 2 records, added 3 (new problems: 2), skipped 6 invalid records" in res.stdout
    assert [r[:3] for r in _programs(db)] == [("What is 2 + 2?", 0, "ans = 2 + 2\n"),
                                              ("What is 5 + 5?", 0, "ans = 10\n"),
                                              ("What is 5 + 5?", 1, "ans = 5 * 2\n")]
    with Store(db) as st:
        r = import_programs(st, f, "m", program_field="code", skip_invalid=True)
        assert (r["read"], r["records"], r["added"], r["skipped"]) == (3, 2, 0, 6)
        assert r["skipped_records"][1].startswith(f"{f}:3: invalid JSON")


def test_import_programs_skip_invalid_with_nothing_valid_is_an_error(db, tmp_path):
    f = _write_jsonl(tmp_path / "prompts.jsonl", ['{"prompt": "a"}', "not json", '{"question": 5, "code": "ans = 5"}'])
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "x", "--skip-invalid")
    assert res.returncode == 1 and "no valid records (3 skipped" in res.stderr and count(db, "programs") == 0


def test_import_pot_multiarith_keeps_every_program_whole(db, shared_data):
    path = shared_data / "pot" / "multiarith_zs.jsonl"
    recs = [json.loads(line) for line in open(path) if line.strip()]
    res = pad_cli("--db", db, "import-programs", path, "--dataset", "ma", "--program-field", "generated",
                  "--answer-field", "answer", check=True)
    assert f"read {len(recs)} programs from {len(recs)} records, added {len(recs)}" in res.stdout
    with Store(db) as st:
        rows = st.df("SELECT g.program, g.completion, p.answer FROM programs g JOIN problems p USING (problem_id)")
    assert len(rows) == len(recs) == 599 and rows.answer.notna().all()
    assert sorted(rows.completion) == sorted(r["generated"] for r in recs)
    for program, completion in zip(rows.program, rows.completion):
        assert program == completion.lstrip("\n").rstrip() + "\n"
        assert "import numpy as np\n" in program and "def solver():" in program
        assert program.endswith("\nans = solver()\n")


def test_import_programs_sample_lists_from_parquet(db, tmp_path):
    pd.DataFrame([{"question": "What is 1 + 1?", "answer": 2, "samples": ["ans = 1 + 1", "ans = 2"]}]) \
        .to_parquet(tmp_path / "p.parquet")
    with Store(db) as st:
        r = import_programs(st, tmp_path / "p.parquet", "pq", program_field="samples")
        assert (r["read"], r["records"], r["added"]) == (2, 1, 2)
        assert st.df("SELECT sample_idx, program FROM programs ORDER BY 1").values.tolist() == \
            [[0, "ans = 1 + 1\n"], [1, "ans = 2\n"]]


# ---------------------------------------------------------------------- gold answers
from pad_data.rules.answers import parse_answer  # noqa: E402


@pytest.mark.parametrize("raw,number,text", [
    (150, 150.0, "150"), (2.5, 2.5, "2.5"), ("1,234", 1234.0, "1,234"), ("$12.50", 12.5, "$12.50"),
    ("75%", 75.0, "75%"), ("3/4", 0.75, "3/4"), ("3 1/2", 3.5, "3 1/2"), ("12 cm", 12.0, "12 cm"),
    ("150 dollars", 150.0, "150 dollars"), ("-$5", -5.0, "-$5"), ("Tom ate 3.\n#### 1,500", 1500.0, "1500"),
    ("yes", None, "yes"), (True, None, "yes"), ("1 and 2", None, "1 and 2"), ("5-6", None, "5-6"),
    ("1/0", None, "1/0"), (None, None, None),
])
def test_one_answer_parser(raw, number, text):
    gold = parse_answer(raw)
    assert (gold.number, gold.text) == (number, text)


GSM_RECORDS = [
    {"question": "Ann sells 50 cups at $3 each. How many dollars?", "answer": "50 * 3 = <<50*3=150>>150\n#### 150",
     "program": "def solution():\n    return 50 * 3"},
    {"question": "A farm has 1,200 hens and buys 300. How many hens?", "answer": "1200 + 300 = 1500\n#### 1,500",
     "program": "def solution():\n    return 1200 + 300"},
]


def test_import_programs_reads_gsm8k_answers_like_ingest(db, tmp_path):
    f = _write_jsonl(tmp_path / "gsm.jsonl", GSM_RECORDS)
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "imp", check=True)
    pad_cli("--db", db, "ingest", f, "--dataset", "ing", check=True)
    with Store(db) as st:
        got = st.df("SELECT dataset, answer, answer_text, rationale FROM problems ORDER BY dataset, answer")
        assert got.answer.tolist() == [150.0, 1500.0, 150.0, 1500.0]
        assert got.answer_text.tolist() == ["150", "1500"] * 2
        assert got.rationale.tolist()[:2] == got.rationale.tolist()[2:] and "<<50*3=150>>" in got.rationale[0]
    assert "warning" not in res.stderr


def test_an_answer_field_named_explicitly_must_exist(db, tmp_path):
    f = tmp_path / "f.csv"
    f.write_text("question,answer\nWhat is 2 + 2?,4\n")
    res = pad_cli("--db", db, "ingest", f, "--dataset", "c", "--answer-field", "answr")
    assert res.returncode == 1 and res.stderr.strip() == \
        f"error: {f}: no record has field 'answr' (--answer-field) (did you mean 'answer'?)"
    p = _write_jsonl(tmp_path / "p.jsonl", [{"question": "q?", "answer": 1, "code": "ans = 1"}])
    res = pad_cli("--db", db, "import-programs", p, "--dataset", "c", "--answer-field", "target")
    assert res.returncode == 1 and f"{p}: no record has field 'target' (--answer-field)" in res.stderr
    # in some records but not in this one
    _write_jsonl(p, [{"question": "q?", "target": 1, "code": "ans = 1"}, {"question": "r?", "code": "ans = 2"}])
    res = pad_cli("--db", db, "import-programs", p, "--dataset", "c", "--answer-field", "target")
    assert res.returncode == 1 and res.stderr.strip() == f"error: {p}:2: missing field 'target'"
    assert count(db) == 0


def test_no_gold_warns_and_update_corrects_gold_and_labels_without_executing(db, tmp_path):
    from pad_data.stages.execute import execute

    f = tmp_path / "f.csv"
    f.write_text("question,ans\nWhat is 2 + 2?,4\nWhat is 3 + 3?,6\n")
    res = pad_cli("--db", db, "ingest", f, "--dataset", "c", check=True)
    assert res.stderr.strip().startswith(f"warning: {f}: none of the 2 problems read has a gold answer")
    progs = _write_jsonl(tmp_path / "p.jsonl", [{"question": "What is 2 + 2?", "code": "ans = 2 + 2"},
                                                {"question": "What is 3 + 3?", "code": "ans = 3 + 4"}])
    pad_cli("--db", db, "import-programs", progs, "--dataset", "c", check=True)
    with Store(db) as st:
        execute(st, isolation_level="process")
        assert st.scalar("SELECT count(*) FROM labeled_programs WHERE label = 'unverifiable'") == 2
    res = pad_cli("--db", db, "ingest", f, "--dataset", "c", "--answer-field", "ans", check=True)
    assert "added 0 (2 already stored); 2 stored with a different gold answer were left as they are " \
           "(pass --update to replace them)" in res.stdout
    assert count(db, "problems WHERE answer IS NULL") == 2
    res = pad_cli("--db", db, "ingest", f, "--dataset", "c", "--answer-field", "ans", "--update", check=True)
    assert "updated the gold answer of 2, relabeled 2 executions" in res.stdout
    with Store(db) as st:
        assert st.scalar("SELECT count(*) FROM executions") == 2  # nothing ran again
        assert dict(st.con.execute("SELECT question, label FROM labeled_programs").fetchall()) == \
            {"What is 2 + 2?": "correct", "What is 3 + 3?": "wrong_answer"}
    # import-programs --update: a corrected gold answer of 7 for the second question
    _write_jsonl(progs, [{"question": "What is 3 + 3?", "answer": "#### 7", "code": "ans = 3 + 4"}])
    res = pad_cli("--db", db, "import-programs", progs, "--dataset", "c", "--update", check=True)
    assert "updated the gold answer of 1, relabeled 1 execution\n" in res.stdout
    assert count(db, "labeled_programs WHERE label = 'correct'") == 2
    res = pad_cli("--db", db, "ingest", f, "--dataset", "c", "--answer-field", "ans", check=True)
    assert "1 stored with a different gold answer" in res.stdout  # 6 in the file, 7 stored: reported, kept
    assert count(db, "problems WHERE answer = 7") == 1


def test_conflicting_duplicates_in_one_file_are_reported(db, tmp_path):
    f = _write_jsonl(tmp_path / "d.jsonl", [
        {"question": "How many?", "answer": "#### 150", "program": "ans = 150"},
        {"question": "Other?", "answer": 2, "program": "ans = 2"},
        {"question": "How  many?", "answer": "#### 15", "program": "ans = 15"},
        {"question": "Other?", "answer": "2", "program": "ans = 1 + 1"},  # the same gold: no conflict
    ])
    for cmd in ("ingest", "import-programs"):
        res = pad_cli("--db", db, cmd, f, "--dataset", "d")
        assert res.returncode == 1 and res.stderr.strip() == \
            f"error: {f}:3: gold answer '15' conflicts with {f}:1 ('150') for the same question"
        assert count(db) == 0
    res = pad_cli("--db", db, "import-programs", f, "--dataset", "d", "--skip-invalid", check=True)
    assert res.stderr.strip().splitlines() == [
        f"skipped {f}:1: gold answer '150' conflicts with {f}:3 ('15') for the same question",
        f"skipped {f}:3: gold answer '15' conflicts with {f}:1 ('150') for the same question"]
    assert count(db) == 1 and count(db, "programs") == 2
