import hashlib
import json

import datasets
import pandas as pd
import pyarrow as pa
import pytest

from pad_data.stages.check import leak_key
from pad_data.stages.curate import CurateError, CurateParams, content_hash, curate, dedup_key
from pad_data.stages.execute import execute
from pad_data.stages.ingest import ingest, import_programs
from pad_data.store import Store, problem_id, program_id

from conftest import pad_cli


def _gsm8k_with_programs(db, shared_data, n=None):
    """GSM8K train with one executed program per problem (correct, except every 10th)."""
    with Store(db) as st:
        ingest(st, shared_data / "gsm8k" / "train.jsonl", "gsm8k", limit=n)
        probs = st.df("SELECT problem_id, answer FROM problems")
        rows = []
        for i, (pid, gold) in enumerate(zip(probs.problem_id, probs.answer)):
            prog = f"def solution():\n    half = {gold} / 2\n    result = half * 2\n    return result\n"
            if i % 10 == 0:
                prog = prog.replace("half * 2", "half * 3")
            rows.append({"program_id": program_id(pid, prog), "problem_id": pid, "origin": "import",
                         "teacher": "t", "sample_idx": 0, "program": prog})
        with st.transaction():
            st.insert_new("programs", pd.DataFrame(rows), "program_id")
        execute(st)


@pytest.mark.e2e
def test_check_passes_a_clean_gsm8k_store_and_fails_a_planted_leak(db, shared_data, tmp_path):
    _gsm8k_with_programs(db, shared_data)
    ref = shared_data / "gsm8k" / "test.jsonl"
    ok = pad_cli("--db", db, "check", "--reference", ref, "--docs", tmp_path / "docs")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout and "pass" in ok.stdout
    assert (tmp_path / "docs" / "index.html").exists()
    # plant a GSM8K test question, one number changed, in the train split
    test_q = json.loads(ref.read_text().splitlines()[5])["question"]
    planted = test_q.replace("3", "4", 1) if "3" in test_q else test_q + " "
    with Store(db) as st, st.transaction():
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question, answer) VALUES (?, 'gsm8k', 'train', ?, 1)",
                       [problem_id("gsm8k", planted + " planted"), planted])
    bad = pad_cli("--db", db, "check", "--reference", ref)
    assert bad.returncode == 1
    assert "reference_coverage" in bad.stdout and "FAIL" in bad.stdout
    with Store(db) as st:
        runs = st.df("SELECT success FROM check_runs ORDER BY created_at")
        assert list(runs.success) == [True, False]
        failed = st.df("SELECT column_name FROM check_results WHERE NOT success AND critical").column_name
        assert "reference_coverage" in set(failed)


def test_check_catches_a_curated_test_question_in_train_and_broken_rows(db, tmp_path):
    pad_cli("--db", db, "run", "--samples", "2", check=True)
    pad_cli("--db", db, "curate", "snap", "--test", "0.3", check=True)
    assert pad_cli("--db", db, "check").returncode == 0
    with Store(db) as st, st.transaction():
        q = st.scalar("SELECT question FROM curated_examples WHERE name = 'snap' AND split = 'test' LIMIT 1")
        st.con.execute("INSERT INTO curated_examples (name, split, problem_id, program_id, question) "
                       "VALUES ('snap', 'train', 'leak', 'leak', ?)", [q.upper() + "!"])
        st.con.execute("INSERT INTO programs (program_id, problem_id, origin, program) VALUES ('orphan', 'nope', 'alien', 'x')")
    res = pad_cli("--db", db, "check")
    assert res.returncode == 1
    failed = [line for line in res.stdout.splitlines() if "FAIL" in line]
    text = " ".join(failed)
    assert "leaked_from_test" in text and "has_problem" in text and "origin" in text


