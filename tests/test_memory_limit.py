"""The memory budget (--memory-limit, $PAD_MEMORY_LIMIT): every command takes it and every store
and scratch database a stage opens is capped at it; curate, export, execute and vote under a
budget smaller than their data give what an unconstrained run gives."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import pyarrow.parquet as pq
import pytest
import typer

from pad_data import review as rv
from pad_data.cli import app as pad_app
from pad_data.rules.options import MEMORY_ENV, MIN_MEMORY, OptionError, memory_limit, size_bytes
from pad_data.store import Store
from pad_data.store.render import MEMORY_HELP, answer_live
from pad_data.store.writer import GroupCommitter

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


def _under_each_budget(tmp_path: Path, build: Callable[[Path], None]) -> Iterator[tuple[str, str, Path, Path]]:
    """A copy of the store ``build`` writes under the smallest budget, then under 60% of RAM:
    ``(run, budget, its folder, the store)``."""
    built = tmp_path / "built.duckdb"
    build(built)
    for run, limit in (("small", f"{MIN_MEMORY // 2**20}MiB"), ("large", "60%")):
        folder = tmp_path / run
        folder.mkdir()
        db = folder / "pad.duckdb"
        shutil.copy(built, db)
        yield run, limit, folder, db


def _spill_files(folder: Path) -> set[str]:
    """DuckDB's spill files anywhere under ``folder``."""
    return {str(f) for f in folder.rglob("duckdb_temp_*")}


def _run_watching(folder: Path, *args: object, peak: list[int] | None = None
                  ) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``pad *args`` in a subprocess, and every DuckDB spill file seen under ``folder`` meanwhile;
    ``peak`` gets the process's peak RSS in bytes (VmHWM, as last read while it ran)."""
    seen: set[str] = set()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("pad")), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(_spill_files(folder))
            if peak is not None:
                with contextlib.suppress(OSError):
                    hwm = [line for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                           if line.startswith("VmHWM:")]
                    peak[:] = [max(peak + [int(hwm[0].split()[1]) * 1024])] if hwm else peak
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate(timeout=300)
    done.set()
    watcher.join()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen


@pytest.mark.e2e
def test_curate_and_export_spill_under_a_small_budget_and_equal_an_unlimited_run(tmp_path):
    results = {}
    for run, limit, folder, db in _under_each_budget(tmp_path, _big_store):
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


def _refine_store(db: Path) -> None:
    """:func:`_big_store`, with half its wrong programs (those with ``hash % 10 = 0``: half of them
    ``% 20 = 0``) linked to a correct program of their problem as their parent (an injected
    variant's link), so pairs come from links and siblings."""
    _big_store(db)
    with Store(db) as st, st.transaction():
        st.con.execute("""UPDATE programs p SET parent_program_id = c.parent FROM (
                              SELECT w.program_id, min(c.program_id) AS parent FROM program_labels w
                              JOIN program_labels c ON c.problem_id = w.problem_id AND c.label = 'correct'
                              WHERE w.label = 'wrong_answer' AND hash(w.program_id) % 20 = 0 GROUP BY 1) c
                          WHERE p.program_id = c.program_id""")


