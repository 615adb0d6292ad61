"""Scratch folders beside the store are never left behind: a stage ended by SIGTERM (a scheduler,
``timeout``) cleans up as after Ctrl-C, and the folders of a stage killed outright (SIGKILL, the OOM
killer) are deleted by the next stage that makes one, on the real console script and a real store."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from conftest import pad_process
from pad_data.store.scratch import scratch_folder


def _store_with_loops(tmp_path: Path, n: int = 40) -> Path:
    """A store of ``n`` programs that each loop until their timeout."""
    f = tmp_path / "loops.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"Loop {i}?", "answer": i,
                                       "program": f"def solution():\n    x = {i}\n    while True:\n        x += 1\n"})
                           for i in range(n)))
    db = tmp_path / "pad.duckdb"
    pad_process("--db", db, "import-programs", f, "--dataset", "loops", check=True)
    return db


def _scratch(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".pad-"))


def test_sigterm_ends_a_stage_like_ctrl_c_and_removes_its_scratch(tmp_path):
    db = _store_with_loops(tmp_path)
    exe = Path(sys.executable).with_name("pad")
    proc = subprocess.Popen([str(exe), "--db", str(db), "execute", "--timeout", "2", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _scratch(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert _scratch(tmp_path), "the stage made no scratch folder"
    time.sleep(1.0)  # running its programs (each loops for 2 s)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: committed work is kept" in err
    assert _scratch(tmp_path) == []
    con = duckdb.connect(str(db), read_only=True)  # the store opens, its programs all there
    assert con.execute("SELECT count(*) FROM programs").fetchall() == [(40,)]
    con.close()


def test_a_killed_stages_scratch_is_deleted_by_the_next_one(tmp_path):
    host = socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(gone.stdout)  # a process that has exited (its pid not reused within this test)
    left = tmp_path / f".pad-curate@{dead_pid}@{host}@abc123"
    (left / "sub").mkdir(parents=True)
    (left / "sub" / "curate.duckdb").write_bytes(b"x" * 1000)
    mine = tmp_path / f".pad-curate@{os.getpid()}@{host}@def456"  # a live process's: in use
    elsewhere = tmp_path / f".pad-curate@{dead_pid}@not-{host}@ghi789"  # another host's on a shared disk
    unrelated = tmp_path / ".pad-notes"
    for d in (mine, elsewhere, unrelated):
        d.mkdir()
    with scratch_folder(tmp_path, "execute") as new:
        assert Path(new).parent == tmp_path and Path(new).name.startswith(f".pad-execute@{os.getpid()}@{host}@")
        assert not left.exists() and mine.exists() and elsewhere.exists() and unrelated.exists()
    assert not Path(new).exists()
    # through the console script: a real stage sweeps them too (here `pad execute`'s scratch)
    db = _store_with_loops(tmp_path, 2)
    left.mkdir()
    pad_process("--db", db, "execute", "--timeout", "0.1", check=True)
    assert not left.exists() and mine.exists()
