import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pad_data.stages.batch import generate_batch
from pad_data.stages.generate import generate, make_teacher
from pad_data.store import Store, problem_id

from conftest import pad_cli
from openai_server import FakeTeacherServer


def _problems(db, n):
    with Store(db) as st:
        df = pd.DataFrame([{"problem_id": problem_id("toy", f"What is {i} plus {i}?"), "dataset": "toy",
                            "split": "test", "question": f"What is {i} plus {i}?", "answer": 2.0 * i,
                            "answer_text": str(2 * i)} for i in range(n)])
        with st.transaction():
            st.insert_new("problems", df, "problem_id")


def _counters(srv):
    return srv.requests, srv.uploads, srv.batches_created, srv.batch_polls, srv.downloads


@pytest.mark.e2e
def test_batch_killed_while_polling_resumes_polling_and_mixes_with_live_runs(db):
    _problems(db, 40)
    exe = Path(sys.executable).with_name("pad")
    with FakeTeacherServer(batch_s=1.5) as srv:
        proc = subprocess.Popen([str(exe), "--db", str(db), "generate", "--dataset", "toy", "--model", "fake-teacher",
                                 "--base-url", srv.base_url, "--samples", "2", "--batch", "--poll-interval", "0.05"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=dict(os.environ, OPENAI_API_KEY="test"))
        deadline = time.monotonic() + 60
        while srv.batch_polls < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert srv.batch_polls >= 3 and srv.downloads == 0  # killed while polling
        con = duckdb.connect(str(db), read_only=True)
        jobs = con.execute("SELECT batch_id, input_file_id, status, requests, samples, ingested_at "
                           "FROM batch_jobs").fetchall()
        programs = con.execute("SELECT count(*) FROM programs").fetchall()[0][0]
        con.close()
        assert jobs == [("batch_1", "file-1", jobs[0][2], 40, 80, None)] and jobs[0][2] in ("validating", "in_progress")
        assert programs == 0 and (srv.uploads, srv.batches_created, srv.requests) == (1, 1, 0)

        with Store(db) as st:
            r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, poll_interval=0.05)
            assert (r["resumed"], r["added"], r["failed"], r["pending"]) == (1, 80, 0, 0)
            assert (srv.uploads, srv.batches_created, srv.downloads) == (1, 1, 1)  # polled, never resubmitted
            assert st.scalar("SELECT count(*) FROM batch_jobs "
                             "WHERE ingested_at IS NOT NULL AND status = 'completed'") == 1
            rows = st.df("SELECT problem_id, sample_idx, gen_key, program, cost_usd FROM programs")
            assert len(rows) == 80 and rows.gen_key.is_unique and set(rows.sample_idx) == {0, 1}
            assert rows.program.str.startswith("def solution():").all()
            # the same cache keys as a live run: live asks only for the third sample, and a batch run after
            # that has nothing to ask for
            g = generate(st, make_teacher("openai", "fake-teacher", base_url=srv.base_url), "toy", samples=3)
            assert (g["added"], g["cached"], srv.requests) == (40, 80, 40)
            before = _counters(srv)
            r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=3, poll_interval=0.05)
            assert (r["added"], r["cached"], r["batches"]) == (0, 120, 0) and _counters(srv) == before
            assert st.scalar("SELECT count(DISTINCT (problem_id, sample_idx)) FROM programs") == 120


def test_batch_failed_lines_lost_batch_id_and_no_wait(db):
    _problems(db, 6)
    with FakeTeacherServer(fail_if="What is 3 plus", batch_s=0.2) as srv, Store(db) as st:
        # --no-wait: submit and return; the batch id is stored
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, wait=False)
        assert (r["batches"], r["pending"], r["added"]) == (1, 1, 0) and srv.batch_polls == 0
        # a run killed after creating the batch but before storing its id finds it again by its metadata
        st.con.execute("UPDATE batch_jobs SET batch_id = NULL, status = 'uploaded'")
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, poll_interval=0.05)
        assert (srv.uploads, srv.batches_created) == (1, 1)
        # the error file's lines are recorded as failures, retried by the next run (here a live one)
        assert (r["resumed"], r["added"], r["failed"]) == (1, 10, 2) and "boom" in r["last_error"]
        assert st.scalar("SELECT count(*) FROM generation_failures") == 2
        srv.fail_if = None
        g = generate(st, make_teacher("openai", "fake-teacher", base_url=srv.base_url), "toy", samples=2)
        assert g["added"] == 2 and srv.requests == 1
        assert st.scalar("SELECT count(*) FROM generation_failures") == 0
        assert st.scalar("SELECT count(DISTINCT (problem_id, sample_idx)) FROM programs") == 12
        # a batch the server no longer knows (404) is given up: its samples fail and the next run resubmits them
        generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=3, wait=False)
        srv.batches.clear()
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=3, poll_interval=0.05)
        assert (r["added"], r["failed"]) == (0, 6) and "batch lost" in r["last_error"]
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=3, poll_interval=0.05)
        assert (r["added"], r["failed"], r["resumed"]) == (6, 0, 0)
        assert st.scalar("SELECT count(*) FROM generation_failures") == 0
        assert st.df("SELECT status FROM batch_jobs ORDER BY created_at").status.tolist() == \
            ["completed", "lost", "completed"]