@pytest.mark.e2e
def test_refine_curation_streams_under_a_small_budget_and_equals_an_unlimited_run(tmp_path):
    """Refine pairs are built in a scratch database, not in memory: under the smallest budget the
    process stays far below the ~200 MB of program text its candidates hold (reading them into
    pandas took ~1.5 GB here), spills, and stores the rows an unlimited run stores."""
    results = {}
    for run, limit, folder, db in _under_each_budget(tmp_path, _refine_store):
        peak: list[int] = []
        curated, spilled = _run_watching(folder, "--db", db, "curate", "fix", "--task", "refine", "--siblings",
                                         "--memory-limit", limit, peak=peak)
        assert curated.returncode == 0, curated.stderr
        with duckdb.connect(str(db), read_only=True) as con:
            rows = con.sql("SELECT * FROM refine_examples WHERE name = 'fix' ORDER BY rowid").to_arrow_table()
            linked = con.execute("SELECT count(*) FROM refine_examples r JOIN programs f "
                                 "ON f.program_id = r.faulty_program_id AND f.parent_program_id = r.program_id"
                                 ).fetchall()[0][0]
        results[run] = (curated.stdout, rows, spilled, peak[0], linked)
        assert not _spill_files(folder) and not list(folder.glob(".pad-refine-*"))
    small, large = results["small"], results["large"]
    assert small[0] == large[0] and small[1].equals(large[1])  # the same counts, hash and rows, in order
    assert small[2], "the small budget should have made refine curation spill beside the store"
    assert small[3] < 3 * MIN_MEMORY, f"peak RSS {small[3] / 2**20:.0f} MiB under a {MIN_MEMORY // 2**20} MiB budget"
    wrong = small[1].num_rows
    assert 0.08 * PROBLEMS * PER_PROBLEM < wrong <= 0.12 * PROBLEMS * PER_PROBLEM  # ~1 in 10 programs is wrong
    assert 0.3 * wrong < small[4] < 0.7 * wrong  # half the pairs are linked ones: the parent comes first
    assert set(small[1].column("label").to_pylist()) == {"wrong_answer"}
    assert all(f.startswith("returned ") for f in small[1].column("feedback").to_pylist())


def _completions_file(path: Path, records: int) -> None:
    """``records`` JSONL records of 4 long samples each: half bare programs (which DuckDB reads
    itself), half a program fenced in prose (which Python extracts)."""
    steps = "    # work it out one step at a time, writing each quantity down before using it\n" * 4
    with open(path, "w") as f:
        for i in range(records):
            bodies = [f"def solution():\n{steps}    apples = {i}\n    pears = {k}\n    return apples + pears\n"
                      for k in range(4)]
            f.write(json.dumps({"question": f"Question {i}: " + "Sam sells apples and pears on Sunday. " * 8,
                                "answer": f"#### {i}", "programs": [b if k % 2 == 0 else f"Here:\n```python\n{b}```\n"
                                                                   f"It returns {i + k}." for k, b in enumerate(bodies)]})
                    + "\n")


@pytest.mark.e2e
def test_import_programs_under_the_smallest_budget_equals_an_unlimited_run(tmp_path):
    # a 120 MB file of long completions, half of them extracted in Python: its read took 64 MB
    # chunks and sorted on 2 threads, out of memory under the smallest budget (and at 10M
    # realistic programs under the default one)
    src = tmp_path / "programs.jsonl"
    _completions_file(src, 60_000)
    got = {}
    for run, limit in (("small", f"{MIN_MEMORY // 2**20}MiB"), ("large", "60%")):
        (tmp_path / run).mkdir()
        db = tmp_path / run / "pad.duckdb"
        res, _ = _run_watching(tmp_path / run, "--db", db, "import-programs", src, "--dataset", "d",
                               "--program-field", "programs", "--memory-limit", limit)
        assert res.returncode == 0, res.stderr
        with duckdb.connect(str(db), read_only=True) as con:
            got[run] = con.sql("SELECT * EXCLUDE (created_at) FROM programs ORDER BY rowid").to_arrow_table()
    assert got["small"].num_rows == 240_000 and got["small"].equals(got["large"])
    fenced = got["small"].slice(1, 1).to_pylist()[0]  # the second sample: extracted from its prose
    assert fenced["program"].startswith("def solution():") and fenced["completion"].startswith("Here:")


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


