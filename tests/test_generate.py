import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pad_data.stages.generate import generate, make_teacher
from pad_data.stages.ingest import ingest
from pad_data.teachers.prompts import BUILTIN, load_prompt
from pad_data.store import Store, StoreError, problem_id

from conftest import pad_cli
from openai_server import FakeTeacherServer


def _problems(db, n=30, dataset="toy"):
    with Store(db) as st:
        df = pd.DataFrame([{"problem_id": problem_id(dataset, f"What is {i} plus {i}?"), "dataset": dataset,
                            "split": "test", "question": f"What is {i} plus {i}?", "answer": 2.0 * i,
                            "answer_text": str(2 * i)} for i in range(n)])
        with st.transaction():
            st.insert_new("problems", df, "problem_id")


def _teacher(server, **kw):
    return make_teacher("openai", "fake-teacher", base_url=server.base_url, timeout=kw.pop("timeout", 1.0),
                        backoff_base=0.01, **kw)


def _check_complete(db, n, k, store=None):
    con = store.con if store else duckdb.connect(str(db), read_only=True)
    try:
        total, keys, pairs = con.execute(
            "SELECT count(*), count(DISTINCT gen_key), count(DISTINCT (problem_id, sample_idx)) FROM programs").fetchall()[0]
        per = con.execute("SELECT min(c), max(c) FROM (SELECT count(*) c FROM programs GROUP BY problem_id)").fetchall()[0]
    finally:
        if not store:
            con.close()
    assert total == keys == pairs == n * k
    assert per == (k, k)


def test_every_question_gets_k_programs_despite_faults_and_rerun_makes_no_request(db):
    _problems(db, 30)
    with FakeTeacherServer(fault_rate=0.3, slow_s=1.5) as srv, Store(db) as st:
        r = generate(st, _teacher(srv), "toy", samples=4, concurrency=8)
        assert r["added"] == 120 and r["failed"] == 0
        assert sum(srv.faults.values()) > 0 and set(srv.faults) >= {"429", "500", "truncated"}
        _check_complete(db, 30, 4, st)
        prog = st.df("SELECT program, completion, prompt_id, prompt_tokens, teacher FROM programs LIMIT 1").iloc[0]
        assert prog.program.startswith("def solution():") and "```" not in prog.program
        assert prog.teacher == "fake-teacher" and prog.prompt_tokens > 0
        assert st.scalar("SELECT count(*) FROM prompts WHERE prompt_id = ?", [prog.prompt_id]) == 1
        before = srv.requests
        r2 = generate(st, _teacher(srv), "toy", samples=4, concurrency=8)
        assert r2["added"] == 0 and r2["cached"] == 120 and srv.requests == before
        # asking for more samples only requests the missing ones
        r3 = generate(st, _teacher(srv), "toy", samples=5, concurrency=8)
        assert r3["added"] == 30
        _check_complete(db, 30, 5, st)


def test_server_without_n_support_gets_one_request_per_sample(db):
    _problems(db, 5)
    with FakeTeacherServer(support_n=False) as srv, Store(db) as st:
        r = generate(st, _teacher(srv), "toy", samples=3, concurrency=2)
        assert r["added"] == 15
        assert srv.requests >= 15
    _check_complete(db, 5, 3)


def test_failed_requests_are_recorded_and_retried_next_run(db):
    _problems(db, 6)
    with Store(db) as st:
        with FakeTeacherServer(fail_if="What is 3 plus") as srv:
            r = generate(st, _teacher(srv, max_retries=2), "toy", samples=2)
            assert (r["added"], r["failed"]) == (10, 2)
            assert srv.faults["500"] == 3  # one request + two retries
        assert st.scalar("SELECT count(*) FROM generation_failures") == 2
        with FakeTeacherServer() as srv:
            r = generate(st, _teacher(srv), "toy", samples=2)
            assert (r["added"], r["failed"]) == (2, 0) and srv.requests == 1
        assert st.scalar("SELECT count(*) FROM generation_failures") == 0
    _check_complete(db, 6, 2)


