import json

import duckdb
import pytest

from pad_data.execute import execute
from pad_data.generate import generate_offline, ingest_embedded
from pad_data.ingest import import_programs
from pad_data.sandbox.pool import execute_programs
from pad_data.store import Store

from conftest import pad_cli


def _programs_file(tmp_path, n=60):
    recs = []
    for i in range(n):
        body = f"def solution():\n    a = {i}\n    b = a * 2\n    return b"
        if i % 10 == 3:
            body = body.replace("return b", "return c")
        recs.append({"question": f"Double {i}?", "program": body, "answer": 2 * i})
    f = tmp_path / "progs.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs))
    return f


def test_execute_labels_programs_and_rerun_does_only_missing_work(db, tmp_path):
    with Store(db) as st:
        import_programs(st, _programs_file(tmp_path), "dbl")
        r = execute(st, workers=2)
        assert r["executed"] == 60 and r["labels"] == {"correct": 54, "runtime_error": 6}
        assert execute(st)["executed"] == 0
        row = st.df("SELECT * FROM labeled_programs WHERE label = 'runtime_error' LIMIT 1").iloc[0]
        assert row.error_type == "NameError" and row.error_line == 4
        assert row.executor.startswith("pad-sandbox/")
        # --rerun keeps history; the view shows one row per program
        assert execute(st, rerun=True, timeout=1.0)["executed"] == 60
        assert st.scalar("SELECT count(*) FROM executions") == 120
        assert st.scalar("SELECT count(*) FROM labeled_programs") == 60
        assert st.scalar("SELECT min(timeout_s) FROM labeled_programs") == 1.0


def test_interrupted_execute_keeps_committed_batches_and_resumes(db, tmp_path):
    with Store(db) as st:
        import_programs(st, _programs_file(tmp_path, 100), "dbl")
        calls = []

        def stop_after_first_commit(done, total):
            calls.append(done)
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            execute(st, commit_every=25, progress=stop_after_first_commit)
        assert st.scalar("SELECT count(*) FROM executions") == 25
        assert execute(st, commit_every=25)["executed"] == 75
        assert st.scalar("SELECT count(DISTINCT program_id) FROM executions") == 100
        assert st.scalar("SELECT count(*) FROM executions") == 100


def test_offline_pipeline_labels_match_in_process_execution(db):
    """Differential check: sandbox values equal plain exec values for every program that runs."""
    with Store(db) as st:
        ingest_embedded(st)
        generate_offline(st, samples=4)
        execute(st)
        df = st.df("SELECT program, status, value_num, value FROM labeled_programs")
    for prog, status, value_num, value in df.itertuples(index=False):
        g = {}
        try:
            exec(compile(prog, "<p>", "exec"), g)
            expected = g["solution"]()
        except SyntaxError:
            assert status == "syntax_error"
            continue
        except Exception:
            assert status == "runtime_error"
            continue
        if expected is None:
            assert status == "no_answer"
        elif isinstance(expected, str):
            assert value == expected
        else:
            assert value_num == pytest.approx(float(expected))


def test_pad_run_from_a_fresh_directory(tmp_path):
    res = pad_cli("run", cwd=tmp_path, check=True)
    assert "correct" in res.stdout and "wrong_answer" in res.stdout and "total" in res.stdout
    db = tmp_path / "pad.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    counts = dict(con.execute("SELECT label, count(*) FROM labeled_programs GROUP BY 1").fetchall())
    n = con.execute("SELECT (SELECT count(*) FROM problems), (SELECT count(*) FROM programs), "
                    "(SELECT count(*) FROM executions)").fetchall()[0]
    con.close()
    assert len(counts) >= 5 and counts["correct"] > sum(counts.values()) / 2
    again = pad_cli("run", cwd=tmp_path, check=True)
    assert "this run executed 0 programs" in " ".join(again.stdout.split())
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT (SELECT count(*) FROM problems), (SELECT count(*) FROM programs), "
                       "(SELECT count(*) FROM executions)").fetchall()[0] == n


def test_cli_sql_formats_stats_and_db_option(tmp_path):
    db = tmp_path / "other.duckdb"
    pad_cli("--db", db, "run", "--samples", "1", cwd=tmp_path, check=True)
    assert not (tmp_path / "pad.duckdb").exists()
    res = pad_cli("sql", "SELECT dataset, count(*) AS n FROM problems GROUP BY 1 ORDER BY 1", "--format", "json",
                  env={"PAD_DB": str(db)}, check=True)
    rows = json.loads(res.stdout)
    assert [r["dataset"] for r in rows] == ["pad-arith", "pad-coin", "pad-letters"]
    csv = pad_cli("--db", db, "sql", "SELECT 1 AS a, 'x' AS b", "--format", "csv", check=True).stdout
    assert csv.splitlines() == ["a,b", "1,x"]
    stats = pad_cli("--db", db, "stats", check=True).stdout
    assert "pad-arith" in stats and "correct" in stats
    bad = pad_cli("--db", db, "sql", "DELETE FROM problems")
    assert bad.returncode == 1 and "read-only" in bad.stderr
    assert pad_cli("--db", db, "sql", "SELEC nonsense").returncode == 1


def test_execute_programs_api_without_a_store():
    res = execute_programs(["def solution():\n    return 6 * 7", "def solution():\n    return 'x' + 1"])
    assert [r.status for r in res] == ["ok", "runtime_error"]
    assert res[0].value == 42 and res[1].error_type == "TypeError"
