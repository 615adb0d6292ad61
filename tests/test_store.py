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