BUDGET = "300MB"
BAD = "error: --memory-limit must be a size such as 512MB, 2GB, 1.5GiB or 40% (of RAM), got 'lots'"
# each command that opens the store, with the arguments it needs to get as far as opening it
COMMANDS = {
    "ingest": ["x.jsonl", "--dataset", "d"], "import-programs": ["x.jsonl", "--dataset", "d"],
    "generate": ["--dataset", "d", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"],
    "synthesize": ["--from", "a", "--dataset", "b", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"],
    "execute": [], "vote": [], "check": [], "inject-errors": [], "curate": ["snap"],
    "export": ["snap", "--out", "o"], "review": ["--port", "1"], "sql": ["SELECT 1"], "stats": [], "run": [],
}


def _shown(n: int | str) -> str:
    """A budget as DuckDB's current_setting('memory_limit') shows it."""
    with duckdb.connect() as con:
        con.execute(f"SET memory_limit = '{n if isinstance(n, int) else size_bytes(n)}B'")
        return con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]


def test_every_command_that_opens_the_store_takes_the_memory_option(tmp_path):
    group = typer.main.get_command(pad_app)
    with_option = {name for name, cmd in group.commands.items()
                   if any("--memory-limit" in p.opts for p in cmd.params)}
    assert set(group.commands) - with_option == {"labels"}  # which opens nothing
    for name in with_option:
        option, = [p for p in group.commands[name].params if "--memory-limit" in p.opts]
        assert option.help == MEMORY_HELP and option.envvar == MEMORY_ENV, name
    db = tmp_path / "pad.duckdb"
    for name, args in COMMANDS.items():
        bad = pad_cli("--db", db, name, *args, "--memory-limit", "lots", cwd=tmp_path)
        assert (bad.returncode, bad.stderr.strip().splitlines()) == (1, [BAD]), (name, bad.stderr)
        low = pad_cli("--db", db, name, *args, cwd=tmp_path, env={MEMORY_ENV: "64MB"})
        assert low.returncode == 1 and "must be at least 256MiB" in low.stderr, (name, low.stderr)
        assert not db.exists(), name  # checked before the store is opened


@pytest.fixture
def opened(monkeypatch):
    """Every store opened meanwhile, as ``(its budget, DuckDB's memory_limit)``, and every other
    DuckDB database connected to, as ``(path, its configured memory_limit)``."""
    stores: list[tuple[int, str]] = []
    others: list[tuple[str, str | None]] = []
    store_open, connect = Store._open, duckdb.connect

    def recording_open(self):
        store_open(self)
        stores.append((self.memory, self._con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]))

    def recording_connect(database=":memory:", *args, config=None, **kw):
        con = connect(database, *args, config=config or {}, **kw)
        if not str(database).endswith("pad.duckdb"):  # the store: Store._open sets its cap
            others.append((str(database), (config or {}).get("memory_limit")))
        return con

    monkeypatch.setattr(Store, "_open", recording_open)
    monkeypatch.setattr(duckdb, "connect", recording_connect)
    return stores, others


