"""``--engine ray``: generation and execution on a Ray cluster, with Parquet shards and the store as catalog.

The work of a run is cut into *shards*: Parquet files of inputs (programs to execute, or
problems and sample indices to generate) written by the store with DuckDB. Ray Data maps
the same code the local engine runs (:class:`~pad_data.sandbox.pool.SandboxPool` and
:func:`~pad_data.stages.results.result_row`; :func:`~pad_data.stages.generate.run_requests` and the
teacher backends) over the shards with ``map_batches``, one shard per task; each task
writes its result shard (write to a temporary name, then rename, so a result shard is
complete or absent). The store then ingests the result shards (DuckDB reads Parquet
natively) in one transaction per shard, by the same rule as the local engine
(:meth:`~pad_data.store.Store.add_executions`; programs: skipping rows it already has), and
records every shard in the ``shards`` table. No worker ever writes the DuckDB file, and the
driver holds it only while it plans or ingests a shard, so the store stays readable.

Resuming: a run first ingests result shards a previous run left, then runs the input
shards that have no result yet, and only then plans new shards from what is still missing.
A shard with a result is never redone; a worker lost mid-shard (killed, node lost) makes Ray
retry that task, which redoes only that shard. On a cluster, ``--shards`` must be a path
every node can read and write (NFS, a shared volume).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from pad_data.stages.results import result_row, results_frame
from pad_data.store import PENDING_COLUMNS, Store, sql_literal
from pad_data.store.schema import FAILURE_COLUMNS

SHARD_SIZE = 5_000  # programs per execute shard
GENERATE_SHARD_SIZE = 500  # problems per generate shard
PROGRAM_COLUMNS = ["program_id", "problem_id", "origin", "teacher", "sample_idx", "program", "completion",
                   "prompt_id", "gen_key", "prompt_tokens", "completion_tokens", "cost_usd"]


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address``, or start a local one (``num_cpus``)."""
    try:
        import ray
    except ImportError:
        raise ValueError('--engine ray needs Ray: pip install "pad[ray]"') from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    env = {k: os.environ[k] for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL") if k in os.environ}
    ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING, runtime_env={"env_vars": env} if env else None)
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.WARNING)
    DataContext.get_current().enable_progress_bars = False  # pad shows its own


def shard_root(store: Store, shards: str | os.PathLike | None) -> Path:
    """``--shards``, else a folder beside the store file (``pad.shards/``)."""
    return Path(shards) if shards else store.path.with_suffix(".shards")