@pytest.mark.e2e
def test_killed_mid_run_then_rerun_completes_the_set(db, tmp_path):
    _problems(db, 40)
    exe = Path(sys.executable).with_name("pad")
    with FakeTeacherServer(delay_s=0.1) as srv:
        cmd = [str(exe), "--db", str(db), "generate", "--dataset", "toy", "--model", "fake-teacher",
               "--base-url", srv.base_url, "--samples", "2", "--concurrency", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, OPENAI_API_KEY="test"))
        deadline = time.monotonic() + 60
        while srv.requests < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = srv.requests
        assert 25 <= first < 40
        con = duckdb.connect(str(db), read_only=True)
        committed = con.execute("SELECT count(*) FROM programs").fetchall()[0][0]
        con.close()
        # whole responses only (2 programs each), none invented; how many reached the disk before the
        # kill depends on commit latency under load, not on correctness (the rerun below checks that)
        assert committed % 2 == 0 and committed <= 2 * first
        res = pad_cli("--db", db, "generate", "--dataset", "toy", "--model", "fake-teacher",
                      "--base-url", srv.base_url, "--samples", "2", env={"OPENAI_API_KEY": "test"})
        assert res.returncode == 0, res.stderr
        assert srv.requests - first == 40 - committed // 2  # the rerun asks only for what is missing
    _check_complete(db, 40, 2)


@pytest.mark.e2e
def test_gsm8k_test_1319_questions_4_samples_20pct_faults(db, shared_data):
    with Store(db) as st:
        ingest(st, shared_data / "gsm8k" / "test.jsonl", "gsm8k")
        with FakeTeacherServer(fault_rate=0.2, slow_s=2.5) as srv:
            r = generate(st, _teacher(srv, timeout=2.0), "gsm8k", samples=4, concurrency=32)
            assert (r["added"], r["failed"]) == (5276, 0), r.get("last_error")
            assert sum(srv.faults.values()) > 0.15 * srv.requests
            before = srv.requests
            assert generate(st, _teacher(srv), "gsm8k", samples=4, concurrency=32)["added"] == 0
            assert srv.requests == before
        assert st.scalar("SELECT count(*) FROM programs") == 5276
        assert st.scalar("SELECT count(DISTINCT (problem_id, sample_idx)) FROM programs") == 5276


def test_prompt_library_and_user_prompt_file(tmp_path):
    assert set(BUILTIN) == {"arithmetic", "coin_flip", "last_letters"}
    for name in BUILTIN:
        p = load_prompt(name)
        assert "{question}" in p.text and "def solution():" in p.text
        assert p.render("What is 2?").rstrip().endswith("Q: What is 2?")
    assert load_prompt(None, "pad-coin").name == "coin_flip"
    f = tmp_path / "mine.txt"
    f.write_text("Write solution() for: {question}")
    assert load_prompt(str(f)).render("x") == "Write solution() for: x"
    f.write_text("no placeholder")
    with pytest.raises(ValueError, match="placeholder"):
        load_prompt(str(f))


def test_cli_generate_bad_server_fails_clearly(db):
    _problems(db, 2)
    res = pad_cli("--db", db, "generate", "--dataset", "toy", "--model", "m", "--base-url",
                  "http://127.0.0.1:9/v1", "--max-retries", "0", "--timeout", "2")
    out = " ".join(res.stdout.split())
    assert res.returncode == 3 and "8 failed" in out and "2 requests" in out
    assert "APIConnectionError" in res.stderr
    res = pad_cli("--db", db, "generate", "--dataset", "nope", "--model", "m", env={"OPENAI_API_KEY": "k"})
    assert res.returncode == 1 and "no problems in dataset 'nope'" in res.stderr


