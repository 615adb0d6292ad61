"""`pad delete --dataset D`: every row of the dataset goes, in one transaction, and nothing else;
snapshots that used it are kept and say so."""

import duckdb
import pytest
from typer.testing import CliRunner

from pad_data import api
from pad_data.cli import app
from pad_data.cli import commands
from pad_data.stages.execute import execute
from pad_data.store import Store

from conftest import pad_cli

# every table holding a dataset's rows, and how a row belongs to dataset {d}
OWNED = {
    "problems": "dataset = '{d}'",
    "programs": "problem_id IN (SELECT problem_id FROM problems WHERE dataset = '{d}')",
    "executions": "program_id IN (SELECT program_id FROM programs JOIN problems USING (problem_id) "
                  "WHERE dataset = '{d}')",
    "program_labels": "dataset = '{d}'",
    "reviews": "program_id IN (SELECT program_id FROM programs JOIN problems USING (problem_id) WHERE dataset = '{d}')",
    "current_reviews": "program_id IN (SELECT program_id FROM programs JOIN problems USING (problem_id) "
                       "WHERE dataset = '{d}')",
    "consensus": "problem_id IN (SELECT problem_id FROM problems WHERE dataset = '{d}')",
    "generation_failures": "problem_id IN (SELECT problem_id FROM problems WHERE dataset = '{d}')",
    "synth_requests": "dataset = '{d}'",
}
KEPT = ["curations", "curated_examples", "refine_examples", "prompts", "check_runs"]


def _counts(db, dataset: str) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = {t: con.execute(f"SELECT count(*) FROM {t} WHERE {w.format(d=dataset)}").fetchall()[0][0]
                  for t, w in OWNED.items()}
        counts.update({t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in KEPT})
        counts["rows"] = con.execute("SELECT name, count(*), sum(hash(program)) FROM curated_examples "
                                     "GROUP BY 1 ORDER BY 1").fetchall()
        return counts
    finally:
        con.close()


def _store_of_two_datasets(db, shared_data) -> None:
    """Two datasets from real PoT files (ma: MultiArith, gsm: GSM8K), executed, with reviews, a
    consensus answer, generation failures and a synthesis request each; snapshots over both and one."""
    pot = shared_data / "pot"
    pad_cli("--db", db, "import-programs", pot / "multiarith_zs.jsonl", "--dataset", "ma", "--program-field",
            "generated", "--limit", "12", check=True)
    pad_cli("--db", db, "import-programs", pot / "gsm8k.jsonl", "--dataset", "gsm", "--program-field", "generated",
            "--question-field", "question", "--limit", "13", "--skip-invalid", check=True)
    with Store(db) as st:
        execute(st, isolation_level="process")
        for d in ("ma", "gsm"):
            with st.transaction():
                first = "SELECT program_id FROM programs JOIN problems USING (problem_id) WHERE dataset = ? " \
                        "ORDER BY program_id LIMIT 3"
                st.add_verdicts(first, [d], "reject", "looks wrong", "ann")
                st.add_verdicts(first, [d], "accept", None, "bob")
                pid = st.scalar("SELECT min(problem_id) FROM problems WHERE dataset = ?", [d])
                st.con.execute("INSERT INTO consensus (problem_id, answer, answer_text, votes, voters, agreement, "
                               "min_votes) VALUES (?, 1, '1', 3, 4, 0.75, 3)", [pid])
                st.con.execute("INSERT INTO generation_failures (gen_key, problem_id, sample_idx, model, error) "
                               "VALUES (?, ?, 0, 'm', 'APIConnectionError')", [f"k-{d}", pid])
            st.add_synth_request({"synth_key": f"s-{d}", "dataset": d, "seed_dataset": "x", "request_idx": 0,
                                  "model": "m", "prompt_id": "p", "seed_problem_ids": [], "outcome": "duplicate"},
                                 None)
        api.curate(st, "both", api.CurateParams(datasets=["ma", "gsm"], review="ignore"))
        api.curate(st, "gsm-only", api.CurateParams(datasets=["gsm"], review="ignore"))