def test_every_stage_opens_its_store_and_scratch_databases_within_the_budget(tmp_path, opened):
    stores, others = opened
    db = tmp_path / "pad.duckdb"
    budget, shown, half = memory_limit(BUDGET), _shown(BUDGET), f"{memory_limit(BUDGET) // 2}B"
    runs = {"run": ["run", "--samples", "1"], "execute": ["execute", "--rerun", "--limit", "40"],
            "inject-errors": ["inject-errors", "--limit", "5"], "vote": ["vote"], "check": ["check"],
            "curate": ["curate", "snap"], "export": ["export", "snap", "--out", tmp_path / "out"],
            "sql": ["sql", "SELECT 1"], "stats": ["stats"]}
    for name, args in runs.items():
        stores.clear()
        others.clear()
        env = {MEMORY_ENV: BUDGET} if name == "vote" else {}  # the environment, or the option
        res = pad_cli("--db", db, *args, *([] if env else ["--memory-limit", BUDGET]), env=env, cwd=tmp_path)
        assert res.returncode == 0, (name, res.stderr)
        assert stores, name
        for memory, setting in stores:
            # the stage's budget, or a cap below it (execute gives its scratch database half)
            assert memory == budget and (setting == shown or size_bytes(setting.replace(" ", "")) < budget), \
                (name, memory, setting)
        for path, cap in others:
            assert cap is not None and memory_limit_bytes(cap) <= budget, (name, path, cap)
        if name in ("run", "execute", "inject-errors"):  # the programs to run, copied beside the store
            assert [cap for path, cap in others if path.endswith("pending.duckdb")] == [half, half], (name, others)
            assert any(setting == _shown(budget // 2) for _, setting in stores), name  # the store meanwhile


def memory_limit_bytes(cap: str) -> int:
    """A DuckDB memory_limit value pad sets (``123B``) in bytes."""
    assert cap.endswith("B") and cap[:-1].isdigit(), cap
    return int(cap[:-1])


def test_the_review_app_and_a_stage_s_readers_keep_to_the_budget(tmp_path, monkeypatch):
    db = tmp_path / "pad.duckdb"
    pad_cli("--db", db, "run", "--samples", "1", check=True)
    from pad_data.review import server

    started = []

    class Server:  # the Streamlit child `pad review` would start: what it is given
        def __init__(self, command, env, **kw):
            started.append(env)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(server.subprocess, "Popen", Server)
    with socket.socket() as sock:  # a port free now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert pad_cli("--db", db, "review", "--port", port, "--memory-limit", BUDGET).returncode == 0
    assert started[0][MEMORY_ENV] == f"{memory_limit(BUDGET)}B"
    monkeypatch.setenv(MEMORY_ENV, BUDGET)  # as `pad review --memory-limit` passes it to the app
    with rv.reading(str(db)) as st:
        assert st.memory == memory_limit(BUDGET)
    assert rv.run_sql(str(db), "SELECT current_setting('memory_limit') AS m")["m"][0] == _shown(BUDGET)
    monkeypatch.delenv(MEMORY_ENV)
    assert rv.run_sql(str(db), "SELECT current_setting('memory_limit') AS m", memory="1GB")["m"][0] == _shown("1GB")

    setting = "SELECT current_setting('memory_limit')"
    with Store(db, memory="1GB") as store, GroupCommitter(store, lambda st, batch: None) as committer:
        # the stage's own reads: its budget; another process's `pad sql`: half of it
        assert committer.submit(lambda st: (st.memory, st.scalar(setting))).result() == (10**9, _shown("1GB"))
        assert committer.read_for_client(lambda st: st.scalar(setting)) == _shown(10**9 // 2)

    def read(fn):
        with Store(db, read_only=True, memory="1GB") as st:
            return fn(st)

    def live(*args):
        return answer_live({"command": "sql", "args": [f"{setting} AS m", "--format", "csv", *args]}, read)

    assert live()["out"] == f"m\n{_shown('1GB')}\n"
    # a budget of its own: the command runs the query itself (the stage's reader cannot be SET)
    assert live("--memory-limit", BUDGET) == live("--memory-limit", "lots") == {"code": None}
    sql = pad_cli("--db", db, "sql", f"{setting} AS m", "--format", "csv", "--memory-limit", BUDGET)
    assert sql.stdout == f"m\n{_shown(BUDGET)}\n"


VOTED_PROBLEMS = 5_000
SAMPLES = 4


def _unexecuted_store(db: Path) -> None:
    """VOTED_PROBLEMS problems without gold x SAMPLES programs of ~10 KB (~200 MB of text: more
    than the smallest budget), none executed; three samples of each problem agree, one does not."""
    with Store(db) as st, st.transaction():
        st.con.execute("""INSERT INTO problems (problem_id, dataset, split, question)
            SELECT substr(sha256('p' || i), 1, 16), 'synth', 'train', 'Question ' || i || '?' FROM range(?) t(i)""",
                       [VOTED_PROBLEMS])
        st.con.execute(f"""INSERT INTO programs (program_id, problem_id, origin, teacher, sample_idx, program)
            SELECT substr(sha256('g' || i), 1, 16), substr(sha256('p' || (i // {SAMPLES})), 1, 16), 'teacher', 't',
                   (i % {SAMPLES})::INTEGER,
                   'def solution():' || chr(10) || '    ' || $doc || repeat('Work it out step by step. ', 400) || $doc
                   || chr(10) || '    return ' || ((i // {SAMPLES}) % 97) || ' + ' || (i % {SAMPLES} = 3)::INTEGER
                   || chr(10)
            FROM range($n) t(i)""", {"doc": '"""', "n": VOTED_PROBLEMS * SAMPLES})


@pytest.mark.e2e
def test_execute_and_vote_under_the_smallest_budget_equal_an_unlimited_run(tmp_path):
    results = {}
    for run, limit, folder, db in _under_each_budget(tmp_path, _unexecuted_store):
        executed = pad_cli("--db", db, "execute", "--isolation", "process", "--memory-limit", limit, check=True)
        voted = pad_cli("--db", db, "vote", "--memory-limit", limit, check=True)
        with Store(db, read_only=True) as st:
            labels = st.df("SELECT program_id, label, status, error_type, value, value_num FROM labeled_programs "
                           "ORDER BY program_id")
            consensus = st.df("SELECT problem_id, answer, votes, voters, agreement FROM consensus ORDER BY 1")
        results[run] = (executed.stdout.splitlines()[1:], voted.stdout, labels, consensus)
        assert not list(folder.glob(".pad-execute-*")) and not _spill_files(folder)  # scratch files are gone
    small, large = results["small"], results["large"]
    assert small[0] == large[0] and small[1] == large[1]  # the same label counts and vote summary
    assert small[2].equals(large[2]) and small[3].equals(large[3])
    assert len(small[2]) == VOTED_PROBLEMS * SAMPLES and set(small[2]["label"]) == {"correct", "wrong_answer"}
    assert len(small[3]) == VOTED_PROBLEMS and (small[3]["votes"] == SAMPLES - 1).all()


def _parent(_: int) -> int:
    return os.getppid()


def test_a_stage_s_worker_processes_are_not_forks_of_the_stage():
    # a fork of a stage holding DuckDB's buffers keeps them alive in every worker (at 10M, 3 GB
    # each): the workers come from a fork server, and give what the work done in order gives
    from pad_data.stages.curate.dedup import analyze
    from pad_data.stages.parallel import PARALLEL_FROM, mapper, repeat

    programs = [f"def solution():\n    x{i % 7} = {i}\n    return x{i % 7} * 2\n" for i in range(PARALLEL_FROM)]
    with mapper(len(programs)) as run:
        parents = set(run(_parent, range(len(programs))))
        analyzed = run(analyze, programs, repeat("ast", len(programs)))
    assert os.getpid() not in parents and len(parents) == 1
    assert analyzed == [analyze(p, "ast") for p in programs]


UNGUARDED = """
import sys
from pad_data.stages.parallel import PARALLEL_FROM, mapper
print("top level ran", flush=True)  # a script with no __main__ guard, as a user's may be
with mapper(PARALLEL_FROM) as run:
    out = run(len, ["ab"] * PARALLEL_FROM)
print("mapped", sum(out), flush=True)
"""


def test_a_user_script_is_not_run_again_by_the_workers_and_a_long_tmpdir_maps_in_process(tmp_path):
    from pad_data.stages.parallel import PARALLEL_FROM

    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("top level ran") == 1 and f"mapped {2 * PARALLEL_FROM}" in res.stdout
    # the fork server's socket path too long for AF_UNIX: the work runs in this process instead
    deep = tmp_path / ("d" * 100) / ("e" * 60)
    deep.mkdir(parents=True)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env=dict(env, TMPDIR=str(deep)))
    assert res.returncode == 0 and f"mapped {2 * PARALLEL_FROM}" in res.stdout, res.stderr