def test_a_failed_submit_leaves_nothing_and_stored_samples_are_never_uploaded_again(db):
    """A --batch run against a server without the Batch API fails and leaves no job; after a live
    run stored every sample, --batch uploads nothing (money spent on a teacher is never spent twice)."""
    _problems(db, 8)
    with FakeTeacherServer(batch_api=False) as srv:
        args = ["--db", db, "generate", "--dataset", "toy", "--model", "fake-teacher", "--base-url", srv.base_url,
                "--samples", "2"]
        env = {"OPENAI_API_KEY": "test"}
        res = pad_cli(*args, "--batch", "--poll-interval", "0.05", "--max-retries", "0", env=env)
        assert res.returncode == 1 and "Batch API upload: NotFoundError" in res.stderr
        assert srv.upload_requests == 1
        with Store(db) as st:
            assert st.scalar("SELECT count(*) FROM batch_jobs") == 0
            assert st.scalar("SELECT count(*) FROM batch_requests") == 0
        pad_cli(*args, env=env, check=True)  # live: every sample stored
        assert srv.requests == 8
        srv.batch_api = True
        res = pad_cli(*args, "--batch", "--poll-interval", "0.05", env=env, check=True)
        assert "0 programs added, 16 already stored" in res.stdout and "0 batches" in res.stdout
        assert (srv.upload_requests, srv.batches_created, srv.requests) == (1, 0, 8)


def _interrupted(monkeypatch, method: str):
    """Make BatchClient.METHOD stop the run as Ctrl-C (or a kill) would, once."""
    from pad_data.stages import batch

    real = getattr(batch.BatchClient, method)

    def stop(self, *args, **kwargs):
        monkeypatch.setattr(batch.BatchClient, method, real)
        raise KeyboardInterrupt

    monkeypatch.setattr(batch.BatchClient, method, stop)


def test_a_job_left_unsent_is_rechecked_against_the_cache_right_before_upload(db, monkeypatch):
    _problems(db, 6)
    with FakeTeacherServer(batch_s=0.1) as srv, Store(db) as st:
        live = lambda: make_teacher("openai", "fake-teacher", base_url=srv.base_url)  # noqa: E731
        # interrupted before its upload: the job stays 'new' with both samples of each problem
        _interrupted(monkeypatch, "upload")
        with pytest.raises(KeyboardInterrupt):
            generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, poll_interval=0.05)
        assert st.df("SELECT status, requests, samples FROM batch_jobs").values.tolist() == [["new", 6, 12]]
        assert generate(st, live(), "toy", samples=1)["added"] == 6  # a live run stores sample 0 meanwhile
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, poll_interval=0.05)
        assert (r["resumed"], r["requests"], r["added"], r["cached"], r["closed"]) == (1, 6, 6, 6, 0)
        sent = [json.loads(line) for f in srv.files.values() if f["meta"]["purpose"] == "batch"
                for line in f["data"].decode().splitlines()]
        assert len(sent) == 6 and {b["body"]["n"] for b in sent} == {1}  # only sample 1 was asked for
        assert all(b["custom_id"].endswith(":1") for b in sent)
        assert st.scalar("SELECT count(*) FROM programs") == 12
        assert st.scalar("SELECT count(DISTINCT (problem_id, sample_idx)) FROM programs") == 12

        # uploaded but interrupted before the batch was created; a live run then stores every sample:
        # the job is closed without a batch (and a job with every sample stored is never uploaded)
        _interrupted(monkeypatch, "create")
        with pytest.raises(KeyboardInterrupt):
            generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=3, poll_interval=0.05)
        uploads, created = srv.uploads, srv.batches_created
        assert generate(st, live(), "toy", samples=3)["added"] == 6
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=3, poll_interval=0.05)
        assert (r["closed"], r["batches"], r["added"], r["requests"]) == (1, 0, 0, 0)
        assert (srv.uploads, srv.batches_created) == (uploads, created)
        job = st.con.execute("SELECT status, requests, samples, input_file_id, batch_id, ingested_at IS NOT NULL "
                             "FROM batch_jobs ORDER BY created_at").fetchall()[-1]
        assert job == ("cached", 0, 0, None, None, True)
        assert st.scalar("SELECT count(*) FROM batch_requests WHERE job_id IN "
                         "(SELECT job_id FROM batch_jobs WHERE status = 'cached')") == 0
        assert st.scalar("SELECT count(*) FROM programs") == 18


def test_a_live_run_leaves_samples_an_uncollected_batch_job_asks_for(db):
    """Samples already paid for in a Batch API job are not asked for again by a live run."""
    _problems(db, 6)
    with FakeTeacherServer(batch_s=0.2) as srv, Store(db) as st:
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, wait=False)
        assert (r["batches"], r["pending"], r["added"]) == (1, 1, 0)
        teacher = make_teacher("openai", "fake-teacher", base_url=srv.base_url)
        g = generate(st, teacher, "toy", samples=3)  # only the third sample is new
        assert (g["added"], g["cached"], g["in_batch"], srv.requests) == (6, 0, 12, 6)
        r = generate_batch(st, "fake-teacher", "toy", base_url=srv.base_url, samples=2, poll_interval=0.05)
        assert (r["resumed"], r["added"], srv.batches_created) == (1, 12, 1)
        g = generate(st, teacher, "toy", samples=3)
        assert (g["added"], g["cached"], g["in_batch"], srv.requests) == (0, 18, 0, 6)
