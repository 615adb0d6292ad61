import subprocess
import sys
import re
import threading
import time

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from pad_data.store import RESULT_COLUMNS, SCHEMA_VERSION, Store, StoreError, problem_id, program_id


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


def test_snapshot_rows_keep_their_order_when_the_key_is_dropped(db):
    """Schema 15 rebuilds the snapshot tables without a key; exports read rows in stored order."""
    with Store(db, migrate_to=14) as st:
        st.con.execute("INSERT INTO curated_examples (name, split, problem_id, program_id, program) "
                       "SELECT 's', CASE WHEN i < 3 THEN 'test' ELSE 'train' END, 'q' || i, 'p' || (9 - i), 'x' "
                       "FROM range(10) t(i)")
        before = st.df("SELECT * FROM curated_examples ORDER BY rowid")
    with Store(db) as st:
        assert st.version >= 15
        columns = ", ".join(before.columns)  # later versions add columns
        assert st.df(f"SELECT {columns} FROM curated_examples ORDER BY rowid").equals(before)
        assert st.scalar("SELECT count(*) FROM duckdb_constraints() WHERE table_name IN "
                         "('curated_examples', 'refine_examples') AND constraint_type = 'PRIMARY KEY'") == 0


def test_programs_keep_their_rows_and_order_without_the_key_and_stay_unique(db):
    """Schema 16 rebuilds programs without a primary key (its index slowed every bulk write);
    the store's anti-join keeps program ids unique, whichever path inserts them."""
    with Store(db, migrate_to=15) as st:
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question) VALUES ('q', 'd', 'train', 'Q')")
        st.con.execute("INSERT INTO programs (program_id, problem_id, origin, sample_idx, program, gen_key) "
                       "SELECT 'p' || (9 - i), 'q', 'import', i, 'x = ' || i, CASE WHEN i = 4 THEN 'g' END "
                       "FROM range(10) t(i)")
        before = st.df("SELECT * FROM programs ORDER BY rowid")
    with Store(db) as st:
        assert st.version >= 16
        assert st.df("SELECT * FROM programs ORDER BY rowid")[list(before.columns)].equals(before)  # later columns added
        assert st.scalar("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'programs' "
                         "AND constraint_type = 'PRIMARY KEY'") == 0
        assert {r[0] for r in st.con.execute("SELECT index_name FROM duckdb_indexes() "
                                             "WHERE table_name = 'programs'").fetchall()} \
            == {"programs_problem", "programs_gen_key"}
        again = pd.DataFrame([{"program_id": "p3", "problem_id": "q", "origin": "import", "program": "y"},
                              {"program_id": "new", "problem_id": "q", "origin": "import", "program": "z"},
                              {"program_id": "new", "problem_id": "q", "origin": "import", "program": "z2"}])
        assert st.insert_new("programs", again, "program_id") == 1
        assert st.insert_rows("programs", pa.Table.from_pandas(again.iloc[:1]), "program_id") == 0
        assert st.scalar("SELECT count(*) FROM programs") == 11
        assert st.scalar("SELECT count(DISTINCT program_id) FROM programs") == 11
        assert st.scalar("SELECT program FROM programs WHERE program_id = 'p3'") == "x = 6"
        assert st.scalar("SELECT program FROM programs WHERE program_id = 'new'") == "z"


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


