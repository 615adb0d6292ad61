"""The memory budget (--memory-limit, $PAD_MEMORY_LIMIT): curate and export spill to disk beside
the store under a budget smaller than their data, and give what an unconstrained run gives."""

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pad_data.rules.options import MIN_MEMORY, OptionError, memory_limit
from pad_data.store import Store

from conftest import pad_cli

PROBLEMS = 4_000
PER_PROBLEM = 10
FILLER = 5_000  # characters of docstring per program: ~200 MB of program text in all


def _big_store(db: Path) -> None:
    """PROBLEMS problems x PER_PROBLEM programs of ~5 KB (exact and renamed duplicates among
    them, so dedup and K per problem matter; 1 in 10 wrong), executed, in SQL."""
    with Store(db) as st:
        with st.transaction():
            st.con.execute("""INSERT INTO problems (problem_id, dataset, split, question, answer)
                SELECT substr(sha256('p' || i), 1, 16), CASE WHEN i % 3 = 0 THEN 'svamp' ELSE 'gsm8k' END,
                       CASE WHEN i % 11 = 0 THEN 'test' ELSE 'train' END,
                       'Question ' || i || ': ' || repeat('a long story about apples. ', 20), i % 97
                FROM range(?) t(i)""", [PROBLEMS])
            # sample k of problem i: k 0-1 the same text, k 2-3 renamed copies of it, the others distinct;
            # the filler is a docstring (AST dedup drops it; the shortest is preferred with it)
            st.con.execute(f"""INSERT INTO programs (program_id, problem_id, origin, teacher, sample_idx, program)
                SELECT substr(sha256('g' || i), 1, 16), substr(sha256('p' || (i // {PER_PROBLEM})), 1, 16),
                       'teacher', 't' || (i % 2), k::INTEGER,
                       'def solution():' || chr(10) || '    ' || $doc || repeat('Work it out step by step. ', {FILLER // 26})
                       || repeat('!', k) || $doc || chr(10) || '    ' || (CASE WHEN k IN (2, 3) THEN 'y' ELSE 'x' END)
                       || ' = ' || ((i // {PER_PROBLEM}) % 97) || (CASE WHEN k < 4 THEN '' ELSE ' + ' || k || ' - ' || k END)
                       || chr(10) || '    return ' || (CASE WHEN k IN (2, 3) THEN 'y' ELSE 'x' END) || chr(10)
                FROM (SELECT i, i % {PER_PROBLEM} AS k FROM range($n) t(i))""",
                           {"doc": '"""', "n": PROBLEMS * PER_PROBLEM})
        with st.transaction():
            st.add_executions(st.df("""SELECT p.program_id, 'ok' AS status,
                    CASE WHEN hash(p.program_id) % 10 = 0 THEN 'wrong_answer' ELSE 'correct' END AS label,
                    NULL AS value, pr.answer AS value_num, 'int' AS value_type, NULL AS error_type,
                    NULL AS error_message, NULL AS error_line, '' AS stdout, 0.1 AS duration_ms, 2.0 AS timeout_s,
                    512 AS memory_mb, 'test' AS executor, TIMESTAMP '2026-12-01' AS executed_at,
                    p.problem_id, pr.dataset, p.origin, p.teacher, NULL::BIGINT AS prev_seq
                FROM programs p JOIN problems pr USING (problem_id)"""))


def _spill_files(folder: Path) -> set[str]:
    """DuckDB's spill files anywhere under ``folder``."""
    return {str(f) for f in folder.rglob("duckdb_temp_*")}


def _run_watching(folder: Path, *args: object) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``pad *args`` in a subprocess, and every DuckDB spill file seen under ``folder`` meanwhile."""
    seen: set[str] = set()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("pad")), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(_spill_files(folder))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=300)
    done.set()
    watcher.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen


@pytest.mark.e2e
def test_curate_and_export_spill_under_a_small_budget_and_equal_an_unlimited_run(tmp_path):
    built = tmp_path / "built.duckdb"
    _big_store(built)
    results = {}
    for run, limit in (("small", f"{MIN_MEMORY // 2**20}MiB"), ("large", "60%")):
        folder = tmp_path / run
        folder.mkdir()
        db = folder / "pad.duckdb"
        shutil.copy(built, db)
        curated, spilled = _run_watching(folder, "--db", db, "curate", "snap", "--memory-limit", limit)
        assert curated.returncode == 0, curated.stderr
        exported, _ = _run_watching(folder, "--db", db, "export", "snap", "--format", "parquet",
                                    "--out", folder / "out", "--memory-limit", limit)
        assert exported.returncode == 0, exported.stderr
        rows = {split: pq.read_table(folder / "out" / f"{split}.parquet") for split in ("train", "validation", "test")}
        results[run] = (curated.stdout, rows, spilled)
        assert not _spill_files(folder)  # spill files are gone afterwards
    small, large = results["small"], results["large"]
    assert small[2], "the small budget should have made curate spill to disk beside the store"
    assert not large[2]
    assert small[0] == large[0]  # the same snapshot: counts and content hash
    for split in ("train", "validation", "test"):
        assert small[1][split].equals(large[1][split]), split
    total = sum(t.num_rows for t in small[1].values())
    assert f"{total:,} programs over" in small[0] and 3 * PROBLEMS < total <= 4 * PROBLEMS  # K = 4 per problem


def test_memory_limit_option_and_env_are_checked_with_one_line_errors(tmp_path):
    db = tmp_path / "pad.duckdb"
    bad = pad_cli("--db", db, "curate", "snap", "--memory-limit", "lots")
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "error: --memory-limit must be a size such as 512MB, 2GB, 1.5GiB or 40% (of RAM), got 'lots'"]
    low = pad_cli("--db", db, "export", "snap", "--out", tmp_path / "o", env={"PAD_MEMORY_LIMIT": "64MB"})
    assert low.returncode == 1 and "must be at least 256MiB" in low.stderr and len(low.stderr.splitlines()) == 1
    assert not db.exists()  # checked before the store is opened
    os.environ.pop("PAD_MEMORY_LIMIT", None)
    assert memory_limit("1GB") == 10**9 and memory_limit("1GiB") == 2**30
    with pytest.raises(OptionError, match="PAD_MEMORY_LIMIT"):
        os.environ["PAD_MEMORY_LIMIT"] = "0%"
        try:
            memory_limit()
        finally:
            del os.environ["PAD_MEMORY_LIMIT"]
    with Store(db, memory="300MB") as st:
        assert st.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "286.1 MiB"
        with st.capped("2GB"):  # a cap never raises the budget
            assert st.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] == "286.1 MiB"
        assert st.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] == f"{db}.tmp"
