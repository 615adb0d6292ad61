"""``pad generate --batch``: the same requests through the OpenAI Batch API (half the price, results within 24 h).

A run plans like a live one (:func:`pad_data.stages.generate.plan`: the same cache keys, so batch and
live runs mix) and then, for the samples still missing:

1. samples already in a *pending job* of the store (submitted by an earlier run that was killed,
   interrupted or run with ``wait=False``) are not submitted again: that job is polled;
2. the rest become new jobs of at most ``max_batch_requests`` requests (one chat completion per
   problem, ``n`` = its missing samples). A job is committed (``batch_jobs``, its requests in
   ``batch_requests``) before anything is sent, then its input file is uploaded (``/v1/files``,
   purpose ``batch``), its id committed, the batch created (``/v1/batches``, with the job id in
   its metadata) and its id committed. A run killed between two of these steps finds the job
   and goes on from there (a batch created but not yet recorded is found again by its metadata).
   Right before its input file is uploaded (and before a batch is created from a file uploaded
   earlier), a job's requests are checked against the cache again: samples stored since (by a
   live run, by gen_key) are dropped from it, and a job with none left is closed (status
   ``cached``) without sending anything. A submit the server refuses (a 4xx answer: a server
   without the Batch API) leaves no job behind: nothing was created, so nothing is paid for;
3. every ``poll_interval`` seconds the unfinished batches are retrieved (their status is
   committed, so ``pad sql`` shows it) until each is ``completed``, ``failed``, ``expired`` or
   ``cancelled`` (or ``lost``: the server answers 404 for it); then its output file (and error
   file) is downloaded and, in one transaction,
   its programs are stored (the program ids a live run would give them), the samples that got
   no answer go to ``generation_failures`` (retried by the next run, live or batch) and the job
   is marked ingested. A sample stored meanwhile by a live run is not stored twice.

Cost estimates are half the list prices (the Batch API discount).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from types import SimpleNamespace
from typing import Callable

import pandas as pd

from pad_data.stages.generate import completion_rows, plan
from pad_data.teachers.prompts import Prompt
from pad_data.store import Store
from pad_data.store.sqltools import registered
from pad_data.teachers.base import TeacherError

TERMINAL = ("completed", "failed", "expired", "cancelled", "lost")  # lost: the server does not know it (404)
BATCH_DISCOUNT = 0.5
ENDPOINT = "/v1/chat/completions"


class BatchClient:
    """The few Batch API calls pad makes, over the official ``openai`` client (its own retries on)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, max_retries: int = 6,
                 timeout: float = 120.0):
        import openai

        self.errors = (openai.OpenAIError,)
        self.client = openai.OpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                                    api_key=api_key or os.environ.get("OPENAI_API_KEY") or "no-key",
                                    max_retries=max_retries, timeout=timeout)

    def _call(self, what: str, fn, *args, **kwargs):
        import openai

        try:
            return fn(*args, **kwargs)
        except self.errors as exc:
            error = TeacherError(f"Batch API {what}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            # a 4xx answer: the server refused the call, so it created nothing (a timeout or a 5xx may have)
            error.refused = isinstance(exc, openai.APIStatusError) and 400 <= exc.status_code < 500
            raise error from None

    def upload(self, name: str, data: bytes) -> str:
        return self._call("upload", self.client.files.create, file=(name, data, "application/jsonl"),
                          purpose="batch").id

    def create(self, input_file_id: str, job_id: str):
        return self._call("create", self.client.batches.create, input_file_id=input_file_id, endpoint=ENDPOINT,
                          completion_window="24h", metadata={"pad_job": job_id})

    def find(self, job_id: str, input_file_id: str):
        """The batch created for ``job_id`` from ``input_file_id``, if there is one."""
        for i, b in enumerate(self._call("list", self.client.batches.list, limit=100)):
            if (b.metadata or {}).get("pad_job") == job_id and b.input_file_id == input_file_id:
                return b
            if i >= 1000:
                break
        return None

    def retrieve(self, batch_id: str):
        """The batch, or a stand-in with status ``lost`` when the server does not know it (404)."""
        import openai

        try:
            return self.client.batches.retrieve(batch_id)
        except openai.NotFoundError:
            return SimpleNamespace(id=batch_id, status="lost", output_file_id=None, error_file_id=None,
                                   errors=None, request_counts=None)
        except self.errors as exc:
            raise TeacherError(f"Batch API retrieve: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None

    def download(self, file_id: str) -> str:
        return self._call("download", self.client.files.content, file_id).text

    def close(self) -> None:
        self.client.close()


def _jobs(store: Store, where: str, params: list) -> list[dict]:
    return store.df(f"SELECT * FROM batch_jobs WHERE {where} ORDER BY created_at, job_id", params).to_dict("records")


def _new_jobs(store: Store, model: str, dataset: str, prompt, temperature: float, max_tokens: int,
              todo: list[tuple[str, str, list[int]]], keys: dict[str, list[str]], max_batch_requests: int) -> None:
    """Commit jobs (and their requests) for the samples ``todo``; nothing is sent yet."""
    for start in range(0, len(todo), max_batch_requests):
        chunk = todo[start:start + max_batch_requests]
        gen_keys = [[keys[pid][i] for i in idxs] for pid, _, idxs in chunk]
        job_id = uuid.uuid4().hex[:16]
        reqs = pd.DataFrame({"job_id": job_id, "custom_id": [_custom_id(pid, idxs) for pid, _, idxs in chunk],
                             "problem_id": [pid for pid, _, _ in chunk], "sample_idxs": [idxs for _, _, idxs in chunk],
                             "gen_keys": gen_keys})
        store.add_batch_job({"job_id": job_id, "model": model, "dataset": dataset, "prompt_id": prompt.prompt_id,
                             "temperature": float(temperature), "max_tokens": max_tokens, "requests": len(chunk),
                             "samples": sum(len(ks) for ks in gen_keys)}, reqs)


def _custom_id(problem_id: str, sample_idxs: list[int]) -> str:
    return f"{problem_id}:{','.join(map(str, sample_idxs))}"


def _recheck(store: Store, job: dict) -> dict | None:
    """Drop from ``job`` (not yet submitted) the samples stored since it was planned, by gen_key;
    returns its ``requests`` and ``samples`` left, or None when none is left (the job is closed)."""
    reqs = store.df("SELECT custom_id, problem_id, sample_idxs, gen_keys FROM batch_requests WHERE job_id = ? "
                    "ORDER BY custom_id", [job["job_id"]])
    keys = [k for ks in reqs["gen_keys"] for k in ks]
    with registered(store.con, pd.DataFrame({"gen_key": keys})) as frame:
        stored = {r[0] for r in store.con.execute(
            f"SELECT gen_key FROM programs WHERE gen_key IN (SELECT gen_key FROM {frame})").fetchall()}
    if not stored:
        return {"requests": len(reqs), "samples": len(keys)}
    left = []
    for pid, idxs, gen_keys in zip(reqs["problem_id"], reqs["sample_idxs"], reqs["gen_keys"]):
        kept = [(i, k) for i, k in zip(idxs, gen_keys) if k not in stored]
        if kept:
            left.append({"custom_id": _custom_id(pid, [i for i, _ in kept]), "problem_id": pid,
                         "sample_idxs": [int(i) for i, _ in kept], "gen_keys": [k for _, k in kept]})
    store.shrink_batch_job(job["job_id"], pd.DataFrame(left, columns=["custom_id", "problem_id", "sample_idxs",
                                                                      "gen_keys"]))
    samples = len(keys) - len(stored)
    return {"requests": len(left), "samples": samples} if samples else None


def _input_file(store: Store, job: dict) -> bytes:
    prompt = Prompt("", store.scalar("SELECT text FROM prompts WHERE prompt_id = ?", [job["prompt_id"]]))
    reqs = store.con.execute("SELECT r.custom_id, r.sample_idxs, pr.question FROM batch_requests r "
                             "JOIN problems pr USING (problem_id) WHERE r.job_id = ? ORDER BY r.custom_id",
                             [job["job_id"]]).fetchall()
    lines = [json.dumps({"custom_id": cid, "method": "POST", "url": ENDPOINT,
                         "body": {"model": job["model"], "messages": [{"role": "user", "content": prompt.render(q)}],
                                  "n": len(idxs), "temperature": job["temperature"],
                                  "max_tokens": int(job["max_tokens"])}}, ensure_ascii=False)
             for cid, idxs, q in reqs]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _submit(store: Store, client: BatchClient, job: dict) -> dict | None:
    """Upload and create the batch of ``job``, committing each id as soon as it is known; the job
    without the samples stored since it was planned (None: it had none left, and was closed)."""
    if job["batch_id"]:
        return job
    found = client.find(job["job_id"], job["input_file_id"]) if job["input_file_id"] else None
    if found is None:
        left = _recheck(store, job)
        if left is None:
            return None
        if (left["requests"], left["samples"]) != (job["requests"], job["samples"]):
            job.update(left, input_file_id=None)  # the file uploaded (if any) asks for stored samples
        try:
            if not job["input_file_id"]:
                file_id = client.upload(f"pad-{job['job_id']}.jsonl", _input_file(store, job))
                store.set_batch_job(job["job_id"], input_file_id=file_id, status="uploaded")
                job.update(input_file_id=file_id, status="uploaded")
            found = client.create(job["input_file_id"], job["job_id"])
        except TeacherError as exc:
            if not job["input_file_id"] or getattr(exc, "refused", False):
                store.delete_batch_job(job["job_id"])  # nothing was created: the next run plans afresh
            raise
    store.set_batch_job(job["job_id"], batch_id=found.id, status=found.status, submitted_at=pd.Timestamp.now())
    job.update(batch_id=found.id, status=found.status)
    return job


def _parse_output(text: str, where: str) -> dict[str, dict]:
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TeacherError(f"{where}:{n}: invalid JSON in the batch output: {exc.msg}") from None
            out[str(rec.get("custom_id"))] = rec
    return out


def _line_error(rec: dict | None, status: str) -> str:
    if rec is None:
        return f"no output for this request (batch {status})"
    resp = rec.get("response") or {}
    err = rec.get("error") or (resp.get("body") or {}).get("error") or {}
    msg = err.get("message") if isinstance(err, dict) else str(err)
    return f"batch request failed ({resp.get('status_code', '?')}): {msg or 'no message'}"[:500]


def _ingest(store: Store, client: BatchClient, job: dict, batch, prices, stats: dict) -> None:
    """Download the results of a finished batch and store them, in one transaction."""
    results: dict[str, dict] = {}
    for fid in (batch.error_file_id, batch.output_file_id):  # output lines win over error lines
        if fid:
            results.update(_parse_output(client.download(fid), f"batch {batch.id} file {fid}"))
    reqs = store.con.execute("SELECT custom_id, problem_id, sample_idxs, gen_keys FROM batch_requests "
                             "WHERE job_id = ? ORDER BY custom_id", [job["job_id"]]).fetchall()
    status = batch.status
    if status == "failed" and getattr(batch, "errors", None) and batch.errors.data:
        status = f"failed: {batch.errors.data[0].message}"
    ok, failed = [], []
    for cid, pid, idxs, gen_keys in reqs:
        rec = results.get(cid)
        resp = (rec or {}).get("response") or {}
        body = resp.get("body") or {}
        texts = [c.get("message", {}).get("content") for c in body.get("choices") or []]
        texts = [t for t in texts if isinstance(t, str)][: len(idxs)]
        if resp.get("status_code") == 200 and texts:
            usage = body.get("usage") or {}
            ok += completion_rows(job["model"], job["prompt_id"], pid, idxs[: len(texts)], gen_keys[: len(texts)],
                                  texts, usage.get("prompt_tokens"), usage.get("completion_tokens"), prices,
                                  BATCH_DISCOUNT)
            stats["prompt_tokens"] += usage.get("prompt_tokens") or 0
            stats["completion_tokens"] += usage.get("completion_tokens") or 0
            missing = list(zip(idxs, gen_keys))[len(texts):]
            error = f"the batch answered {len(texts)} of {len(idxs)} samples"
        else:
            missing, error = list(zip(idxs, gen_keys)), _line_error(rec, status)
        failed += [{"gen_key": k, "problem_id": pid, "sample_idx": i, "model": job["model"], "error": error,
                    "attempts": 1} for i, k in missing]
        if missing:
            stats["last_error"] = error
    with store.transaction() as con:
        if ok:
            with registered(con, pd.DataFrame({"gen_key": [r["gen_key"] for r in ok]})) as keys:
                have = {r[0] for r in con.execute(f"SELECT gen_key FROM programs WHERE gen_key IN "
                                                  f"(SELECT gen_key FROM {keys})").fetchall()}
            ok = [r for r in ok if r["gen_key"] not in have]  # a live run stored them meanwhile
        stats["added"] += store.add_generated(ok, failed)
        stats["failed"] += len(failed)
        store.set_batch_job(job["job_id"], ingested=True, status=batch.status, output_file_id=batch.output_file_id,
                            error_file_id=batch.error_file_id)


def generate_batch(store: Store, model: str, dataset: str, base_url: str | None = None, samples: int = 4,
                   temperature: float = 0.7, max_tokens: int = 512, prompt: str | None = None,
                   split: str | None = None, limit: int | None = None, prices: tuple[float, float] | None = None,
                   poll_interval: float = 30.0, wait: bool = True, max_batch_requests: int = 50_000,
                   max_retries: int = 6, timeout: float = 120.0, api_key: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate the missing samples of ``dataset`` through the Batch API (see the module docstring).
    ``wait=False`` submits and returns; a later run polls. Returns generate's counts plus ``batches``
    (jobs this run submitted or polled), ``resumed`` (of them, from an earlier run), ``closed`` (jobs
    of an earlier run whose samples were all stored since: closed unsent) and ``pending``."""
    p, todo, keys, cached, _ = plan(store, model, dataset, samples, temperature, max_tokens, prompt, split, limit,
                                    unsent=True)  # jobs not sent yet are resumed below, not doubled
    config = "model = ? AND dataset = ? AND prompt_id = ? AND temperature = ? AND max_tokens = ?"
    params = [model, dataset, p.prompt_id, float(temperature), max_tokens]
    pending = _jobs(store, f"ingested_at IS NULL AND {config}", params)
    stats = {"requested_samples": 0, "cached": cached, "added": 0, "failed": 0, "requests": 0,
             "prompt_tokens": 0, "completion_tokens": 0, "batches": 0, "resumed": 0, "closed": 0, "pending": 0,
             "teacher": model, "prompt": p.name}
    t0 = time.perf_counter()
    _new_jobs(store, model, dataset, p, temperature, max_tokens, todo, keys, max_batch_requests)
    jobs = _jobs(store, f"ingested_at IS NULL AND {config}", params)
    client = BatchClient(base_url, api_key=api_key, max_retries=max_retries, timeout=timeout)
    try:
        submitted = [_submit(store, client, j) for j in jobs]
        jobs = [j for j in submitted if j is not None]
        stats["closed"] = len(submitted) - len(jobs)  # every sample stored since: nothing sent
        stats["resumed"] = len({j["job_id"] for j in pending} & {j["job_id"] for j in jobs})
        stats["batches"] = len(jobs)
        stats["requests"] = sum(j["requests"] for j in jobs)
        stats["requested_samples"] = total = sum(j["samples"] for j in jobs)
        finished = 0
        while jobs and wait:
            running = 0
            for job in list(jobs):
                b = client.retrieve(job["batch_id"])
                if b.status != job["status"]:
                    store.set_batch_job(job["job_id"], status=b.status)
                    job["status"] = b.status
                if b.status in TERMINAL:
                    _ingest(store, client, job, b, prices, stats)
                    jobs.remove(job)
                    finished += job["samples"]
                elif getattr(b, "request_counts", None) and b.request_counts.total:
                    c = b.request_counts
                    running += job["samples"] * (c.completed + c.failed) // c.total
            if progress:
                progress(finished + running, total)
            if jobs:
                time.sleep(poll_interval)
        stats["pending"] = len(jobs)
    finally:
        client.close()
    stats["seconds"] = time.perf_counter() - t0
    stats["programs_per_s"] = stats["added"] / stats["seconds"] if stats["seconds"] > 0 else 0.0
    return stats
