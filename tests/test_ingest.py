import json

import duckdb
import pandas as pd
import pytest

from pad_data.ingest import IngestError, import_programs, ingest
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
        assert r == {"read": 7473, "added": 7473, "split": "train"}
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


def test_import_programs_missing_program_field(db, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"question": "q", "answer": 1}\n')
    with Store(db) as st, pytest.raises(IngestError, match=r"p.jsonl:1: missing field 'program'"):
        import_programs(st, f, "x")