def tiny_causal_lm(path: Path) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE trained here: real weights on disk, no download."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = ["def solution():\n    result = 1 + 2\n    return result\n", "Q: What is 2 plus 2?"] * 20
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.e2e
def test_local_hf_teacher_behind_the_same_interface(db, tmp_path):
    pytest.importorskip("torch")
    model_dir = tiny_causal_lm(tmp_path / "tiny")
    prompt = tmp_path / "short.txt"
    prompt.write_text("Q: {question}\ndef solution():\n")
    _problems(db, 3)
    with Store(db) as st:
        # the built-in few-shot prompt does not fit a 256-position model: a clear, recorded failure
        r = generate(st, make_teacher("hf", str(model_dir)), "toy", samples=2, max_tokens=8)
        assert r["failed"] == 6 and "exceeds the model's 256 positions" in r["last_error"]
        teacher = make_teacher("hf", str(model_dir))
        r = generate(st, teacher, "toy", samples=2, max_tokens=8, temperature=0.8, concurrency=2,
                     prompt=str(prompt))
        assert (r["added"], r["failed"]) == (6, 0)
        rows = st.df("SELECT teacher, completion, completion_tokens FROM programs")
        assert set(rows.teacher) == {str(model_dir)}
        assert all(isinstance(c, str) for c in rows.completion) and rows.completion_tokens.max() > 0
        assert generate(st, make_teacher("hf", str(model_dir)), "toy", samples=2, max_tokens=8,
                        temperature=0.8, prompt=str(prompt))["added"] == 0