def _atomic_parquet(df: pd.DataFrame, path: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _mark_running(output_path: str) -> None:
    """Leave ``<shard>.running-<pid>`` beside the result: which worker process ran which shard."""
    Path(f"{output_path}.running-{os.getpid()}").touch()


# ------------------------------------------------------------------ the Ray tasks
def execute_shards(batch: dict[str, Any], timeout: float, memory_mb: int, isolation_level: str,
                   workers: int, entry: str | None = None) -> dict[str, list]:
    """Ray Data ``map_batches`` function: execute and label the programs of each input shard."""
    from pad_data.sandbox.pool import SandboxPool

    for inp, outp in zip(batch["input_path"], batch["output_path"]):
        if not os.path.exists(outp):
            _mark_running(outp)
            df = pd.read_parquet(inp)
            with SandboxPool(workers=workers, timeout=timeout, memory_mb=memory_mb,
                             isolation_level=isolation_level, entry=entry) as pool:
                preambles = [p if isinstance(p, str) else None for p in df.get("preamble", [None] * len(df))]
                results = dict(pool.map(zip(df["program_id"], df["program"], preambles)))
                executor = pool.executor_version
            now = pd.Timestamp.now()
            # shards planned by an older pad lack some (the preamble's text goes to the sandbox, its id to the row)
            context = [c for c in PENDING_COLUMNS[4:] if c in df.columns and c != "preamble"]
            out = results_frame([result_row(r["program_id"], results[r["program_id"]], r["gold"], r["gold_text"],
                                            timeout, memory_mb, executor, now, **{c: r[c] for c in context})
                                 for r in df.to_dict("records")])
            _atomic_parquet(out, outp)
    return {"shard_id": list(batch["shard_id"])}


def generate_shards(batch: dict[str, Any], settings: str) -> dict[str, list]:
    """Ray Data ``map_batches`` function: ask the teacher for the samples of each input shard."""
    from pad_data.stages.generate import make_teacher, new_stats, run_requests
    from pad_data.teachers.prompts import Prompt

    s = json.loads(settings)
    for inp, outp in zip(batch["input_path"], batch["output_path"]):
        if not os.path.exists(outp):
            _mark_running(outp)
            df = pd.read_parquet(inp)
            todo = [(pid, q, [int(i) for i in idxs]) for pid, q, idxs in zip(df["problem_id"], df["question"],
                                                                             df["sample_idxs"])]
            keys = {pid: list(k) for pid, k in zip(df["problem_id"], df["keys"])}
            teacher = make_teacher(s["backend"], s["model"], base_url=s["base_url"], max_retries=s["max_retries"],
                                   timeout=s["timeout"])
            got: dict[str, list[dict]] = {"ok": [], "fail": []}
            asyncio.run(run_requests(teacher, Prompt(s["prompt_name"], s["prompt_text"]), todo, keys,
                                     s["temperature"], s["max_tokens"], s["concurrency"],
                                     tuple(s["prices"]) if s["prices"] else None,
                                     lambda kind, rows: got[kind].extend(rows), new_stats(0)))
            _atomic_parquet(pd.DataFrame(got["fail"], columns=FAILURE_COLUMNS), f"{outp}.failures")
            _atomic_parquet(pd.DataFrame(got["ok"], columns=PROGRAM_COLUMNS), outp)
    return {"shard_id": list(batch["shard_id"])}


# ------------------------------------------------------------------ the driver
def _outstanding(store: Store, stage: str) -> list[tuple[str, str, str, str | None]]:
    return store.con.execute("SELECT shard_id, input_path, output_path, settings FROM shards "
                             "WHERE stage = ? AND ingested_at IS NULL ORDER BY shard_id", [stage]).fetchall()


def _register(store: Store, stage: str, shards: list[tuple[str, str, str, int]], settings: str | None) -> None:
    store.add_shards(stage, shards, settings)
    store.release()  # the tasks run without the store: other processes may read it meanwhile


def _run(store: Store, stage: str, fn: Callable, todo: list[tuple[str, str, str, str | None]],
         fn_kwargs: Callable[[str | None], dict], ingest: Callable[[str, str], int],
         progress: Callable[[int, int], None] | None, address: str | None, num_cpus: int | None) -> int:
    """Map ``fn`` over the shards ``todo`` with Ray Data; ingest each result as it completes."""
    if not todo:
        return 0
    connect(address, num_cpus)
    import ray

    rows_in = dict(store.con.execute("SELECT shard_id, rows_in FROM shards WHERE stage = ? AND ingested_at IS NULL",
                                     [stage]).fetchall())
    store.release()
    total_rows = sum(rows_in.get(s[0], 0) for s in todo)
    done = added = 0
    by_settings: dict[str | None, list] = {}
    for shard in todo:
        by_settings.setdefault(shard[3], []).append(shard)
    for settings, shards in by_settings.items():
        ds = ray.data.from_items([{"shard_id": s, "input_path": i, "output_path": o} for s, i, o, _ in shards],
                                 override_num_blocks=len(shards))
        # Ray Data retries a task whose worker died (killed, OOM, node lost; its default has no
        # limit), so only that shard is redone; an exception in pad's own code fails the run
        ds = ds.map_batches(fn, batch_size=1, fn_kwargs=fn_kwargs(settings), num_cpus=1)
        outputs = {s: o for s, _, o, _ in shards}
        for row in ds.iter_rows():
            added += ingest(row["shard_id"], outputs[row["shard_id"]])
            store.release()  # held only while ingesting a shard
            done += rows_in[row["shard_id"]]
            if progress:
                progress(done, total_rows)
    return added


def _resume(store: Store, shards: str | os.PathLike | None, stage: str, ingest: Callable[[str, str], int]
            ) -> tuple[Path, Callable[[str, str], int], int, list]:
    """The stage's shard folder; ingest the result shards a previous run finished.

    Returns ``(folder, ingest, rows added, shards still to run)``.
    """
    root = shard_root(store, shards) / stage
    root.mkdir(parents=True, exist_ok=True)
    added, todo = 0, []
    for shard in _outstanding(store, stage):
        if os.path.exists(shard[2]):
            added += ingest(shard[0], shard[2])
        else:
            todo.append(shard)
    return root, ingest, added, todo


def _ingest_execute(store: Store, shard_id: str, path: str) -> dict[str, int]:
    """Store a result shard (the local engine's rule) and mark it ingested; ``{label: stored}``."""
    with store.transaction():
        stored = store.add_executions(path)
        store.shard_ingested(shard_id, sum(stored.values()))
    return stored


def execute_ray(store: Store, shards: str | os.PathLike | None = None, address: str | None = None,
                shard_size: int = SHARD_SIZE, dataset: str | None = None, origin: str | None = None,
                limit: int | None = None, timeout: float = 2.0, memory_mb: int = 512, workers: int = 1,
                isolation_level: str = "auto", num_cpus: int | None = None, entry: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """``pad execute --engine ray``: execute and label pending programs on Ray; same labels as local."""
    if shard_size < 1:
        raise ValueError("--shard-size must be >= 1")
    t0 = time.perf_counter()
    labels: Counter = Counter()

    def ingest_one(shard_id: str, path: str) -> int:
        stored = _ingest_execute(store, shard_id, path)
        labels.update(stored)
        return sum(stored.values())

    root, ingest, added, todo = _resume(store, shards, "execute", ingest_one)
    # plan new shards from the programs still without an execution (and in no shard left to run)
    query, params = store.pending_query(dataset, origin)
    if todo:
        inputs = ", ".join(sql_literal(s[1]) for s in todo)
        query += f" AND p.program_id NOT IN (SELECT program_id FROM read_parquet([{inputs}]))"
    store.con.execute(
        f"CREATE OR REPLACE TEMP TABLE _pad_pending AS SELECT *, (row_number() OVER (ORDER BY program_id) - 1) "
        f"// {int(shard_size)} AS shard FROM ({query})"
        + (f" ORDER BY program_id LIMIT {int(limit)}" if limit else ""), params)
    batch = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    planned = []
    cols = ", ".join(PENDING_COLUMNS)
    for k, n in store.con.execute("SELECT shard, count(*) FROM _pad_pending GROUP BY 1 ORDER BY 1").fetchall():
        shard_id = f"execute-{batch}-{k:05d}"
        inp, outp = str(root / f"{shard_id}.in.parquet"), str(root / f"{shard_id}.out.parquet")
        store.con.execute(f"COPY (SELECT {cols} FROM _pad_pending WHERE shard = {k}) "
                          f"TO {sql_literal(inp)} (FORMAT parquet)")
        planned.append((shard_id, inp, outp, n))
    store.con.execute("DROP TABLE _pad_pending")
    settings = json.dumps({"timeout": timeout, "memory_mb": memory_mb, "entry": entry})
    _register(store, "execute", planned, settings)
    todo += [(s, i, o, settings) for s, i, o, _ in planned]
    added += _run(store, "execute", execute_shards, todo,
                  lambda s: {"timeout": json.loads(s)["timeout"], "memory_mb": json.loads(s)["memory_mb"],
                             "entry": json.loads(s).get("entry"),
                             "isolation_level": isolation_level, "workers": workers},
                  ingest, progress, address, num_cpus)
    seconds = time.perf_counter() - t0
    return {"executed": added, "shards": len(todo), "seconds": seconds,
            "programs_per_s": added / seconds if seconds > 0 and added else 0.0, "labels": dict(labels),
            "executor": "ray", "shard_dir": str(root)}


def _ingest_generate(store: Store, shard_id: str, path: str) -> int:
    programs = pd.read_parquet(path, columns=PROGRAM_COLUMNS)
    with store.transaction():
        n = store.insert_new("programs", programs, "program_id")
        store.drop_failures(programs["gen_key"])
        if os.path.exists(f"{path}.failures"):
            store.add_failures(pd.read_parquet(f"{path}.failures").reindex(columns=FAILURE_COLUMNS))
        store.shard_ingested(shard_id, n)
    return n


def generate_ray(store: Store, backend: str, model: str, dataset: str, base_url: str | None = None,
                 samples: int = 4, temperature: float = 0.7, max_tokens: int = 512, concurrency: int = 8,
                 prompt: str | None = None, split: str | None = None, limit: int | None = None,
                 prices: tuple[float, float] | None = None, max_retries: int = 6, timeout: float = 120.0,
                 shards: str | os.PathLike | None = None, address: str | None = None,
                 shard_size: int = GENERATE_SHARD_SIZE, num_cpus: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict:
    """``pad generate --engine ray``: the same requests as ``pad generate``, from Ray tasks.

    ``shard_size`` counts problems; each task keeps ``concurrency`` requests in flight.
    """
    from pad_data.stages.generate import plan

    if shard_size < 1 or concurrency < 1:
        raise ValueError("--shard-size and --concurrency must be >= 1")
    t0 = time.perf_counter()
    root, ingest, added, todo = _resume(store, shards, "generate",
                                        lambda sid, path: _ingest_generate(store, sid, path))
    p, missing, keys, cached, in_batch = plan(store, model, dataset, samples, temperature, max_tokens, prompt,
                                              split, limit)
    settings = json.dumps({"backend": backend, "model": model, "base_url": base_url, "temperature": temperature,
                           "max_tokens": max_tokens, "concurrency": concurrency, "prompt_name": p.name,
                           "prompt_text": p.text, "prices": list(prices) if prices else None,
                           "max_retries": max_retries, "timeout": timeout})
    in_flight = {pid for s in todo for pid in pd.read_parquet(s[1], columns=["problem_id"])["problem_id"]}
    missing = [m for m in missing if m[0] not in in_flight]
    if missing:
        batch = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        planned = []
        for k in range(0, len(missing), shard_size):
            part = missing[k:k + shard_size]
            shard_id = f"generate-{batch}-{k // shard_size:05d}"
            inp, outp = str(root / f"{shard_id}.in.parquet"), str(root / f"{shard_id}.out.parquet")
            _atomic_parquet(pd.DataFrame({"problem_id": [m[0] for m in part], "question": [m[1] for m in part],
                                          "sample_idxs": [m[2] for m in part],
                                          "keys": [keys[m[0]] for m in part]}), inp)
            planned.append((shard_id, inp, outp, sum(len(m[2]) for m in part)))
        _register(store, "generate", planned, settings)
        todo += [(s, i, o, settings) for s, i, o, _ in planned]
    added += _run(store, "generate", generate_shards, todo, lambda s: {"settings": s}, ingest, progress,
                  address, num_cpus)
    seconds = time.perf_counter() - t0
    failed = store.scalar("SELECT count(*) FROM generation_failures")
    return {"added": added, "cached": cached, "in_batch": in_batch, "failed": failed, "shards": len(todo),
            "seconds": seconds,
            "programs_per_s": added / seconds if seconds > 0 and added else 0.0, "teacher": model,
            "prompt": p.name, "shard_dir": str(root)}
