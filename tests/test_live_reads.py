"""`pad sql` answered by the stage that writes the store, over its socket (pad_data.store.live_reads)."""

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import pad_cli, pad_process
from pad_data.store import live_reads
from pad_data.cli.entry import live_command
from pad_data.store import Store
from pad_data.store.writer import GroupCommitter


@pytest.fixture
def run_dir(monkeypatch):
    """A private XDG_RUNTIME_DIR for this test's sockets, here and in the `pad` it starts (short:
    a socket's path must fit in 108 bytes, which pytest's folders may not leave)."""
    path = Path(tempfile.mkdtemp(prefix="pad-run-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    yield path
    shutil.rmtree(path)


def _problems(st: Store, items: list) -> None:
    st.insert_new("problems", pd.DataFrame(items), "problem_id")


def _problem(i: int) -> dict:
    return {"problem_id": f"p{i}", "dataset": "d", "split": "train", "question": f"q{i}", "answer": float(i)}


def _committed(committer: GroupCommitter, commits: int) -> None:
    deadline = time.monotonic() + 30
    while committer.commits < commits:
        assert time.monotonic() < deadline and not committer.failed.is_set()
        time.sleep(0.01)


@pytest.mark.e2e
def test_pad_sql_is_answered_by_the_stage_that_writes_the_store(db, run_dir):
    """While a stage's committer runs, `pad sql` gets its answer from the stage (counted by the
    server), sees each commit, gets the same one-line errors and refusals as from the store
    itself, and a bad query does not stop the stage; afterwards `pad sql` reads the store again."""
    count = ["--db", db, "sql", "SELECT count(*) AS n FROM problems", "--format", "csv"]
    table = ["--db", db, "sql", "SELECT problem_id, answer FROM problems ORDER BY 1"]
    Store(db).close()
    with GroupCommitter(Store(db), _problems, interval=0.05) as committer:
        assert committer.reads.serving and Path(committer.reads.path).parent.parent == run_dir
        assert oct(os.stat(committer.reads.path).st_mode & 0o777) == oct(0o600)
        seen = []
        for i in range(3):
            committer.put(_problem(i))
            _committed(committer, i + 1)
            res = pad_process(*count)
            assert res.returncode == 0, res.stderr
            seen.append(res.stdout)
        assert seen == ["n\n1\n", "n\n2\n", "n\n3\n"]
        assert committer.reads.answered == 3
        live_table = pad_process(*table, check=True).stdout
        assert "p2" in live_table and "2.0" in live_table
        refusals = {
            "SELECT nope FROM problems": "nope",
            "DELETE FROM problems": "pad sql is read-only: DELETE statements are not allowed",
            "SELECT * FROM read_csv('/etc/passwd')": "--read-files",
        }
        for query, words in refusals.items():
            res = pad_process("--db", db, "sql", query)
            assert res.returncode == 1 and res.stdout == ""
            assert res.stderr.startswith("error: ") and words in res.stderr and len(res.stderr.splitlines()) == 1
        assert committer.reads.answered == 4 + len(refusals)
        res = pad_process("--db", db, "sql", "SELECT 1", "--format", "xml")  # an option error: the CLI's own message
        assert res.returncode == 1 and "--format: unknown format 'xml'" in res.stderr
        assert committer.reads.answered == 4 + len(refusals)
        committer.put(_problem(3))  # the stage goes on
        _committed(committer, 4)
        assert pad_process(*count, check=True).stdout == "n\n4\n"
        live_stats = pad_process("--db", db, "stats", check=True).stdout  # pad stats, too
        assert not committer.failed.is_set()
        answered, path = committer.reads.answered, Path(committer.reads.path)
    assert answered == 6 + len(refusals)
    assert pad_process("--db", db, "stats", check=True).stdout == live_stats and "d " in live_stats
    assert not path.exists()  # the stage ended: no socket, and pad sql opens the store itself
    assert pad_process(*count, check=True).stdout == "n\n4\n"
    with Store(db, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM problems") == 4
    # what the stage printed is what pad sql prints on its own (less the row committed since)
    direct = pad_process("--db", db, "sql", "SELECT problem_id, answer FROM problems WHERE problem_id < 'p3' ORDER BY 1",
                     check=True).stdout
    assert direct == live_table


def _echo(request: dict) -> dict:
    return {"code": 0, "out": json.dumps(request["args"]), "err": ""}


@pytest.mark.parametrize("args, sent", [
    (["--db", "{db}", "sql", "SELECT 1"], ["SELECT 1"]),
    (["--db={db}", "sql", "SELECT 2", "--format", "csv"], ["SELECT 2", "--format", "csv"]),
    (["sql", "SELECT 3"], ["SELECT 3"]),  # the store from $PAD_DB
    (["--db", "{db}", "stats"], []),
    (["sql", "--help"], None), (["stats", "--help"], None), (["ingest", "x.jsonl"], None), (["--db", "{db}"], None),
    (["--version", "sql", "x"], None),
])
def test_which_commands_ask_the_stage(db, run_dir, monkeypatch, args, sent):
    monkeypatch.setenv("PAD_DB", str(db))
    server = live_reads.ReadServer(db, _echo)
    try:
        reply = live_command([a.format(db=db) for a in args])
        assert (None if reply is None else json.loads(reply["out"])) == sent
    finally:
        server.close()


def test_a_dead_stages_socket_is_ignored_and_replaced_and_a_live_one_kept(db, run_dir):
    Store(db).close()
    path = Path(live_reads.socket_path(db, create=True))
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the socket file stays, with nobody listening: a stage killed with -9
    assert live_reads.ask(db, {"command": "sql", "args": ["SELECT 1"]}) is None
    assert pad_cli("--db", db, "sql", "SELECT 41 + 1 AS n", "--format", "csv", check=True).stdout == "n\n42\n"
    first = live_reads.ReadServer(db, _echo)
    try:
        assert first.serving
        second = live_reads.ReadServer(db, _echo)  # another stage on the same store: the first one answers
        assert not second.serving
        second.close()
        assert live_reads.ask(db, {"args": ["x"]})["out"] == '["x"]'
    finally:
        first.close()
    assert not path.exists()


def test_a_socket_folder_others_can_enter_is_not_used(db, run_dir):
    base = run_dir / f"pad-{os.getuid()}"
    base.mkdir(mode=0o755)
    os.chmod(base, 0o755)
    assert live_reads.socket_path(db, create=True) is None
    server = live_reads.ReadServer(db, _echo)
    assert not server.serving and not list(base.iterdir())
    server.close()


@pytest.mark.e2e
def test_polls_do_not_keep_a_writer_out_and_file_reads_open_the_store_themselves(db, run_dir, tmp_path):
    """The stage keeps its reader for other processes' queries open at most READER_AGE_S: another
    writer (here a process opening the store to write, waiting at most 5 s) gets in while polls
    go on; a `--read-files` query is run by `pad sql` itself, not on the stage's locked reader."""
    import subprocess
    import sys
    import threading

    Store(db).close()
    csv = tmp_path / "n.csv"
    csv.write_text("n\n7\n")
    with GroupCommitter(Store(db), _problems, interval=0.05) as committer:
        stop, replies = threading.Event(), []

        def poll() -> None:
            request = {"command": "sql", "args": ["SELECT count(*) AS n FROM problems", "--format", "csv"]}
            while not stop.is_set():
                replies.append(live_reads.ask(db, request))
                time.sleep(0.1)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            time.sleep(0.5)
            writer = subprocess.run([sys.executable, "-c", "import sys; from pad_data.store import Store; "
                                     "st = Store(sys.argv[1], wait=5); st.insert_new('problems', __import__('pandas')"
                                     ".DataFrame([dict(problem_id='w', dataset='d', split='train', question='w', "
                                     "answer=1.0)]), 'problem_id'); st.close()", str(db)],
                                    capture_output=True, text=True, timeout=60)
            time.sleep(0.3)
        finally:
            stop.set()
            poller.join()
        assert writer.returncode == 0, writer.stderr
        answered = [r for r in replies if r and r["code"] == 0]
        assert len(answered) >= 5 and answered[-1]["out"] == "n\n1\n"  # the writer's row, seen live
        before = committer.reads.answered
        res = pad_process("--db", db, "sql", f"SELECT n FROM '{csv}'", "--read-files", "--format", "csv", check=True)
        assert res.stdout == "n\n7\n" and committer.reads.answered == before


@pytest.mark.e2e
def test_a_large_result_is_left_to_pad_sql_itself(db, run_dir, monkeypatch):
    """More than LIVE_ROWS rows are not gathered in the stage's memory: the command runs the query."""
    from pad_data.store import render

    monkeypatch.setattr(render, "LIVE_ROWS", 2)
    Store(db).close()
    with GroupCommitter(Store(db), _problems, interval=0.05):
        small = {"command": "sql", "args": ["SELECT * FROM range(2)", "--format", "csv"]}
        assert live_reads.ask(db, small)["out"] == "range\n0\n1\n"
        large = dict(small, args=["SELECT * FROM range(3)", "--format", "csv"])
        assert live_reads.ask(db, large) == {"code": None}
        assert live_command(["--db", str(db), "sql", *large["args"]]) is None
        assert pad_process("--db", db, "sql", *large["args"], check=True).stdout == "range\n0\n1\n2\n"


def test_the_committer_answers_with_the_answer_it_is_given(db):
    """The writer knows only the protocol: what a stage answers is its ``answer(request, read)``."""
    Store(db).close()

    def answer(request: dict, read) -> dict:
        return {"code": 0, "out": f"{request['command']} {read(lambda st: st.scalar('SELECT 41 + 1'))}", "err": ""}

    with GroupCommitter(Store(db), _problems, interval=0.05, answer=answer):
        assert live_reads.ask(db, {"command": "sql", "args": []}) == {"code": 0, "out": "sql 42", "err": ""}


def _raw(path: str, payload: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        while sock.recv(1 << 16):
            pass


def test_hostile_requests_and_odd_results_never_stop_the_server(db, run_dir):
    """Garbage, deep nesting, odd option types, --help and a client that sends nothing each get
    no answer or "run it yourself", and the next query is answered; a MAP with date keys prints
    as JSON on either path."""
    from pad_data.store import live_reads as lr

    Store(db).close()
    with GroupCommitter(Store(db), _problems, interval=0.05) as committer:
        path = committer.reads.path
        for payload in (b"not json", b"[" * 100_000, b'{"command": "sql", "args": ["SELECT 1"], "width": "abc"}',
                        b'{"command": "sql", "args": [1, 2]}'):
            _raw(path, payload)
        assert live_reads.ask(db, {"command": "sql", "args": ["SELECT 1", "--help"]}) == {"code": None}
        idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        idle.connect(path)  # connects, never sends: the server waits REQUEST_S for it, then goes on
        try:
            t = time.monotonic()
            query = ["SELECT MAP {DATE '2020-01-01': 1} AS m", "--format", "json"]
            reply = live_reads.ask(db, {"command": "sql", "args": query})
            assert time.monotonic() - t < lr.REQUEST_S + 5
        finally:
            idle.close()
        assert reply == {"code": 0, "out": '[{"m": {"2020-01-01": 1}}]\n', "err": ""}
        assert committer.reads.answered == 1 and not committer.failed.is_set()
    assert pad_cli("--db", db, "sql", *query, check=True).stdout == reply["out"]


def test_a_slow_query_is_stopped_and_never_holds_up_the_commits(db, run_dir, monkeypatch):
    """A query with no answer within CLIENT_READ_S is interrupted and left to `pad sql` itself;
    the stage commits meanwhile and goes on."""
    from pad_data.store import writer

    monkeypatch.setattr(writer, "CLIENT_READ_S", 0.5)
    Store(db).close()
    with GroupCommitter(Store(db), _problems, interval=0.05) as committer:
        slow = {"command": "sql", "args": ["SELECT sum(a.range * b.range) FROM range(100000) a, range(1000000) b"]}
        t = time.monotonic()
        assert live_reads.ask(db, slow) == {"code": None}
        assert time.monotonic() - t < 5
        committer.put(_problem(0))
        _committed(committer, 1)
        assert time.monotonic() - t < 10  # the interrupted query did not hold the commit
        assert live_reads.ask(db, {"command": "sql", "args": ["SELECT count(*) AS n FROM problems", "--format",
                                                                "csv"]})["out"] == "n\n1\n"
        assert not committer.failed.is_set()


def test_a_failed_last_commit_is_raised_by_close_not_a_hang(db, run_dir):
    """The commit that fails is the one close() asked for (the stop came with it): close() raises
    its error instead of waiting forever for a second stop, and the server is gone."""
    import threading

    def commit(st: Store, items: list) -> None:
        if "bad" in items:
            raise RuntimeError("disk full")
        _problems(st, [_problem(i) for i in items])

    Store(db).close()
    committer = GroupCommitter(Store(db), commit, interval=60)
    committer.start()
    committer.put(0)  # committed at once: the first item after a quiet spell
    _committed(committer, 1)
    committer.put("bad")  # not due for a minute: it goes with the stop
    errors: list = []

    def close() -> None:
        try:
            committer.close()
        except RuntimeError as exc:
            errors.append(str(exc))

    closer = threading.Thread(target=close, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive() and errors == ["disk full"]
    assert live_reads.ask(db, {"command": "sql", "args": ["SELECT 1"]}) is None


@pytest.mark.e2e
def test_the_pad_command_asks_the_stage_before_loading_anything_heavy():
    """What a poll costs is a Python start: the entry point loads neither DuckDB, typer, rich nor pathlib."""
    import subprocess
    import sys

    code = ("import sys, pad_data.cli.entry; print(sorted(m for m in ('duckdb', 'typer', 'rich', 'pandas', 'pathlib', "
            "'pad_data.cli.commands', 'pad_data.store.store') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))).stdout
    assert out == "[]\n"