def test_hf_teacher_missing_model_fails_clearly(db):
    pytest.importorskip("torch")
    _problems(db, 1)
    res = pad_cli("--db", db, "generate", "--dataset", "toy", "--backend", "hf", "--model", "/nonexistent/model",
                  env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 1 and "cannot load model '/nonexistent/model'" in res.stderr


def test_pad_run_with_real_data_and_a_real_teacher(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text("\n".join(json.dumps({"question": f"What is {i} plus {i}?", "answer": f"#### {2 * i}"})
                              for i in range(6)))
    with FakeTeacherServer() as srv:
        res = pad_cli("run", "--source", data, "--dataset", "toy", "--model", "fake-teacher", "--base-url",
                      srv.base_url, "--samples", "2", cwd=tmp_path, env={"OPENAI_API_KEY": "test"})
        assert res.returncode == 0, res.stderr
        assert srv.requests == 6
    con = duckdb.connect(str(tmp_path / "pad.duckdb"), read_only=True)
    rows = con.execute("SELECT teacher, count(*), count(label) FROM labeled_programs GROUP BY 1").fetchall()
    con.close()
    assert rows == [("fake-teacher", 12, 12)]
    bad = pad_cli("run", "--source", data, "--dataset", "toy", cwd=tmp_path)
    assert bad.returncode == 1 and "--model" in bad.stderr


# ---------------------------------------------------------------- commit failures: the journal
def _fsize_limit(nbytes):
    """preexec_fn: no file the process writes may grow past ``nbytes`` (a real "File too large" at the WAL).
    Start such a process with ``_LIMITED_ENV``."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return limit


# No bytecode writes under the limit: Python keeps a .pyc cut short at the limit (it ignores the short
# write), and that file then breaks the import for every later process using this virtualenv.
_LIMITED_ENV = dict(os.environ, OPENAI_API_KEY="test", PYTHONDONTWRITEBYTECODE="1")


def _generate_cmd(db, srv, concurrency):
    return [str(Path(sys.executable).with_name("pad")), "--db", str(db), "generate", "--dataset", "toy", "--model",
            "fake-teacher", "--base-url", srv.base_url, "--samples", "2", "--concurrency", str(concurrency)]


def _journal_rows(journal):
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    return [r for e in entries if e["kind"] == "ok" for r in e["rows"]]


def _committed(db):
    con = duckdb.connect(str(db), read_only=True)  # read-only: the journal is not replayed
    try:
        return con.execute("SELECT count(*) FROM programs").fetchall()[0][0]
    finally:
        con.close()


def _without_progress(stderr: str) -> list[str]:
    """stderr's lines but the progress lines a stage prints when stderr is not a terminal."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("generating: ")]


@pytest.mark.e2e
def test_commit_failure_journals_every_response_stops_requests_and_next_run_stores_them(db):
    _problems(db, 40)
    journal = db.with_name(db.name + ".journal.jsonl")
    limit = 16 * 1024  # the store file is larger: it is read, never grown; the WAL fills up after a few commits
    assert db.stat().st_size > limit
    with FakeTeacherServer(delay_s=0.1) as srv:  # slower than a commit: a batch holds <= 2 responses
        res = subprocess.run(_generate_cmd(db, srv, 2), capture_output=True, text=True, timeout=120,
                             env=_LIMITED_ENV, preexec_fn=_fsize_limit(limit))
        lines = _without_progress(res.stderr)
        assert res.returncode == 1 and len(lines) == 1, res.stderr
        assert "could not commit to" in lines[0] and "File too large" in lines[0]
        assert "stopped sending requests" in lines[0] and str(journal) in lines[0]
        sent = srv.requests
        assert sent < 40  # it stopped
        kept = _journal_rows(journal)
        committed = _committed(db)
        assert kept and f"{len(kept)} programs kept" in lines[0]
        # the journal is under the limit too: on a busy machine it can fill up, and what did not fit is
        # reported lost (see the next test); every request's 2 programs are accounted for
        lost = int(re.search(r"(\d+) programs are lost", lines[0])[1]) if "are lost" in lines[0] else 0
        assert committed + len(kept) + lost == 2 * sent
        # the journal holds the batch that failed (what arrived in one group-commit interval, a few
        # requests) and those in flight; none was sent after the failure (all 40 would be, were it not stopped)
        assert len(kept) <= 2 * 16 and sent <= 30
        res = subprocess.run(_generate_cmd(db, srv, 4), capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, OPENAI_API_KEY="test"))
        assert res.returncode == 0, res.stderr
        assert f"stored {len(kept)} programs that waited in" in res.stderr
        assert srv.requests - sent == 40 - sent + lost // 2  # the journaled answers were not asked for again
    assert not journal.exists()
    _check_complete(db, 40, 2)
    with Store(db, read_only=True) as st:
        stored = dict(st.con.execute("SELECT program_id, completion FROM programs").fetchall())
    assert all(stored[r["program_id"]] == r["completion"] for r in kept)


# A commit that fails, then a journal write that fails halfway (as on a full disk): in the run's
# own process, so which write fails is certain.
_FAILING_DISK = """
import errno, os, sys
import duckdb
from pad_data.store import Store

commits, journal_writes = [0], [0]
add_generated, write = Store.add_generated, os.write

def failing_commit(self, *args, **kw):
    if not kw.get("replay"):
        commits[0] += 1
        if commits[0] >= 2:
            raise duckdb.IOException("IO Error: No space left on device")
    return add_generated(self, *args, **kw)

def failing_journal(fd, data):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".journal.jsonl"):
        journal_writes[0] += 1
        if journal_writes[0] >= 2:
            write(fd, bytes(data)[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
    return write(fd, data)

Store.add_generated, os.write = failing_commit, failing_journal
sys.argv = ["pad", *sys.argv[1:]]
from pad_data.cli import main
main()
"""


@pytest.mark.e2e
def test_a_journal_write_that_fails_is_reported_as_loss_and_its_whole_lines_still_recover(db):
    _problems(db, 40)
    journal = db.with_name(db.name + ".journal.jsonl")
    with FakeTeacherServer(delay_s=0.2) as srv:
        res = subprocess.run([sys.executable, "-c", _FAILING_DISK, *_generate_cmd(db, srv, 4)[1:]],
                             capture_output=True, text=True, timeout=120, env=dict(os.environ, OPENAI_API_KEY="test"))
        lines = _without_progress(res.stderr)
        assert res.returncode == 1 and len(lines) == 1, res.stderr
        sent, committed = srv.requests, _committed(db)
        assert journal.read_bytes().endswith(b"\n")  # the torn write was cut back to its last whole line
        kept = _journal_rows(journal)
        lost = int(re.search(r"(\d+) programs are lost", lines[0])[1])
        assert kept and f"{len(kept)} programs kept in {journal}" in lines[0]
        assert lost > 0 and "No space left on device" in lines[0] and "asks for them again" in lines[0]
        assert committed + len(kept) + lost == 2 * sent  # every paid response is accounted for
        res = subprocess.run(_generate_cmd(db, srv, 4), capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, OPENAI_API_KEY="test"))
        assert res.returncode == 0, res.stderr
        assert f"stored {len(kept)} programs that waited in" in res.stderr
        assert srv.requests - sent == 40 - (committed + len(kept)) // 2  # the lost ones again, the kept ones not
    assert not journal.exists()
    _check_complete(db, 40, 2)