def test_user_expectations_file(db, tmp_path):
    pad_cli("--db", db, "run", "--samples", "1", check=True)
    f = tmp_path / "more.yaml"
    f.write_text("- table: executions\n  expectation: expect_column_max_to_be_between\n"
                 "  kwargs: {column: stdout_length, max_value: -1}\n  critical: true\n"
                 "- table: executions\n  expectation: expect_column_values_to_be_of_type\n"
                 "  kwargs: {column: is_correct, type_: int32}\n  critical: true\n")
    res = pad_cli("--db", db, "check", "--expectations", f)
    assert res.returncode == 1 and "column_max_to_be_between" in res.stdout
    typed = [line for line in res.stdout.splitlines() if "values_to_be_of_type" in line]
    assert len(typed) == 1 and "FAIL" not in typed[0], res.stdout  # the share columns keep their documented type
    f.write_text("- table: nowhere\n  expectation: expect_column_values_to_be_unique\n")
    res = pad_cli("--db", db, "check", "--expectations", f)
    assert res.returncode == 1 and "item 1: unknown table 'nowhere'" in res.stderr


def test_ast_dedup_collapses_renamed_and_reformatted_copies():
    a = "def solution():\n    apples = 3\n    pears = apples * 2\n    return pears\n"
    renamed = "def solution():\n    '''Count fruit.'''\n    x=3\n    y = (x*2)\n    return y"
    different = "def solution():\n    apples = 3\n    pears = apples * 3\n    return pears\n"
    assert dedup_key(a, "ast") == dedup_key(renamed, "ast") != dedup_key(different, "ast")
    assert dedup_key(a, "exact") != dedup_key(renamed, "exact")
    assert dedup_key(a, "exact") == dedup_key(a + "\n\n", "exact")


def _documented_split(problem_id: str, question: str, source_split: str, p: CurateParams) -> str:
    """The split rule as documented in pad_data/stages/curate/split.py, for a problem with no
    near-duplicate in the store (each question here is its own cluster)."""
    if source_split in ("test", "validation"):
        return source_split
    key = leak_key(question)
    cluster = hashlib.sha256(key.encode()).hexdigest()[:32] if key else problem_id
    u = int(hashlib.sha256(f"{p.seed}:{cluster}".encode()).hexdigest()[:12], 16) / 16**12
    return "test" if u < p.test_fraction else "validation" if u < p.test_fraction + p.validation_fraction else "train"


