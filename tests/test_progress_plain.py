"""Progress when stderr is not a terminal (a log file, CI): plain lines, at most one every
PAD_PROGRESS_INTERVAL seconds, and one at the end."""
import json
import re

import pytest

from pad_data.cli.commands import PlainProgress, progress_interval

from conftest import pad_cli

LINE = re.compile(r"^executing: [\d,]+/[\d,]+ \(\d+%\)(, [\d,.]+/s)?(, ~[\d.]+ (s|min|h) left|, done in [\d.]+ (s|min|h))?$")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Stream:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines += text.splitlines()

    def flush(self) -> None:
        pass


def test_plain_progress_prints_at_most_every_interval_and_a_last_line():
    clock, out = _Clock(), _Stream()
    p = PlainProgress("executing", interval=10, stream=out, clock=clock)
    p(0, 100_000)                      # the first report prints at once
    for t, done in ((4, 10_000), (9.9, 20_000), (10.5, 34_000), (15, 50_000)):
        clock.now = t
        p(done, 100_000)
    clock.now = 29
    p(100_000, 100_000)
    p.finish()
    p.finish()                         # only one last line
    assert out.lines == ["executing: 0/100,000 (0%)",
                         "executing: 34,000/100,000 (34%), 3,238/s, ~20 s left",
                         "executing: 100,000/100,000 (100%), 3,448/s",
                         "executing: 100,000/100,000 (100%), 3,448/s, done in 29 s"]


def test_plain_progress_unknown_total_extra_info_and_nothing_reported():
    clock, out = _Clock(), _Stream()
    p = PlainProgress("training", interval=0, stream=out, clock=clock)
    p(5, None, "loss 1.250")
    clock.now = 200
    p(15, 0, "loss 0.900")
    assert out.lines == ["training: 5, loss 1.250", "training: 15, 0.05/s, loss 0.900"]
    silent = PlainProgress("idle", interval=0, stream=out, clock=clock)
    silent.finish()
    assert len(out.lines) == 2


def test_progress_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv("PAD_PROGRESS_INTERVAL", raising=False)
    assert progress_interval() == 10
    monkeypatch.setenv("PAD_PROGRESS_INTERVAL", "0.5")
    assert progress_interval() == 0.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("PAD_PROGRESS_INTERVAL", bad)
        with pytest.raises(ValueError, match="PAD_PROGRESS_INTERVAL must be a number of seconds"):
            progress_interval()


def test_pad_execute_to_a_file_prints_plain_progress_lines(db, tmp_path):
    f = tmp_path / "progs.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"Double {i}?", "answer": 2 * i,
                                       "program": f"def solution():\n    return {i} * 2"}) for i in range(300)))
    pad_cli("--db", db, "import-programs", f, "--dataset", "dbl", check=True)
    res = pad_cli("--db", db, "execute", "--isolation", "process", env={"PAD_PROGRESS_INTERVAL": "0"}, check=True)
    lines = [line for line in res.stderr.splitlines() if line.startswith("executing:")]
    assert lines and all(LINE.match(line) for line in lines), res.stderr
    assert lines[-1].startswith("executing: 300/300 (100%)") and " done in " in lines[-1]
    assert "\x1b" not in res.stderr and "\r" not in res.stderr
    # the default interval (10 s): a short run prints its first report and the last line only
    quiet = pad_cli("--db", db, "execute", "--isolation", "process", "--rerun", "--limit", "300",
                    env={"PAD_PROGRESS_INTERVAL": None})
    assert len([x for x in quiet.stderr.splitlines() if x.startswith("executing:")]) <= 2, quiet.stderr
    bad = pad_cli("--db", db, "execute", "--isolation", "process", "--rerun", env={"PAD_PROGRESS_INTERVAL": "soon"})
    assert bad.returncode == 1
    assert "error: PAD_PROGRESS_INTERVAL must be a number of seconds" in bad.stderr


@pytest.mark.e2e
def test_pad_train_sft_and_eval_to_a_file_print_plain_progress_lines(tmp_path):
    pytest.importorskip("torch")
    from typer.testing import CliRunner

    from pad_data.stages.curate import CurateParams, curate
    from pad_data.stages.execute import execute
    from pad_data.stages.ingest import import_programs, ingest
    from pad_data.store import Store
    from pad_train.cli import app

    from conftest import tiny_gpt2

    db, progs, tests = tmp_path / "pad.duckdb", tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    progs.write_text("\n".join(json.dumps({"question": f"What is {n}?", "answer": n,
                                           "program": f"def solution():\n    return {n}"}) for n in range(10, 42)))
    tests.write_text("\n".join(json.dumps({"question": f"What is {n}?", "answer": n}) for n in range(50, 54)))
    with Store(db) as st:
        import_programs(st, progs, "whatis", split="train")
        ingest(st, tests, "whatis", split="test")
        execute(st)
        curate(st, "whatis-v1", CurateParams(validation_fraction=0.0, test_fraction=0.0))
    base, out = tiny_gpt2(tmp_path / "base"), tmp_path / "student"
    env = {"PAD_PROGRESS_INTERVAL": "0"}
    runner = CliRunner()
    r = runner.invoke(app, ["--db", str(db), "sft", "--split", "whatis-v1", "--model", str(base), "--out", str(out),
                            "--epochs", "1", "--batch-size", "8"], env=env)
    assert r.exit_code == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("training:")]
    assert [x.split(",")[0] for x in lines] == [f"training: {s}/4 ({25 * s}%)" for s in (1, 2, 3, 4, 4)], r.stderr
    assert re.search(r", loss \d+\.\d{3}, [\d,]+ tok/s$", lines[0]) and " done in " in lines[-1]
    r = runner.invoke(app, ["--db", str(db), "eval", "--model", str(out), "--dataset", "whatis",
                            "--max-new-tokens", "8", "--batch-size", "2"], env=env)
    assert r.exit_code == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("evaluating:")]
    assert lines[-1].startswith("evaluating: 4/4 (100%)") and " done in " in lines[-1], r.stderr
    assert "\x1b" not in r.stderr and "\r" not in r.stderr
