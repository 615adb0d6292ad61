import json
import re
import time
import tomllib
from pathlib import Path

import duckdb
import pytest
import typer.main
from typer.testing import CliRunner

from pad_data import api
from pad_data.cli import app as pad_app
from pad_train.cli import app as train_app

from pad_data.stages.execute import execute
from pad_data.stages.generate import generate_offline, ingest_embedded
from pad_data.stages.ingest import import_programs
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
        # everything handed over (at most 25, or what came in 0.2 s) is stored, and nothing more
        assert 1 <= calls[0] <= 25 and st.scalar("SELECT count(*) FROM executions") == calls[0]
        assert execute(st, commit_every=25)["executed"] == 100 - calls[0]
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


@pytest.mark.e2e
def test_pad_run_from_a_fresh_directory(tmp_path):
    res = pad_cli("run", cwd=tmp_path, check=True)
    assert "correct" in res.stdout and "wrong_answer" in res.stdout and "total" in res.stdout
    # each step in words (no raw dicts, no float noise); the summary title on one line; no blank stderr lines
    lines = res.stdout.splitlines()
    assert "{" not in res.stdout and not re.search(r"\d\.\d{5}", res.stdout)
    assert re.fullmatch(r"✓ ingest embedded problems \(\d+\.\d\d s\): read 319, added 319", lines[0])
    assert re.fullmatch(r"✓ execute \+ label \(\d+\.\d\d s\): executed 1,276, [\d,]+ programs/s, .*", lines[2])
    assert re.fullmatch(r"labels in pad\.duckdb \(this run executed 1,276 programs at [\d,]+/s\)", lines[3])
    assert not res.stderr.startswith("\n") and "\n\n" not in res.stderr
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


# ---------------------------------------------------------------------- option checks
@pytest.mark.parametrize("args,message", [
    (["--timeout", "nan"], "--timeout must be a number of seconds in [0.01, 3600], got nan"),
    (["--timeout", "inf"], "--timeout must be a number of seconds in [0.01, 3600], got inf"),
    (["--timeout", "1e20"], "--timeout must be a number of seconds in [0.01, 3600], got 1e+20"),
    (["--timeout", "0.000001"], "--timeout must be a number of seconds in [0.01, 3600], got 1e-06"),
    (["--workers", "0"], "--workers must be an integer in [1, 256], got 0"),
    (["--memory-mb", "1"], "--memory-mb must be an integer of MiB in [16, 1.04858e+06], got 1"),
    (["--limit", "-5"], "--limit must be an integer >= 1, got -5"),
    (["--dataset", "dbll"], "--dataset: no dataset 'dbll' (did you mean 'dbl'?)"),
    (["--origin", "teachr"], "--origin: no origin 'teachr' (did you mean 'teacher'?)"),
])
def test_execute_rejects_bad_options_before_anything_runs(db, tmp_path, args, message):
    with Store(db) as st:
        import_programs(st, _programs_file(tmp_path, 5), "dbl")
    res = pad_cli("--db", db, "execute", "--isolation", "process", *args)
    assert res.returncode == 1
    assert [line for line in res.stderr.splitlines() if not line.startswith("warning:")] == [f"error: {message}"]
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM executions").fetchall() == [(0,)]
    con.close()


