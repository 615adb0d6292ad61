"""Generation benchmark: ``pad generate`` vs a bare ``openai`` client loop, same server, same run.

    .venv/bin/python bench/bench_generate.py [--questions 1319] [--samples 4] [--repeats 3]

The server is the local OpenAI-compatible test server (tests/openai_server.py) on 127.0.0.1,
with no injected faults, so the figures measure pad's own overhead: prompt rendering, cache
look-ups, code extraction, and committing every response to DuckDB as it arrives. The
baseline sends the same requests (same prompts, ``n`` = samples) with the same concurrency
through ``AsyncOpenAI`` and keeps the responses in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from openai_server import FakeTeacherServer  # noqa: E402

from pad_data.stages.generate import generate, make_teacher  # noqa: E402
from pad_data.stages.ingest import ingest  # noqa: E402
from pad_data.teachers.prompts import load_prompt  # noqa: E402
from pad_data.store import Store  # noqa: E402

GSM_TEST = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


async def bare_loop(base_url: str, questions: list[str], samples: int, concurrency: int) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    prompt = load_prompt("arithmetic")
    sem = asyncio.Semaphore(concurrency)
    out = []

    async def one(q: str) -> None:
        async with sem:
            r = await client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": prompt.render(q)}], n=samples,
                temperature=0.7, max_tokens=512)
            out.extend(c.message.content for c in r.choices)

    t = time.perf_counter()
    await asyncio.gather(*(one(q) for q in questions))
    dt = time.perf_counter() - t
    await client.close()
    assert len(out) == len(questions) * samples
    return dt


def pad_run(base_url: str, questions_file: Path, n: int, samples: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory() as d, Store(Path(d) / "g.duckdb") as st:
        ingest(st, questions_file, "gsm8k", limit=n)
        teacher = make_teacher("openai", "bench", base_url=base_url)
        t = time.perf_counter()
        r = generate(st, teacher, "gsm8k", samples=samples, concurrency=concurrency, temperature=0.7)
        dt = time.perf_counter() - t
        assert r["added"] == n * samples, r
        return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=1319)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "generate.json"))
    args = ap.parse_args()
    if GSM_TEST.exists():
        qfile = GSM_TEST
    else:
        qfile = Path(tempfile.mkdtemp()) / "q.jsonl"
        qfile.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"}) + "\n"
                                 for i in range(args.questions)))
    questions = [json.loads(line)["question"] for line in qfile.read_text().splitlines()][: args.questions]
    n = len(questions)
    rows = []
    print(f"{n} questions x {args.samples} samples (n={args.samples} per request), {os.cpu_count()} cores, "
          f"medians of {args.repeats}")
    print(f"{'concurrency':>11} {'bare req/s':>11} {'pad req/s':>10} {'pad programs/s':>15} "
          f"{'overhead ms/program':>20}")
    with FakeTeacherServer() as srv:
        for c in [int(x) for x in args.concurrency.split(",")]:
            bare = statistics.median(asyncio.run(bare_loop(srv.base_url, questions, args.samples, c))
                                     for _ in range(args.repeats))
            pad = statistics.median(pad_run(srv.base_url, qfile, n, args.samples, c)
                                    for _ in range(args.repeats))
            row = {"concurrency": c, "bare_requests_per_s": n / bare, "pad_requests_per_s": n / pad,
                   "pad_programs_per_s": n * args.samples / pad,
                   "overhead_ms_per_program": 1000 * (pad - bare) / (n * args.samples),
                   "pad_over_bare_time": pad / bare}
            rows.append(row)
            print(f"{c:>11} {row['bare_requests_per_s']:>11,.0f} {row['pad_requests_per_s']:>10,.0f} "
                  f"{row['pad_programs_per_s']:>15,.0f} {row['overhead_ms_per_program']:>20.3f}", flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"questions": n, "samples": args.samples, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
