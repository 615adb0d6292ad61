"""Stored text (programs, their output, questions, names) is untrusted: every text output shows it
as plain text, with control characters visible and Rich markup or emoji codes as written."""

import json

import pytest

from conftest import pad_cli
from pad_data.store import render
from pad_data.store import Store

QUESTION = "How many? [bold]x[/bold] :smile: \x1b[2J"
STDOUT = "\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\r[red]x[/red] :smile: \x1b[2J\x9b31m\x7f"
TEACHER = "t\x1b[31m:smile:"
PROGRAM = (f"def solution():\n    print({STDOUT!r}, end='')\n"
           "    raise ValueError('\\x1b[31mboom [red]x[/red]')\n")


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """A store with one program whose stdout, error, question and teacher hold terminal escapes."""
    folder = tmp_path_factory.mktemp("display")
    (folder / "programs.jsonl").write_text(json.dumps({"question": QUESTION, "program": PROGRAM, "answer": "2"}))
    db = folder / "pad.duckdb"
    pad_cli("--db", db, "import-programs", folder / "programs.jsonl", "--dataset", "evil", "--teacher", TEACHER,
            check=True)
    pad_cli("--db", db, "execute", "--isolation", "process", check=True)
    with Store(db, read_only=True) as st:
        assert st.scalar("SELECT stdout FROM executions") == STDOUT  # stored as the program wrote it
    return db


def _inert(text: str) -> None:
    """No byte a terminal acts on: ESC, C1 (CSI/OSC in 8 bits), BEL, CR, DEL."""
    for c in ("\x1b", "\x9b", "\x9d", "\x07", "\r", "\x7f"):
        assert c not in text, (c, text)


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_pad_sql_never_prints_a_programs_escapes(evil, fmt):
    res = pad_cli("--db", evil, "sql", "--format", fmt, "SELECT stdout, error_message FROM executions")
    assert res.returncode == 0, res.stderr
    _inert(res.stdout)
    if fmt == "json":  # escaped the JSON way: the exact value comes back
        assert json.loads(res.stdout)[0]["stdout"] == STDOUT
    else:
        assert "\\x1b]8;;http://evil.example\\x07click" in res.stdout and "\\r[red]x[/red] :smile:" in res.stdout
        assert "\\x9b31m\\x7f" in res.stdout and "\\x1b[31mboom [red]x[/red]" in res.stdout


def test_questions_names_and_errors_quoting_data_are_plain_text(evil):
    res = pad_cli("--db", evil, "sql", "SELECT question, teacher FROM labeled_programs")
    _inert(res.stdout)
    assert "[bold]x[/bold] :smile: \\x1b[2J" in res.stdout and "t\\x1b[31m:smile:" in res.stdout
    res = pad_cli("--db", evil, "stats")
    _inert(res.stdout)
    assert "t\\x1b[31m:smile:" in res.stdout
    res = pad_cli("--db", evil, "sql", "SELECT CAST(stdout AS INTEGER) FROM executions")
    assert res.returncode == 1 and res.stderr.startswith("error: ")
    _inert(res.stderr)


def test_the_running_stages_answer_is_printed_the_same_way(evil):
    """A terminal's answer from a running stage (colours on): its own styling only."""
    with Store(evil, read_only=True) as st:
        for command, args in (("sql", ["SELECT stdout, question, teacher FROM labeled_programs"]), ("stats", [])):
            reply = render.answer_live({"command": command, "args": args, "db": str(evil), "terminal": True,
                                     "width": 300}, lambda fn: fn(st))
            assert reply["code"] == 0
            out = reply["out"]
            assert "\x1b[1m" in out  # rich's own bold headers: a terminal answer
            for raw in ("\x1b]", "\x1b[2J", "\x1b[31m", "\x9b", "\x07", "\r", "\x7f"):
                assert raw not in out, raw
            assert "t\\x1b[31m:smile:" in out
