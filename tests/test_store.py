import subprocess
import sys

import duckdb
import pandas as pd
import pytest

from pad_data.store import SCHEMA_VERSION, Store, StoreError, problem_id, program_id


def test_new_store_has_schema_and_view(db):
    with Store(db) as st:
        assert st.version == SCHEMA_VERSION
        tables = {r[0] for r in st.con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"problems", "programs", "executions", "schema_version", "labeled_programs"} <= tables


def test_ids_are_stable_content_hashes():
    assert problem_id("gsm8k", "What is 1+1?") == problem_id("gsm8k", "What  is 1+1? ")
    assert problem_id("gsm8k", "What is 1+1?") != problem_id("svamp", "What is 1+1?")
    a = program_id("p1", "def solution():\n    return 2\n", "t", 0)
    assert a == program_id("p1", "def solution():\n    return 2\n", "t", 0)
    assert a != program_id("p1", "def solution():\n    return 2\n", "t", 1)
    assert len(a) == 16


@pytest.mark.parametrize("target", range(0, SCHEMA_VERSION))
def test_older_store_is_upgraded(db, target):
    with Store(db, migrate_to=target) as st:
        assert st.version == target
    with Store(db) as st:
        assert st.version == SCHEMA_VERSION
        st.con.execute("SELECT * FROM labeled_programs").fetchall()


def test_newer_store_is_refused(db):
    with Store(db) as st:
        st.con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 5])
    with pytest.raises(StoreError, match="newer"):
        Store(db)


def test_not_a_duckdb_file(tmp_path):
    bad = tmp_path / "x.duckdb"
    bad.write_text("hello, not a database")
    with pytest.raises(StoreError):
        Store(bad)


def test_busy_store_says_so(db):
    Store(db).close()
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="busy"):
            Store(db)
    finally:
        holder.kill()
        holder.wait()


def test_transaction_is_all_or_nothing(db):
    with Store(db) as st:
        rows = pd.DataFrame([{"problem_id": "a", "dataset": "d", "split": "train", "question": "q"}])
        with pytest.raises(RuntimeError):
            with st.transaction():
                st.insert_new("problems", rows, "problem_id")
                raise RuntimeError("crash mid-stage")
        assert st.scalar("SELECT count(*) FROM problems") == 0
        with st.transaction():
            assert st.insert_new("problems", rows, "problem_id") == 1
            assert st.insert_new("problems", rows, "problem_id") == 0
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM problems").fetchall() == [(1,)]


def _add_program(st, pid):
    with st.transaction():
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question, answer) "
                       "VALUES (?, 'd', 'train', ?, 1) ON CONFLICT DO NOTHING", ["p", "q"])
        st.con.execute("INSERT INTO programs (program_id, problem_id, origin, program) VALUES (?, 'p', 'import', 'x')",
                       [pid])


def _exec(st, pid, label, at="2024-01-01 00:00:00"):
    st.con.execute("INSERT INTO executions (program_id, status, label, executor, executed_at) "
                   "VALUES (?, 'ok', ?, 'test', ?)", [pid, label, at])


def test_latest_execution_is_the_last_stored_even_when_timestamps_tie(db):
    """executed_at is one timestamp per batch: two executions of a program can tie. The row
    stored last is the latest, whatever its timestamp says."""
    with Store(db) as st:
        for i in range(20):
            _add_program(st, f"g{i}")
        with st.transaction():
            for i in range(20):
                _exec(st, f"g{i}", "wrong_answer")
        with st.transaction():
            for i in range(20):  # the same timestamp: a tie executed_at cannot break
                _exec(st, f"g{i}", "correct")
        with st.transaction():
            _exec(st, "g0", "timeout", at="2023-01-01 00:00:00")  # stored last, an earlier clock
        labels = dict(st.con.execute("SELECT program_id, label FROM labeled_programs").fetchall())
        assert labels.pop("g0") == "timeout"
        assert set(labels.values()) == {"correct"}
        seqs = [r[0] for r in st.con.execute("SELECT seq FROM executions ORDER BY seq").fetchall()]
        assert seqs == list(range(1, 42))


def test_upgrade_numbers_existing_executions_by_time_then_insertion_order(db):
    with Store(db, migrate_to=7) as st:
        for pid in ("a", "b"):
            _add_program(st, pid)
        with st.transaction():
            _exec(st, "a", "correct", at="2024-01-02 00:00:00")
            _exec(st, "a", "wrong_answer", at="2024-01-01 00:00:00")  # older, stored later
            _exec(st, "b", "wrong_answer")
            _exec(st, "b", "correct")  # a tie: stored later wins
    with Store(db) as st:
        assert st.version == SCHEMA_VERSION
        assert st.df("SELECT program_id, label, seq FROM executions ORDER BY seq").values.tolist() == [
            ["a", "wrong_answer", 1], ["b", "wrong_answer", 2], ["b", "correct", 3], ["a", "correct", 4]]
        assert dict(st.con.execute("SELECT program_id, label FROM labeled_programs").fetchall()) == \
            {"a": "correct", "b": "correct"}
        with st.transaction():
            _exec(st, "a", "timeout", at="2020-01-01 00:00:00")
        assert st.scalar("SELECT seq FROM executions WHERE label = 'timeout'") == 5
        assert st.scalar("SELECT label FROM labeled_programs WHERE program_id = 'a'") == "timeout"


def test_v8_store_with_eval_runs_upgrades_in_place(db):
    with Store(db, migrate_to=8) as st:
        st.con.execute("INSERT INTO eval_runs (run_id, model, dataset, split, questions, correct, accuracy, settings) "
                       "VALUES ('r1', 'm', 'd', 'test', 4, 3, 0.75, '{}')")
    with Store(db) as st:
        assert st.version == SCHEMA_VERSION >= 9
        assert st.con.execute("SELECT run_id, accuracy, run_key FROM eval_runs").fetchall() == [("r1", 0.75, None)]
        assert st.eval_resume_point("anything") == (None, set())
        st.add_eval_items([{"run_id": "r2", "problem_id": "p", "run_key": "k", "correct_by_round": "[true]",
                            "labels": "[]", "programs": 1, "seconds": 0.1}], [], [])
        assert st.eval_resume_point("k") == ("r2", {"p"})
