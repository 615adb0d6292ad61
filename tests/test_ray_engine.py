"""--engine ray: a real local Ray cluster, real Parquet shards, the real sandbox and teacher client."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pad_data import api
from pad_data.stages.execute import execute
from pad_data.stages.generate import generate, make_teacher
from pad_data.store import Store, problem_id, program_id

from conftest import pad_cli
from openai_server import FakeTeacherServer

COLUMNS = "program_id, status, label, value, value_num, value_type, error_type, error_message, error_line"


def _programs(n: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """GSM8K-style programs: 10% raise, 1% do not compile, 1% return text that is not a number, the rest
    are right."""
    rng = random.Random(seed)
    problems, programs = {}, []
    for i in range(n):
        a, b, c = rng.randint(2, 60), rng.randint(2, 30), rng.randint(2, 9)
        q = f"A shop sells {a} boxes of {b} pens at ${c} each. What do they cost? (#{i % 2000})"
        gold = a * b * c if i % 2000 < 1990 else a * b * c + 1
        src = f"def solution():\n    boxes = {a}\n    pens = boxes * {b}\n    cost = pens * {c}\n    return cost\n"
        r = rng.random()
        if r < 0.10:
            src = src.replace("return cost", "return cots")
        elif r < 0.11:
            src = src.replace("):", ")")
        elif r < 0.12:
            src = src.replace("return cost", "return 'about ' + str(cost)")
        pid = problem_id("pens", q)
        problems[pid] = {"problem_id": pid, "dataset": "pens", "split": "train", "question": q,
                         "answer": float(gold), "answer_text": str(gold)}
        src += f"# sample {i}\n"
        programs.append({"program_id": program_id(pid, src, "t", i), "problem_id": pid, "origin": "import",
                         "teacher": "t", "sample_idx": i, "program": src})
    return list(problems.values()), programs


def _fill(db: Path, n: int, seed: int = 0) -> None:
    problems, programs = _programs(n, seed)
    with Store(db) as st, st.transaction():
        st.insert_new("problems", pd.DataFrame(problems), "problem_id")
        st.insert_new("programs", pd.DataFrame(programs), "program_id")


@pytest.mark.e2e
def test_a_worker_killed_mid_shard_redoes_only_that_shard_and_every_program_is_labeled_once(tmp_path):
    """`pad execute --engine ray` in its own process (its own local Ray); SIGKILL a Ray worker
    while it is running a shard; the run still finishes, labeling every program exactly once."""
    pytest.importorskip("ray")
    db = tmp_path / "pad.duckdb"
    _fill(db, 6_000)
    shard_dir = tmp_path / "shards"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("pad")), "--db", str(db), "execute", "--engine",
                             "ray", "--shards", str(shard_dir), "--shard-size", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    victim = None
    deadline = time.time() + 240
    while victim is None and time.time() < deadline and proc.poll() is None:
        for marker in (shard_dir / "execute").glob("*.running-*") if (shard_dir / "execute").exists() else []:
            shard = marker.name.split(".running-")[0]
            if not (shard_dir / "execute" / shard).exists():  # its result is not written yet: mid-shard
                victim = (shard, int(marker.name.split(".running-")[1]))
                os.kill(victim[1], signal.SIGKILL)
                break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=300)
    assert victim is not None, "no shard was seen running"
    assert proc.returncode == 0, err
    markers = list((shard_dir / "execute").glob(f"{victim[0]}.running-*"))
    assert len(markers) >= 2 and f"{victim[0]}.running-{victim[1]}" in {m.name for m in markers}  # retried
    with Store(db, read_only=True) as st:
        per_program = st.df("SELECT p.program_id, count(e.program_id) AS n FROM programs p "
                            "LEFT JOIN executions e USING (program_id) GROUP BY 1")
        assert len(per_program) == 6_000 and (per_program.n == 1).all()
        shards = st.df("SELECT * FROM shards")
        assert len(shards) == 6 and shards.ingested_at.notna().all() and shards.rows_out.sum() == 6_000
    # other shards ran once: one worker marker each
    once = [s for s in shards.output_path if Path(s).name != victim[0]]
    assert all(len(list(Path(s).parent.glob(Path(s).name + ".running-*"))) == 1 for s in once)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from pad_data.engines.ray_engine import connect

    connect(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.mark.e2e
def test_ray_labels_8k_programs_exactly_like_the_local_engine_and_resumes(ray_cluster, tmp_path, monkeypatch):
    from pad_data.engines import ray_engine

    local, dist = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    _fill(local, 8_000)
    _fill(dist, 8_000)
    with Store(local) as st:
        assert execute(st)["executed"] == 8_000
    # the driver dies after ingesting 2 of 8 shards (the others finish on the cluster)
    real = ray_engine._ingest_execute
    calls = []

    def flaky(store, shard_id, path):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(shard_id)
        return real(store, shard_id, path)

    monkeypatch.setattr(ray_engine, "_ingest_execute", flaky)
    with Store(dist) as st, pytest.raises(KeyboardInterrupt):
        ray_engine.execute_ray(st, shard_size=1000)
    monkeypatch.setattr(ray_engine, "_ingest_execute", real)
    with Store(dist) as st:
        assert st.scalar("SELECT count(*) FROM executions") == 2000
        outputs = st.df("SELECT output_path FROM shards WHERE ingested_at IS NULL").output_path
        finished = [p for p in outputs if Path(p).exists()]
        r = api.execute(st, engine="ray", shard_size=1000)  # resume through the API: the finished, then the rest
        assert r["executed"] == 6_000
        for p in finished:  # a shard with a result is never redone
            assert len(list(Path(p).parent.glob(Path(p).name + ".running-*"))) == 1
        again = ray_engine.execute_ray(st, shard_size=1000)
        assert again["executed"] == 0 and again["shards"] == 0
        assert st.scalar("SELECT count(*) FROM shards") == 8
    with Store(local, read_only=True) as a, Store(dist, read_only=True) as b:
        la = a.df(f"SELECT {COLUMNS} FROM executions ORDER BY program_id")
        lb = b.df(f"SELECT {COLUMNS} FROM executions ORDER BY program_id")
    assert len(la) == len(lb) == 8_000
    pd.testing.assert_frame_equal(la, lb)
    assert set(la.label) == {"correct", "wrong_answer", "runtime_error", "syntax_error", "non_numeric"}


@pytest.mark.e2e
def test_ray_generate_asks_for_the_same_samples_as_local_and_resumes(ray_cluster, tmp_path):
    def problems(db):
        with Store(db) as st, st.transaction():
            st.insert_new("problems", pd.DataFrame([{
                "problem_id": problem_id("toy", f"What is {i} plus {i}?"), "dataset": "toy", "split": "test",
                "question": f"What is {i} plus {i}?", "answer": 2.0 * i, "answer_text": str(2 * i)}
                for i in range(60)]), "problem_id")

    local, dist = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    problems(local)
    problems(dist)
    with FakeTeacherServer(fault_rate=0.2, slow_s=0.2) as srv:
        with Store(local) as st:
            generate(st, make_teacher("openai", "fake-teacher", base_url=srv.base_url, timeout=1.0,
                                      backoff_base=0.01), "toy", samples=3, concurrency=8)
        with Store(dist) as st:
            teacher = api.TeacherSpec("openai", "fake-teacher", base_url=srv.base_url, timeout=1.0)
            with pytest.raises(ValueError, match="builds the teacher in each task"):
                api.generate(st, teacher.make(), "toy", engine="ray")
            r = api.generate(st, teacher, "toy", samples=3, concurrency=8, engine="ray", shard_size=15)
            assert r["added"] == 180 and r["shards"] == 4 and r["failed"] == 0
            before = srv.requests
            again = api.generate(st, teacher, "toy", samples=3, engine="ray")
            assert again["added"] == 0 and again["shards"] == 0 and srv.requests == before
    cols = "program_id, problem_id, sample_idx, program, completion, gen_key, prompt_id"
    with Store(local, read_only=True) as a, Store(dist, read_only=True) as b:
        pd.testing.assert_frame_equal(a.df(f"SELECT {cols} FROM programs ORDER BY 1"),
                                      b.df(f"SELECT {cols} FROM programs ORDER BY 1"))


def test_export_from_parquet_streams_shards_into_a_dataset(tmp_path):
    src = tmp_path / "shards"
    src.mkdir()
    for name, n in (("train-00000", 300), ("train-00001", 200), ("test-00000", 50)):
        pd.DataFrame({"question": [f"q{i}" for i in range(n)], "program": ["def solution():\n    return 1"] * n,
                      "answer": [1.0] * n}).to_parquet(src / f"{name}.parquet")
    pad_cli("export", "--from-parquet", src, "--out", tmp_path / "hf", check=True)
    import datasets

    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert {k: len(v) for k, v in ds.items()} == {"train": 500, "test": 50}
    (tmp_path / "empty").mkdir()
    bad = pad_cli("export", "--from-parquet", tmp_path / "empty", "--out", tmp_path / "x")
    assert bad.returncode == 1 and "no .parquet files" in bad.stderr


def test_everything_else_works_without_ray(tmp_path, monkeypatch):
    """Ray is an optional extra: with it unimportable, local execution works and --engine ray says what to install."""
    db = tmp_path / "pad.duckdb"
    _fill(db, 200)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as when it is not installed
    r = pad_cli("--db", db, "execute", "--engine", "ray")
    assert r.returncode == 1 and 'pip install "pad[ray]"' in r.stderr
    r = pad_cli("--db", db, "execute")
    assert r.returncode == 0 and "executed 200 programs" in r.stdout, r.stderr