def test_curate_filters_dedups_prefers_shortest_and_splits_by_problem(db, tmp_path):
    recs = []
    for i in range(1, 41):
        q = f"What is {i} times 2?"
        recs.append({"question": q, "answer": 2 * i, "program": f"def solution():\n    n = {i}\n    d = n * 2\n    return d"})
        recs.append({"question": q, "answer": 2 * i, "program": f"def solution():\n    value = {i}\n    doubled = value*2\n    return doubled"})
        recs.append({"question": q, "answer": 2 * i, "program": f"def solution():\n    return {i} * 2"})
        recs.append({"question": q, "answer": 2 * i, "program": f"def solution():\n    return {i} * 3"})
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs))
    with Store(db) as st:
        import_programs(st, f, "dbl", split="train")
        ingest(st, _test_file(tmp_path), "dbl", split="test")
        import_programs(st, _test_programs(tmp_path), "dbl", split="test")
        execute(st)
        exact = curate(st, "exact", CurateParams(dedup="exact", max_per_problem=10))
        ast_ = curate(st, "ast", CurateParams(dedup="ast", max_per_problem=10))
        # 40 train problems with 3 correct programs (two are renamed copies) + 5 test problems with 1
        assert exact["programs"] == 40 * 3 + 5 and ast_["programs"] == 40 * 2 + 5
        one = curate(st, "one", CurateParams(max_per_problem=1, test_fraction=0.2, validation_fraction=0.2))
        assert one["programs"] == 45
        progs = st.df("SELECT program FROM curated_examples WHERE name = 'one'").program
        assert all(len(p.strip().splitlines()) == 2 for p in progs)  # the shortest correct program was kept
        # no problem in two splits; source test problems stay in test
        assert st.scalar("SELECT max(n) FROM (SELECT count(DISTINCT split) n FROM curated_examples GROUP BY name, problem_id)") == 1
        assert st.scalar("SELECT count(*) FROM curated_examples c JOIN problems p USING (problem_id) "
                         "WHERE p.split = 'test' AND c.split <> 'test'") == 0
        assert set(st.df("SELECT DISTINCT split FROM curated_examples WHERE name = 'one'").split) == {"train", "validation", "test"}
        # stored in (split, program_id) order, each problem in the split the documented rule draws
        # (so snapshots stay reproducible), with its question and gold; the hash is content_hash
        # of the stored rows
        for name, p in (("exact", CurateParams(dedup="exact", max_per_problem=10)),
                        ("ast", CurateParams(dedup="ast", max_per_problem=10)),
                        ("one", CurateParams(max_per_problem=1, test_fraction=0.2, validation_fraction=0.2))):
            stored = st.df("SELECT c.* EXCLUDE (name), p.split AS source_split, p.answer AS gold FROM curated_examples c "
                           "JOIN problems p USING (problem_id) WHERE name = ? ORDER BY c.rowid", [name])
            assert stored[["split", "program_id"]].values.tolist() == sorted(stored[["split", "program_id"]].values.tolist())
            assert stored.split.tolist() == [_documented_split(pid, q, src, p) for pid, q, src
                                             in zip(stored.problem_id, stored.question, stored.source_split)]
            assert stored.question.notna().all() and (stored.answer == stored.gold).all()
            rows = pa.Table.from_pandas(stored[["split", "program_id", "program", "verdict"]]).to_batches()
            assert content_hash(p, rows) == st.scalar("SELECT content_hash FROM curations WHERE name = ?", [name])
        # reproducible and immutable
        assert curate(st, "one", CurateParams(max_per_problem=1, test_fraction=0.2, validation_fraction=0.2)) == {**one, "created": False}
        with pytest.raises(CurateError, match="immutable"):
            curate(st, "one", CurateParams(max_per_problem=2))
        assert curate(st, "one-again", CurateParams(max_per_problem=1, test_fraction=0.2,
                                                   validation_fraction=0.2))["content_hash"] == one["content_hash"]
    listing = pad_cli("--db", db, "curate", "--list", check=True).stdout
    assert "one-again" in listing and one["content_hash"] in listing
    res = pad_cli("--db", db, "sql", "SELECT name, content_hash FROM curations ORDER BY name", "--format", "json", check=True)
    assert len(json.loads(res.stdout)) == 4


def _test_file(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"Test: what is {i} times 2?", "answer": 2 * i}) for i in range(5)))
    return f


def _test_programs(tmp_path):
    f = tmp_path / "tp.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"Test: what is {i} times 2?", "answer": 2 * i,
                                       "program": f"def solution():\n    return {i} * 2"}) for i in range(5)))
    return f