@pytest.mark.parametrize("cmd,message", [
    (["run", "--timeout", "nan"], "--timeout must be"),
    (["generate", "--dataset", "d", "--model", "m", "--temperature", "nan"], "--temperature must be a number in [0, 2]"),
    (["generate", "--dataset", "d", "--model", "m", "--concurrency", "0"], "--concurrency must be an integer"),
    (["inject-errors", "--timeout", "inf"], "--timeout must be"),
    (["curate", "x", "--test", "-0.5", "--validation", "0.5"], "--test must be a number in [0, 1], got -0.5"),
    (["sql", "SELECT 1", "--max-rows", "0"], "--max-rows must be an integer >= 1"),
    (["check", "--min-correct", "nan"], "--min-correct must be a number in [0, 1], got nan"),
    (["review", "--port", "70000"], "--port must be an integer in [1, 65535], got 70000"),
])
def test_numeric_options_are_checked_in_every_command(db, cmd, message):
    Store(db).close()
    res = pad_cli("--db", db, *cmd)
    assert res.returncode == 1 and res.stderr.startswith(f"error: {message}"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_sql_is_read_only_for_files_too_and_prints_values_verbatim(db, tmp_path):
    Store(db).close()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    copy = f"COPY (SELECT 'gone' AS x) TO '{victim}'"
    for args in ([copy], ["--read-files", copy], ["--read-files", f"EXPLAIN ANALYZE {copy}"],
                 [f"ATTACH '{tmp_path / 'new.db'}'"], ["SELECT 1; SET enable_external_access = true"],
                 [f"EXPORT DATABASE '{tmp_path / 'dump'}'"], ["INSTALL httpfs"]):
        res = pad_cli("--db", db, "sql", *args, cwd=tmp_path)
        assert res.returncode == 1 and "read-only" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["pad.duckdb", "victim.txt"]
    # reading a file only with --read-files
    data = tmp_path / "d.csv"
    data.write_text("a\n41\n")
    res = pad_cli("--db", db, "sql", f"SELECT a + 1 AS b FROM '{data}'")
    assert res.returncode == 1 and "pass" not in res.stdout and "--read-files" in res.stderr
    res = pad_cli("--db", db, "sql", f"SELECT count(*) AS n FROM read_text('{victim}')")
    assert res.returncode == 1 and "--read-files" in res.stderr
    res = pad_cli("--db", db, "sql", "--read-files", f"SELECT a + 1 AS b FROM '{data}'", "--format", "csv", check=True)
    assert res.stdout.splitlines() == ["b", "42"]
    # values verbatim in every format
    values = ["total = nums[i] + prices[b]", ":x:", "[red]r[/red]", "[bold]"]
    q = "SELECT " + ", ".join(f"'{v}' AS c{i}" for i, v in enumerate(values)) + ", '[i]' AS \"[b]h\""
    table = pad_cli("--db", db, "sql", q, check=True).stdout
    for v in values + ["[i]", "[b]h"]:
        assert v in table
    assert "❌" not in table
    csv = pad_cli("--db", db, "sql", q, "--format", "csv", check=True).stdout
    assert csv.splitlines()[1] == ",".join(values + ["[i]"])
    rows = json.loads(pad_cli("--db", db, "sql", q, "--format", "json", check=True).stdout)
    assert list(rows[0].values()) == values + ["[i]"]


# ---------------------------------------------------------------------- what the CLI prints
def _invoke(app, *args):
    """`pad-train` in-process (the same code as its console script)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_output_reads_as_sentences(db, tmp_path, monkeypatch):
    """Singular counts, one-line titles, no blank line before an error, checked splits, a clear missing
    key, listed snapshots to the second, a teacher whose requests all failed, an empty report."""
    f = tmp_path / "one.jsonl"
    f.write_text(json.dumps({"question": "What is 2 plus 2?", "answer": 4, "program": "def solution():\n    return 4"}))
    bad = pad_cli("--db", db, "import-programs", f, "--dataset", "d", "--split", "tset")
    assert bad.returncode == 1 and bad.stderr == ("error: --split must be one of train, validation, test, "
                                                  "got 'tset' (did you mean 'test'?)\n")
    assert not db.exists()  # checked before the store is even opened
    r = pad_cli("--db", db, "import-programs", f, "--dataset", "d", "--split", "train")
    assert r.returncode == 0 and r.stdout == "d: read 1 program from 1 record, added 1 (new problems: 1)\n"
    r = pad_cli("--db", db, "ingest", f, "--dataset", "d", "--split", "train")
    assert r.stdout == "d/train: read 1 problem, added 0 (1 already stored)\n"
    r = pad_cli("--db", db, "execute", "--isolation", "process")
    assert re.fullmatch(r"executed 1 program in \d+\.\d\d s \([\d,]+/s, pad-sandbox/\S+\)", r.stdout.splitlines()[0])
    r = pad_cli("--db", db, "execute", "--isolation", "process")
    assert re.fullmatch(r"executed 0 programs in \d+\.\d\d s", r.stdout.splitlines()[0])
    for args, message in ((["execute", "--engine", "ray", "--rerun"], "--rerun runs on --engine local only"),
                          (["generate", "--dataset", "nope", "--model", "m", "--base-url", "http://127.0.0.1:9/v1"],
                           "no problems in dataset 'nope'; run `pad ingest` first")):
        r = pad_cli("--db", db, *args)  # raised under the progress bar: still one line, no blank one
        assert r.returncode == 1 and r.stderr.splitlines()[-1] == f"error: {message}" and "\n\n" not in r.stderr
        assert not r.stderr.startswith("\n")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for args in (["generate", "--dataset", "d", "--model", "gpt-4o-mini"], ["run", "--model", "gpt-4o-mini"]):
        t0 = time.monotonic()
        r = pad_cli("--db", db, *args)
        assert r.returncode == 1 and r.stderr.startswith("error: OPENAI_API_KEY is not set: export it") and \
            len(r.stderr.splitlines()) == 1
        assert time.monotonic() - t0 < 30  # said before any request: no retries waited for, even on a busy machine
    assert pad_cli("--db", db, "curate", "--list").stdout.startswith("no curated snapshots yet")
    a = pad_cli("--db", db, "curate", "a", "--dataset", "d")
    assert re.fullmatch(r"snapshot a created: hash (\w+), 1 program over 1 problem; (train|validation|test) 1\n"
                        r"  of 1 program in d, each filter removed: --labels 0, --origins 0, --review 0[^\n]*\n", a.stdout)
    old = pad_cli("--db", db, "curate", "b", "--datasets", "d")  # the deprecated spelling still works
    assert old.returncode == 0 and old.stderr.startswith("warning: --datasets is deprecated: use --dataset")
    assert old.stdout.split("hash ")[1][:16] == a.stdout.split("hash ")[1][:16]
    bad = pad_cli("--db", db, "curate", "c", "--dataset", "dd")
    assert bad.stderr == "error: --dataset: no dataset 'dd' (did you mean 'd'?)\n"
    listing = pad_cli("--db", db, "curate", "--list").stdout
    assert re.search(r"│ a +│ program │ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d │ 1 +│ 1 +│ \w+ 1 +│", listing), listing
    assert "{" not in listing
    with Store(db) as st, st.transaction():
        st.con.execute("INSERT INTO generation_failures (gen_key, problem_id, sample_idx, model, error) "
                       "VALUES ('k1', 'p', 0, 'ghost-teacher', 'APIConnectionError')")
    with Store(db, read_only=True) as st:
        assert ("ghost-teacher", "teacher", 0, 0, 0, None, 1) in api.stats(st)["teachers"]
    assert re.search(r"│ ghost-teacher +│ teacher +│ 0 +│ 0 +│ 0 +│ +│ 1 +│", pad_cli("--db", db, "stats").stdout)
    r = _invoke(train_app, "--db", db, "report")
    assert r.exit_code == 0 and r.stdout == f"no evaluation runs in {db} yet (run `pad-train eval`)\n"
    r = _invoke(train_app, "--db", db, "eval", "--model", "m", "--dataset", "d", "--split", "tset")
    assert r.exit_code == 1 and r.stderr.startswith("error: --split must be one of train, validation, test")


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_rows() -> dict[str, list[str]]:
    """The README's CLI table: ``{"pad ingest": [first cell, ...]}`` (a row may show a command twice)."""
    lines = README.read_text().splitlines()
    start = lines.index("| command | what it does | Python (`from pad_data import api`) |")
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cell = re.split(r"(?<![\\])\| ", line[2:], maxsplit=1)[0]
        for usage in re.findall(r"`([^`]+)`", cell):
            words = usage.split()
            rows.setdefault(f"{words[0]} {words[1]}", []).append(cell)
    return rows


def test_readme_cli_table_matches_the_commands_and_their_options():
    rows = _readme_rows()
    for prog, app in (("pad", pad_app), ("pad-train", train_app)):
        group = typer.main.get_command(app)
        commands = {name: cmd for name, cmd in group.commands.items() if not cmd.hidden}
        assert {r.split()[1] for r in rows if r.split()[0] == prog} == set(commands), prog
        for name, cmd in commands.items():
            cell = " ".join(rows[f"{prog} {name}"])
            named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", cell))
            params = [p for p in cmd.params if not getattr(p, "hidden", False)]
            options = {o for p in params for o in p.opts if o.startswith("--")}
            negations = {o for p in params for o in getattr(p, "secondary_opts", [])}  # --no-wait of --wait/--no-wait
            assert named - negations == options, f"{prog} {name}: README names {sorted(named - negations - options)} " \
                                     f"that do not exist, " \
                                     f"leaves out {sorted(options - named)}"
            for p in cmd.params:
                if p.param_type_name == "argument":
                    assert p.name.upper() in cell, f"{prog} {name}: argument {p.name.upper()} not in the README"
    assert "Global option `--db PATH`" in README.read_text()


def test_pyproject_license_is_an_spdx_string_and_the_extras_hold_trl_and_nbconvert():
    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # a table ({text = ...}) makes setuptools warn on every install
    extras = {k: " ".join(v) for k, v in project["optional-dependencies"].items()}
    assert "trl" in extras["train"] and "nbconvert" in extras["test"] and "ipywidgets" in extras["test"]


# ---------------------------------------------------------------------- a store read while a stage writes it
def _slow_programs(db, n):
    """n programs of a few milliseconds each (a loop), in a fresh store."""
    import pandas as pd

    from pad_data.store import problem_id, program_id

    pid = problem_id("loops", "Sum the numbers below 20000.")
    progs = [f"def solution():\n    t = {i % 2}\n    for i in range(20000):\n        t += i\n    return t\n"
             for i in range(n)]
    with Store(db) as st, st.transaction():
        st.insert_new("problems", pd.DataFrame([{"problem_id": pid, "dataset": "loops", "split": "train",
                                                 "question": "Sum the numbers below 20000.",
                                                 "answer": float(sum(range(20000)))}]), "problem_id")
        st.insert_new("programs", pd.DataFrame([{"program_id": program_id(pid, p, "t", i), "problem_id": pid,
                                                 "origin": "import", "teacher": "t", "sample_idx": i, "program": p}
                                                for i, p in enumerate(progs)]), "program_id")


@pytest.mark.e2e
def test_store_is_readable_while_a_stage_runs(db):
    """`pad execute` runs in one process; meanwhile `pad sql`, `pad stats` and the review app's
    data layer read the store from others, get answers (never "busy"), and see counts grow."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pad_data import review

    n = 1000
    _slow_programs(db, n)
    exe = str(Path(sys.executable).with_name("pad"))
    stage = subprocess.Popen([exe, "--db", str(db), "execute", "--isolation", "process", "--workers", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    polls = {"sql": [exe, "--db", str(db), "sql", "SELECT count(*) AS n FROM executions", "--format", "csv"],
             "stats": [exe, "--db", str(db), "stats"]}
    started, cli, seen = [], None, []
    try:
        while stage.poll() is None:
            # one CLI poll at a time, sql then stats, four in all (each costs a second of CPU)
            if (cli is None or cli[1].poll() is not None) and len(started) < 4:
                kind = "sql" if len(started) % 2 == 0 else "stats"
                cli = (kind, subprocess.Popen(polls[kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
                started.append(cli)
            with review.reading(str(db)) as st:  # the Python API and the review app's reads, from here
                seen.append(st.scalar("SELECT count(*) FROM executions"))
                if len(seen) % 5 == 1:
                    ov = review.overview(st)
                    assert int(ov["labels"].loc[ov["labels"].label != "(not executed)", "programs"].sum()) == seen[-1]
            time.sleep(0.2)
        out, err = stage.communicate(timeout=60)
        answers = [(kind, *proc.communicate(timeout=60), proc.returncode) for kind, proc in started]
    finally:
        for proc in [stage] + [p for _, p in started]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert stage.returncode == 0, err
    assert f"executed {n:,} programs" in out
    for kind, stdout, stderr, code in answers:  # every poll started mid-run was answered
        assert code == 0, (kind, stderr)
        assert ("loops" in stdout) if kind == "stats" else (0 <= int(stdout.splitlines()[1]) <= n)
    assert {kind for kind, *_ in answers} == {"sql", "stats"}
    counts = [int(stdout.splitlines()[1]) for kind, stdout, _, _ in answers if kind == "sql"]
    assert counts == sorted(counts) and seen == sorted(seen)  # counts only grow
    assert any(0 < c < n for c in seen + counts), (seen, counts)  # read mid-run
    with Store(db, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM program_labels") == n
        assert dict(st.con.execute("SELECT label, count(*) FROM labeled_programs GROUP BY 1").fetchall()) == \
            {"correct": n // 2, "wrong_answer": n // 2}


@pytest.mark.e2e
def test_pad_sql_and_stats_start_without_the_stages():
    """What one polls while a stage runs starts light: no pandas, no stages; the API stays whole."""
    import subprocess
    import sys

    code = ("import sys, pad_data.cli; heavy = sorted(m for m in ('pandas', 'pad_data.api', 'pad_data.stages.execute') "
            "if m in sys.modules); print(heavy)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    import pad_data
    from pad_data import api

    assert list(pad_data.API_NAMES) == api.__all__
    assert pad_data.execute is api.execute and pad_data.Store is api.Store
