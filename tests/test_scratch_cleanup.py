"""Scratch folders beside the store are never left behind: a stage ended by SIGTERM (a scheduler,
``timeout``) cleans up as after Ctrl-C, and the folders of a stage killed outright (SIGKILL, the OOM
killer) are deleted by the next stage that makes one, on the real console script and a real store."""

import json
import os
import signal
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


HOLDER = """
import sys, time
from pad_data.store.scratch import new_scratch_folder
print(new_scratch_folder(sys.argv[1], "curate"), flush=True)
time.sleep(600)
"""


def _holder(folder: Path) -> tuple[subprocess.Popen, Path]:
    """A process that made a scratch folder in ``folder`` and keeps using it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    path = Path(proc.stdout.readline().strip())
    (path / "curate.duckdb").write_bytes(b"x" * 1000)
    return proc, path


def test_a_killed_stages_scratch_is_deleted_by_the_next_one(tmp_path):
    killed, left = _holder(tmp_path)
    killed.kill()  # SIGKILL: no cleanup ran, the kernel dropped its lock
    killed.wait()
    alive, in_use = _holder(tmp_path)  # another process's folder in use (whatever its pid namespace)
    unrelated = tmp_path / ".pad-notes"  # no lock file: not a scratch folder
    unrelated.mkdir()
    (tmp_path / ".pad-link").symlink_to(unrelated)
    try:
        with scratch_folder(tmp_path, "execute") as new:
            assert Path(new).parent == tmp_path and Path(new).name.startswith(".pad-execute-")
            assert not left.exists() and in_use.exists() and unrelated.exists() and (tmp_path / ".pad-link").exists()
            with scratch_folder(tmp_path, "refine") as other:  # this process's own, in use, is kept too
                assert Path(new).exists() and Path(other).exists()
        assert not Path(new).exists()
    finally:
        alive.kill()
        alive.wait()
    # through the console script: a real stage sweeps it once its user is gone
    db = _store_with_loops(tmp_path, 2)
    pad_process("--db", db, "execute", "--timeout", "0.1", check=True)
    assert not in_use.exists() and unrelated.exists()


ASYNC_RUN = """
import asyncio, os, signal, threading, time
from pad_data.cli.entry import _terminated
signal.signal(signal.SIGTERM, _terminated)
received = stored = 0

async def main():
    global received, stored
    for _ in range(1000):
        await asyncio.sleep(0.02)  # a paid request in flight
        received += 1
        t = time.perf_counter()
        while time.perf_counter() - t < 0.03:  # its response parsed and handed on: Python code, no await
            pass
        stored += 1

threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
print(received, stored, signal.getsignal(signal.SIGTERM) == signal.SIG_IGN)
"""


def test_sigterm_in_an_event_loop_stops_at_an_await_as_ctrl_c_does():
    # asyncio turns Ctrl-C into a cancellation at the next await: SIGTERM goes the same way, so a
    # response received (paid for) is never dropped between its arrival and being stored
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    for _ in range(3):
        res = subprocess.run([sys.executable, "-c", ASYNC_RUN], capture_output=True, text=True, env=env, timeout=60)
        received, stored, ignored = res.stdout.split()
        assert 0 < int(received) < 1000 and received == stored and ignored == "True", res.stdout + res.stderr