def _hold(db, seconds):
    """Another process holding the store for ``seconds``; returns once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(db)!r}); "
                               f"print('held', flush=True); time.sleep({seconds}); c.close(); print('released', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_busy_store_says_so_after_waiting(db, monkeypatch):
    Store(db).close()
    holder = _hold(db, 30)
    try:
        t = time.monotonic()
        with pytest.raises(StoreError, match="busy"):
            Store(db, wait=0.5)
        assert time.monotonic() - t >= 0.5  # it waited and retried first
        monkeypatch.setenv("PAD_BUSY_TIMEOUT", "0.3")
        with pytest.raises(StoreError, match="busy.*0.3 s"):
            Store(db, read_only=True)
    finally:
        holder.kill()
        holder.wait()


def test_a_connection_of_this_process_in_the_other_mode_is_waited_for(db):
    """DuckDB opens a file read-only or read-write per process: a store reopened read-write (a
    background writer's next commit) while a read-only one of the same process is open (an
    in-process `pad sql`) waits for it, as for another process, instead of failing."""
    with Store(db) as st:
        _add_program(st, "a")
    reader = Store(db, read_only=True)
    threading.Timer(0.3, reader.close).start()
    t = time.monotonic()
    with Store(db, wait=10) as st:  # opened once the reader is gone
        _add_program(st, "b")
        assert time.monotonic() - t >= 0.25
    reader = Store(db, read_only=True)
    try:
        with pytest.raises(StoreError, match="busy.*0.2 s"):
            Store(db, wait=0.2)
    finally:
        reader.close()


def test_a_store_held_briefly_is_waited_for(db):
    """A reader (or a writer) finding the store held waits and gets in once it is let go."""
    with Store(db) as st:
        _add_program(st, "a")
    holder = _hold(db, 1.0)
    try:
        t = time.monotonic()
        with Store(db, read_only=True, wait=20) as st:
            assert st.scalar("SELECT count(*) FROM programs") == 1
        assert holder.stdout.readline().strip() == "released"
        assert 0.5 <= time.monotonic() - t < 15
    finally:
        holder.kill()
        holder.wait()


def test_released_store_is_open_to_others_and_reopens_on_use(db):
    with Store(db) as st:
        _add_program(st, "a")
        st.release()
        with Store(db, read_only=True, wait=0) as other:  # no wait needed: nobody holds it
            assert other.scalar("SELECT count(*) FROM programs") == 1
        assert st.scalar("SELECT count(*) FROM programs") == 1  # reopened
        with st.transaction():
            with pytest.raises(RuntimeError):
                st.release()


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


def _settings(st):
    """The two settings :meth:`Store.capped` sets, as the store's connection has them."""
    return st.con.execute("SELECT current_setting('memory_limit'), "
                          "current_setting('preserve_insertion_order')").fetchall()[0]


def test_capped_restores_its_settings_even_in_a_transaction_an_error_aborted(db):
    with Store(db) as st:
        before = _settings(st)
        with st.capped("300MB", ordered=False):
            assert _settings(st) == ("286.1 MiB", False)
            with st.capped("1GB"):
                assert _settings(st) == ("953.6 MiB", True)
            assert _settings(st) == ("286.1 MiB", False)
        assert _settings(st) == before
        with pytest.raises(duckdb.ConstraintException, match="problem_id"):  # the error, not a failed SET
            with st.transaction(), st.capped("300MB", ordered=False):
                st.con.execute("INSERT INTO problems (problem_id, dataset, split, question) VALUES (NULL, 'd', 's', 'q')")
        assert _settings(st) == before


def test_capped_survives_release_and_does_not_reopen_a_released_store(db):
    with Store(db) as st:
        before = _settings(st)
        with st.capped("300MB", ordered=False):
            st.release()
            assert _settings(st) == ("286.1 MiB", False)  # reopened inside the block: still capped
            st.release()
        assert st._con is None  # leaving the block did not take the store again just to reset settings
        with Store(db, wait=0) as other:  # nobody holds it
            assert other.scalar("SELECT count(*) FROM problems") == 0
        assert _settings(st) == before


def _add_program(st, pid):
    with st.transaction():
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question, answer) "
                       "VALUES (?, 'd', 'train', ?, 1) ON CONFLICT DO NOTHING", ["p", "q"])
        st.con.execute("INSERT INTO programs (program_id, problem_id, origin, program) VALUES (?, 'p', 'import', 'x')",
                       [pid])


def _raw_exec(st, pid, label, at="2024-01-01 00:00:00"):
    """An execution written straight into the table (as pad before v9 did)."""
    st.con.execute("INSERT INTO executions (program_id, status, label, executor, executed_at) "
                   "VALUES (?, 'ok', ?, 'test', ?)", [pid, label, at])


def _result(pid, label, at="2024-01-01 00:00:00", prev=None):
    return {**dict.fromkeys(RESULT_COLUMNS), "program_id": pid, "status": "ok", "label": label,
            "executor": "test", "executed_at": pd.Timestamp(at), "prev_seq": prev}


def _exec(st, pid, label, at="2024-01-01 00:00:00", rerun=True):
    """Store one result the way every engine does: over the program's current execution."""
    prev = st.scalar("SELECT seq FROM program_labels WHERE program_id = ?", [pid]) if rerun else None
    return st.add_executions(pd.DataFrame([_result(pid, label, at, prev)]))


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
            _raw_exec(st, "a", "correct", at="2024-01-02 00:00:00")
            _raw_exec(st, "a", "wrong_answer", at="2024-01-01 00:00:00")  # older, stored later
            _raw_exec(st, "b", "wrong_answer")
            _raw_exec(st, "b", "correct")  # a tie: stored later wins
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