@pytest.mark.parametrize("fmt", ["hf", "parquet", "jsonl"])
def test_export_formats_read_back_with_expected_counts(db, tmp_path, fmt):
    pad_cli("--db", db, "run", check=True)
    pad_cli("--db", db, "check", check=True)
    pad_cli("--db", db, "curate", "v1", check=True)
    with Store(db) as st:
        counts = dict(st.con.execute("SELECT split, count(*) FROM curated_examples WHERE name = 'v1' GROUP BY 1").fetchall())
    out = tmp_path / f"out-{fmt}"
    pad_cli("--db", db, "export", "v1", "--out", out, "--format", fmt, "--license", "apache-2.0", check=True)
    if fmt == "hf":
        dd = datasets.load_from_disk(str(out))
        got = {k: len(v) for k, v in dd.items()}
        assert set(dd["train"].column_names) >= {"question", "program", "answer", "problem_id", "program_id", "label"}
        assert all(l == "correct" for l in dd["train"]["label"])
    else:
        loader = "parquet" if fmt == "parquet" else "json"
        dd = datasets.load_dataset(loader, data_files={s: str(out / f"{s}.{fmt}") for s in counts})
        got = {k: len(v) for k, v in dd.items()}
    assert got == counts
    card = (out / "README.md").read_text()
    assert "license: apache-2.0" in card and "## Labels before and after filtering" in card
    assert "offline-template-v1" in card and "passed" in card
    assert "data_files: null" not in card and "example.invalid" not in card
    # the card's configs name each split's files: the folder loads as it is (as it would from the Hub);
    # a cache of its own, since datasets keys a folder's cache by its name and file names, not content
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert {k: len(v) for k, v in loaded.items()} == counts
    again = pad_cli("--db", db, "export", "v1", "--out", out, "--format", fmt)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_push_to_hub_offline_fails_clearly_after_building_the_export(db, tmp_path):
    pad_cli("--db", db, "run", "--samples", "1", check=True)
    pad_cli("--db", db, "curate", "v1", check=True)
    res = pad_cli("--db", db, "export", "v1", "--out", tmp_path / "o", "--push-to-hub", "someone/pad-test",
                  env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": ""})
    assert res.returncode == 1
    err = res.stderr.strip()
    assert err.startswith("error: push to the Hugging Face Hub (someone/pad-test) failed") and "\n" not in err
    assert (tmp_path / "o" / "dataset_dict.json").exists() and (tmp_path / "o" / "README.md").exists()
    missing = pad_cli("--db", db, "export", "nope", "--out", tmp_path / "p")
    assert missing.returncode == 1 and "no curated snapshot named 'nope'" in missing.stderr


# ---------------------------------------------------------------------- snapshot names and injected programs
def _small_store(db, tmp_path, injected=True):
    """10 problems with one correct imported program each, executed; with ``injected``, an injected
    variant of each that still returns the gold answer (an 'unchanged' injection) and one that fails."""
    recs = [{"question": f"What is {i} plus {i}?", "answer": 2 * i, "program": f"def solution():\n    return {i} + {i}"}
            for i in range(10)]
    f = tmp_path / "small.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs))
    with Store(db) as st:
        import_programs(st, f, "sm", split="train")
        if injected:
            parents = st.df("SELECT program_id, problem_id, program FROM programs")
            rows = []
            for pid, prob, prog in parents.itertuples(index=False):
                for kind, code in (("noop", prog.replace("return", "x = 0\n    return")),
                                   ("name", prog.replace("return", "return y +"))):
                    rows.append({"program_id": program_id(prob, code, "t", 0, "injected"), "problem_id": prob,
                                 "origin": "injected", "teacher": "t", "sample_idx": 0, "program": code,
                                 "parent_program_id": pid, "injection_kind": kind})
            with st.transaction():
                st.insert_new("programs", pd.DataFrame(rows), "program_id")
        execute(st, isolation_level="process")


@pytest.mark.parametrize("args,message", [
    (["--labels", "corect"], "error: --labels: no label 'corect' (did you mean 'correct'?)"),
    (["--dataset", "smm"], "error: --dataset: no dataset 'smm' (did you mean 'sm'?)"),
    (["--origins", "teachr"], "error: --origins: no origin 'teachr' (did you mean 'teacher'?)"),
    (["--origins", "student"], "error: --origins: the store has no programs of origin 'student' (it has: import)"),
    (["--labels", "timeout"], "error: the filters select no programs (labels timeout; origins teacher,import,human; "
                              "datasets all); the store has: correct 10; nothing was stored"),
])
def test_curate_names_are_checked_and_a_failed_curate_takes_no_name(db, tmp_path, args, message):
    _small_store(db, tmp_path, injected=False)
    res = pad_cli("--db", db, "curate", "v3", *args)
    assert res.returncode == 1 and res.stderr.strip() == message
    with Store(db) as st:
        assert st.scalar("SELECT count(*) FROM curations") == 0
    pad_cli("--db", db, "curate", "v3", check=True)  # the name is still free
    out = tmp_path / "out"
    pad_cli("--db", db, "export", "v3", "--out", out, check=True)
    dd = datasets.load_from_disk(str(out))  # a split the snapshot left empty is left out
    with Store(db) as st:
        splits = dict(st.con.execute("SELECT split, count(*) FROM curated_examples GROUP BY 1").fetchall())
    assert {k: len(v) for k, v in dd.items()} == splits and sum(splits.values()) == 10 and len(splits) < 3


def test_curate_leaves_injected_programs_out_unless_asked(db, tmp_path):
    _small_store(db, tmp_path)
    with Store(db) as st:
        assert st.scalar("SELECT count(*) FROM labeled_programs WHERE origin = 'injected' AND label = 'correct'") == 10
        default = curate(st, "default", CurateParams(dedup="none", validation_fraction=0, test_fraction=0))
        assert default["programs"] == 10
        assert st.scalar("SELECT count(*) FROM curated_examples WHERE name = 'default' AND origin = 'injected'") == 0
        assert json.loads(st.scalar("SELECT params FROM curations WHERE name = 'default'"))["origins"] == \
            ["teacher", "import", "human"]
        asked = curate(st, "asked", CurateParams(origins=["injected"], dedup="none", validation_fraction=0,
                                                 test_fraction=0))
        assert asked["programs"] == 10
        assert st.scalar("SELECT count(DISTINCT origin) FROM curated_examples WHERE name = 'asked'") == 1
        refine = curate(st, "fix", CurateParams(task="refine", validation_fraction=0, test_fraction=0))
        assert refine["programs"] == 10 and refine["injection_kinds"] == {"name": 10}
    # as chat: a two-turn fix conversation per pair
    out = tmp_path / "chat"
    res = pad_cli("--db", db, "export", "fix", "--out", out, "--format", "chat", check=True)
    assert res.stdout.strip() == f"exported fix to {out} (chat): train 10"
    rows = datasets.load_from_disk(str(out))["train"]
    assert len(rows) == 10 and "faulty_program_id" in rows.column_names and "question" not in rows.column_names
    for row in rows:
        system, user, faulty, fix, good = row["messages"]
        assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant", "user", "assistant"]
        assert user["content"].startswith("What is ") and "return y +" in faulty["content"]
        assert fix["content"] == "Running your program gave: NameError: name 'y' is not defined (line 2)\nFix the program."
        assert good["content"].startswith("def solution():\n    return ") and "y" not in good["content"]
    card = (out / "README.md").read_text()
    assert '"completion": r["messages"][-1:]' in card and "SFTTrainer" in card


def test_export_overwrite_replaces_only_an_earlier_export_and_a_failure_keeps_it(db, tmp_path, monkeypatch):
    from pad_data.stages import export as export_mod

    _small_store(db, tmp_path, injected=False)
    pad_cli("--db", db, "curate", "v1", "--validation", "0", "--test", "0", check=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    res = pad_cli("--db", db, "export", "v1", "--out", mine, "--overwrite")
    assert res.returncode == 1 and res.stderr.strip() == (
        f"error: {mine}: not a folder pad export wrote (no .pad-export file in it); refusing to replace it: "
        "choose another --out")
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    out = tmp_path / "out"
    pad_cli("--db", db, "export", "v1", "--out", out, "--format", "jsonl", check=True)
    assert (out / ".pad-export").is_file() and (out / "train.jsonl").exists()
    pad_cli("--db", db, "export", "v1", "--out", out, "--format", "parquet", "--overwrite", check=True)
    assert sorted(p.name for p in out.iterdir()) == [".pad-export", "README.md", "test.parquet", "train.parquet",
                                                     "validation.parquet"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail_halfway(store, name, folder, fmt):
        (folder / "train.jsonl").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "_write_splits", fail_halfway)
    with Store(db) as st, pytest.raises(RuntimeError, match="disk full"):
        export_mod.export(st, "v1", out, fmt="jsonl", overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier export, intact
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary folder left