def _journal_program_rows(pid: str) -> list[dict]:
    """Two teacher programs as the journal holds them."""
    return [{"program_id": f"p{i}", "problem_id": pid, "origin": "teacher", "teacher": "t", "sample_idx": i,
             "program": "def solution():\n    return 1\n", "completion": "c", "gen_key": f"k{i}"} for i in range(2)]


def test_a_torn_last_journal_line_is_reported_when_the_journal_is_recovered(db):
    _problems(db, 3)
    with Store(db) as st:
        pid = st.scalar("SELECT min(problem_id) FROM problems")
        rows = _journal_program_rows(pid)
        st.append_journal([("ok", rows)])
        journal = st.journal_path
    with journal.open("a") as f:
        f.write('{"kind": "ok", "rows": [{"program_id": "p7"')  # a run killed mid-write
    res = pad_cli("--db", db, "vote")
    assert res.returncode == 0, res.stderr
    assert "stored 2 programs that waited in" in res.stderr
    assert f"the last line of {journal} was cut short (43 bytes" in res.stderr and "asks for them again" in res.stderr
    assert not journal.exists()


@pytest.mark.e2e
def test_kill_9_after_a_commit_failure_keeps_the_journal_and_the_rerun_asks_only_for_the_rest(db):
    _problems(db, 40)
    journal = db.with_name(db.name + ".journal.jsonl")
    with FakeTeacherServer(delay_s=0.3) as srv:
        proc = subprocess.Popen(_generate_cmd(db, srv, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=_LIMITED_ENV, preexec_fn=_fsize_limit(16 * 1024))
        deadline = time.monotonic() + 60
        # until the journal holds a whole batch (it is created a moment before its first line is written)
        while not (journal.exists() and journal.read_bytes().endswith(b"\n")) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # while the requests in flight are still being answered
        proc.wait()
        assert proc.returncode == -signal.SIGKILL and journal.exists()
        kept, committed = len(_journal_rows(journal)), _committed(db)
        before = srv.requests
        assert kept > 0 and before < 40
        with Store(db) as st:  # opening the store for writing stores the journal
            assert st.recovered == kept and not journal.exists()
            r = generate(st, _teacher(srv), "toy", samples=2, concurrency=8)
            assert r["added"] == 80 - committed - kept
            assert srv.requests - before == 40 - (committed + kept) // 2  # only what is missing
            _check_complete(db, 40, 2, st)


def test_journal_replay_is_idempotent_and_ignores_a_torn_last_line(db):
    _problems(db, 3)
    with Store(db) as st:
        pid = st.scalar("SELECT min(problem_id) FROM problems")
        rows = _journal_program_rows(pid)
        fail = [{"gen_key": "k9", "problem_id": pid, "sample_idx": 9, "model": "t", "error": "boom", "attempts": 3}]
        st.append_journal([("ok", rows), ("fail", fail)])
        journal = st.journal_path
    copy = journal.read_text()
    with journal.open("a") as f:
        f.write('{"kind": "ok", "rows": [{"program_id": "p7"')  # a crash mid-write
    with Store(db) as st:
        assert st.recovered == 2 and not journal.exists()
        journal.write_text(copy)  # as if a crash came between the commit and the removal
        assert st.replay_journal() == 0 and not journal.exists()
        assert st.scalar("SELECT count(*) FROM programs") == 2
        assert st.scalar("SELECT count(*) FROM generation_failures") == 1
        journal.write_text('{"kind": "ok"}\n' + copy)
    with pytest.raises(StoreError, match=r"journal.jsonl:1: unreadable journal entry"):
        Store(db)
    assert journal.exists()