def test_one_rule_for_storing_executions(db, tmp_path):
    """A result is stored only over the execution its engine saw (prev_seq); executions keep the
    history, program_labels the current one, with the program's context looked up if missing."""
    with Store(db) as st:
        for pid in ("a", "b"):
            _add_program(st, pid)
        with st.transaction():
            assert _exec(st, "a", "correct", rerun=False) == {"correct": 1}
            assert _exec(st, "a", "wrong_answer", rerun=False) == {}  # another run got there first
            assert _exec(st, "a", "timeout") == {"timeout": 1}  # a rerun: over the current one
        stale = pd.DataFrame([_result("a", "crashed", prev=1)])  # saw seq 1; the current is 2
        with st.transaction():
            assert st.add_executions(stale) == {}
        # the Ray engine's path: result shards in Parquet, by the same rule
        shard = tmp_path / "shard.parquet"
        pd.DataFrame([_result("b", "correct"), _result("a", "correct")]).to_parquet(shard)
        with st.transaction():
            assert st.add_executions(str(shard)) == {"correct": 1}  # "a" has an execution: dropped
        assert st.df("SELECT program_id, label, seq FROM executions ORDER BY seq").values.tolist() == [
            ["a", "correct", 1], ["a", "timeout", 2], ["b", "correct", 3]]
        assert st.df("SELECT program_id, problem_id, dataset, origin, seq, label FROM program_labels "
                     "ORDER BY 1").values.tolist() == [["a", "p", "d", "import", 2, "timeout"],
                                                      ["b", "p", "d", "import", 3, "correct"]]
        assert dict(st.con.execute("SELECT program_id, label FROM labeled_programs").fetchall()) == \
            {"a": "timeout", "b": "correct"}
        with pytest.raises(ValueError, match="does not hold"), st.transaction():
            st.add_executions(pd.DataFrame([_result("nope", "correct")]))
        with pytest.raises(ValueError, match="add_executions"):
            st.insert_new("executions", pd.DataFrame([_result("a", "correct")]), "program_id")
        assert st.scalar("SELECT count(*) FROM executions") == 3


def test_v8_store_upgrades_in_place_to_materialized_labels(db):
    """A store of the last schema with a window view: opened, it gets program_labels filled from
    its history, and labeled_programs answers exactly what the window answered."""
    with Store(db, migrate_to=8) as st:
        for pid in ("a", "b", "c"):
            _add_program(st, pid)
        with st.transaction():
            _raw_exec(st, "a", "wrong_answer")
            _raw_exec(st, "b", "correct")
            _raw_exec(st, "a", "correct")
            st.con.execute("UPDATE executions SET error_type = 'NameError', status = 'runtime_error', "
                           "label = 'runtime_error' WHERE program_id = 'b'")
        window = st.df("""SELECT p.program_id, e.label, e.status, e.error_type, e.seq FROM programs p
                          LEFT JOIN (SELECT * FROM executions QUALIFY row_number() OVER
                                     (PARTITION BY program_id ORDER BY seq DESC) = 1) e USING (program_id)
                          ORDER BY 1""")
    with Store(db) as st:
        assert st.version == SCHEMA_VERSION
        now = st.df("SELECT program_id, label, status, error_type, execution_seq AS seq FROM labeled_programs "
                    "ORDER BY 1")
        assert now.astype(str).values.tolist() == window.astype(str).values.tolist()
        assert st.scalar("SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'executions_program'") == 0
        assert st.scalar("SELECT count(*) FROM executions") == 3  # history kept
        _exec(st, "c", "timeout")  # and the store goes on from there
        assert st.scalar("SELECT seq FROM program_labels WHERE program_id = 'c'") == 4


def test_v8_store_with_eval_runs_upgrades_in_place(db):
    with Store(db, migrate_to=8) as st:
        st.con.execute("INSERT INTO eval_runs (run_id, model, dataset, split, questions, correct, accuracy, settings) "
                       "VALUES ('r1', 'm', 'd', 'test', 4, 3, 0.75, '{}')")
    with Store(db) as st:
        assert st.version == SCHEMA_VERSION >= 9
        assert st.con.execute("SELECT run_id, accuracy, run_key FROM eval_runs").fetchall() == [("r1", 0.75, None)]
        assert st.eval_resume_point("anything") == (None, set())
        st.add_eval_items([{"run_id": "r2", "problem_id": "p", "run_key": "k", "correct_by_round": "[true]",
                            "labels": "[]", "programs": 1, "seconds": 0.1}], [], None)
        assert st.eval_resume_point("k") == ("r2", {"p"})