def test_delete_removes_every_row_of_the_dataset_and_nothing_else(db, shared_data, tmp_path):
    _store_of_two_datasets(db, shared_data)
    ma, gsm = _counts(db, "ma"), _counts(db, "gsm")
    assert all(ma[t] > 0 for t in OWNED) and all(gsm[t] > 0 for t in OWNED), (ma, gsm)

    res = pad_cli("--db", db, "delete", "--dataset", "mma")
    assert res.returncode == 1 and res.stderr == "error: --dataset: no dataset 'mma' (did you mean 'ma'?)\n"
    # no terminal to ask and no --yes: an error, nothing deleted
    res = pad_cli("--db", db, "delete", "--dataset", "ma")
    assert res.returncode == 1 and len(res.stderr.splitlines()) == 1
    assert res.stderr.startswith(f"error: pad delete asks before deleting dataset 'ma' ({ma['problems']} problems, "
                                 f"{ma['programs']} programs, {ma['executions']} executions")
    assert "pass --yes" in res.stderr and _counts(db, "ma") == ma

    res = pad_cli("--db", db, "delete", "--dataset", "ma", "--yes", check=True)
    assert res.stdout == (f"deleted dataset 'ma': {ma['problems']} problems, {ma['programs']} programs, "
                          f"{ma['executions']} executions, {ma['program_labels']} labels, {ma['reviews']} reviews, "
                          "1 consensus answer, 1 generation failure, 1 synthesis request; "
                          "1 curated snapshot that used it is kept: both\n")
    after = _counts(db, "ma")
    assert all(after[t] == 0 for t in OWNED), after
    assert {t: after[t] for t in KEPT} == {t: ma[t] for t in KEPT} and after["rows"] == ma["rows"]
    assert _counts(db, "gsm") == gsm  # the other dataset is untouched

    listing = pad_cli("--db", db, "curate", "--list", check=True).stdout
    both, only = [line for line in listing.splitlines() if "│ both " in line or "│ gsm-only " in line]
    assert "datasets deleted since" in listing and both.rstrip(" │").endswith("ma") and not only.rstrip(" │")[-1].isalpha()
    # the snapshot is whole: its export has every row, the deleted dataset's too
    pad_cli("--db", db, "export", "both", "--out", tmp_path / "out", "--format", "jsonl", check=True)
    exported = sum(1 for f in (tmp_path / "out").glob("*.jsonl") for _ in open(f))
    assert exported == dict(r[:2] for r in ma["rows"])["both"]
    # imported again, it comes back whole
    res = pad_cli("--db", db, "import-programs", shared_data / "pot" / "multiarith_zs.jsonl", "--dataset", "ma",
                  "--program-field", "generated", "--limit", "12", check=True)
    assert f"added {ma['programs']} (new problems: {ma['problems']})" in res.stdout
    assert "datasets deleted since" not in pad_cli("--db", db, "curate", "--list", check=True).stdout


def _ask(db, monkeypatch, answer: str):
    monkeypatch.setattr(commands, "_interactive", lambda: True)
    return CliRunner().invoke(app, ["--db", str(db), "delete", "--dataset", "ma"], input=answer, prog_name="pad")


def test_delete_asks_on_a_terminal(db, shared_data, monkeypatch):
    _store_of_two_datasets(db, shared_data)
    ma = _counts(db, "ma")
    res = _ask(db, monkeypatch, "n\n")
    assert res.exit_code == 1 and "delete dataset 'ma': " in res.stderr and "kept: both?" in res.stderr
    assert "not deleted" in res.stderr and _counts(db, "ma") == ma
    res = _ask(db, monkeypatch, "y\n")
    assert res.exit_code == 0 and "\ndeleted dataset 'ma': " in res.stdout  # CliRunner echoes the answer
    assert _counts(db, "ma")["problems"] == 0


def test_a_delete_that_fails_deletes_nothing(db, shared_data, monkeypatch):
    _store_of_two_datasets(db, shared_data)
    ma = _counts(db, "ma")
    # the last statement fails, after every other table's rows were deleted in the transaction
    monkeypatch.setattr(Store, "DATASET_TABLES", {**Store.DATASET_TABLES, "problems": "no_such_column = $dataset"})
    monkeypatch.setattr(Store, "dataset_rows", lambda self, d: {})
    with Store(db) as st, pytest.raises(duckdb.Error, match="no_such_column"):
        api.delete_dataset(st, "ma")
    assert _counts(db, "ma") == ma


def test_delete_through_the_api_without_confirm(db, shared_data):
    _store_of_two_datasets(db, shared_data)
    with Store(db) as st:
        r = api.delete_dataset(st, "gsm", confirm=lambda plan: False)
        assert not r["deleted"] and r["rows"]["problems"] > 0 and r["snapshots"] == ["both", "gsm-only"]
        r = api.delete_dataset(st, "gsm")
        assert r["deleted"] and r["rows"]["problems"] > 0
        assert st.scalar("SELECT count(*) FROM problems WHERE dataset = 'gsm'") == 0
        with pytest.raises(ValueError, match="no dataset 'gsm'"):
            api.delete_dataset(st, "gsm")