READ_ONLY_CASES = [  # query, what pad sql says, what the review app's SQL tab says (None: runs)
    ("SELECT 1", None, None),
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", None, None),
    ("FROM programs", None, None),
    ("EXPLAIN SELECT 1", None, "only SELECT is allowed (this is a EXPLAIN statement)"),
    ("EXPLAIN ANALYZE DELETE FROM programs", "pad sql is read-only: EXPLAIN DELETE statements", "only SELECT"),
    ("DELETE FROM programs", "pad sql is read-only: DELETE statements are not allowed", "only SELECT is allowed"),
    ("SELECT 1; DROP TABLE programs", "DROP statements", "only SELECT is allowed: give one statement"),
    ("COPY programs TO 'x.csv'", "COPY statements", "(this is a COPY statement)"),
    ("", "empty query", "empty query"),
    ("SELEC 1", "syntax error", "syntax error"),
]


@pytest.mark.parametrize("query,pad_sql,one_select", READ_ONLY_CASES)
def test_one_read_only_guard_for_pad_sql_and_the_review_app(query, pad_sql, one_select):
    from pad_data.store.sqltools import read_only_statements

    con = duckdb.connect()
    con.execute("CREATE TABLE programs (program_id VARCHAR)")
    for single, refusal in ((False, pad_sql), (True, one_select)):
        if refusal is None:
            assert read_only_statements(con, query, one_select=single)
        else:
            with pytest.raises(ValueError, match=re.escape(refusal)):
                read_only_statements(con, query, one_select=single)
    assert con.execute("SELECT count(*) FROM programs").fetchall() == [(0,)]


def test_sql_toolbox_quotes_lists_and_registers_frames():
    from pad_data.store.sqltools import any_of, registered, sql_literal

    con = duckdb.connect()
    assert con.execute(f"SELECT {sql_literal(chr(39) + 'a' + chr(39) * 2)}").fetchall() == [("'a''",)]
    where, params = any_of("x", iter(["b", "c"]))
    assert con.execute(f"SELECT x FROM (VALUES ('a'), ('b'), ('c')) t(x) WHERE {where} ORDER BY x",
                       params).fetchall() == [("b",), ("c",)]
    with registered(con, pd.DataFrame({"x": [1, 2]})) as a, registered(con, pa.table({"x": [3]})) as b:
        assert a != b
        assert con.execute(f"SELECT sum(x) FROM (FROM {a} UNION ALL FROM {b})").fetchall() == [(6,)]
    with pytest.raises(duckdb.CatalogException):
        con.execute(f"FROM {a}")


def test_labels_and_failures_are_written_through_the_store(db):
    with Store(db) as st:
        for pid in ("a", "b"):
            _add_program(st, pid)
        with st.transaction():
            _exec(st, "a", "unverifiable")
            _exec(st, "b", "wrong_answer")
        seq_a, seq_b = (st.scalar("SELECT seq FROM program_labels WHERE program_id = ?", [p]) for p in "ab")
        with st.transaction():  # a consensus label: program_labels only, the execution keeps its own
            st.set_labels("SELECT seq, 'correct' AS label FROM executions WHERE seq = ?", [seq_a])
        assert st.scalar("SELECT label FROM executions WHERE seq = ?", [seq_a]) == "unverifiable"
        with st.transaction():  # a gold answer changed: both
            st.relabel_executions(pd.DataFrame({"seq": [seq_b], "label": ["correct"], "value_num": [1.0]}))
        assert st.df("SELECT program_id, label FROM program_labels ORDER BY 1").values.tolist() == [
            ["a", "correct"], ["b", "correct"]]
        assert st.scalar("SELECT label || value_num FROM executions WHERE seq = ?", [seq_b]) == "correct1.0"
        fail = {"gen_key": "k1", "problem_id": "p", "sample_idx": 0, "model": "m", "error": "e", "attempts": 1}
        with st.transaction():
            st.add_failures([fail, {**fail, "gen_key": "k2"}])
            st.add_failures(pd.DataFrame([fail]), replay=True)  # recorded already: skipped
        assert st.scalar("SELECT count(*) FROM generation_failures") == 2
        with st.transaction():
            st.drop_failures(iter(["k1", "nope"]))
        assert st.con.execute("SELECT gen_key FROM generation_failures").fetchall() == [("k2",)]
