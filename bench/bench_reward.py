"""Execution rewards for RL: pad's reward vs ``subprocess.run`` per program vs unsandboxed ``exec``, one run.

    .venv/bin/python bench/bench_reward.py [--n 5120] [--batch 256] [--repeats 3] [--json bench/results/reward.json]

The same completions are scored three ways, each the whole reward (extract the program with
pad's extractor, run it, label the result with pad's rule, 1 for correct, 0 otherwise), so the
rows differ only in where the program runs:

- ``pad_train.rewards.ExecutionReward``: one warm sandbox pool (2 workers), batches of ``--batch``
  completions, as GRPO calls it; the rate over every batch and each batch's latency;
- ``subprocess.run([python, "-c", program])`` per program from 2 threads (a common recipe), on
  ``--subprocess-n`` completions because it is slow;
- in-process ``exec`` with no isolation at all (another common recipe): the ceiling;
- and the bare ``exec`` (compile, run, call) of pre-extracted programs, nothing else.

Completions are GSM8K-style programs (``bench_execute.make_programs``, a dozen arithmetic lines)
in a markdown fence between prose; a quarter are scored against a wrong gold. Every method must
give the same rewards. Then a batch of ``--batch`` with hostile completions mixed in (reading the
environment and the trainer's files, writing a file, killing the trainer, an infinite loop, a fork
bomb) goes through pad's reward: its time against the timeout, and whether anything leaked.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_execute import make_programs  # noqa: E402
from pad_data.rules.extract import extract_program  # noqa: E402
from pad_data.rules.labels import label_for  # noqa: E402
from pad_train.rewards import ExecutionReward  # noqa: E402

GOALS = {"rewards_per_s": 5000, "batch_ms": 100, "vs_exec": 0.3}
SECRET = "PAD_BENCH_TRAINER_SECRET"


def completions(n: int, seed: int = 0) -> tuple[list[str], list[float]]:
    """``n`` fenced completions and their golds (a quarter of them wrong for the program)."""
    rng = random.Random(seed)
    texts, golds = [], []
    for _, gold, program in make_programs(n, seed=seed):
        texts.append(f"Let me write a program for this.\n```python\n{program}```\nRunning it gives the answer.")
        golds.append(gold + 1 if rng.random() < 0.25 else gold)
    return texts, golds


def _score(status: str, value, gold: float) -> float:
    value_type = type(value).__name__ if value is not None else None
    return 1.0 if label_for(status, value_type, value, gold, None)[0] == "correct" else 0.0


def exec_rewards(texts: list[str], golds: list[float]) -> list[float]:
    """Unsandboxed: ``exec`` in this process (what a reward with ``exec()`` does)."""
    out = []
    for text, gold in zip(texts, golds):
        try:
            scope: dict = {}
            exec(compile(extract_program(text), "<completion>", "exec"), scope)
            out.append(_score("ok", scope["solution"](), gold))
        except Exception:  # noqa: BLE001 - a failing program earns 0
            out.append(0.0)
    return out


def _subprocess_one(text: str, gold: float, timeout: float) -> float:
    program = extract_program(text) + "\nprint(repr(solution()))\n"
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout)
        value = ast.literal_eval(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, SyntaxError, IndexError):
        return 0.0
    return _score("ok", value, gold) if value is not None else 0.0


def subprocess_rewards(texts: list[str], golds: list[float], timeout: float, threads: int = 2) -> list[float]:
    """A process per program: ``subprocess.run`` from ``threads`` threads."""
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(lambda tg: _subprocess_one(*tg, timeout), zip(texts, golds)))


def bare_exec_rate(texts: list[str]) -> float:
    """Programs/s of ``compile`` + ``exec`` + ``solution()`` alone, programs extracted beforehand."""
    programs = [extract_program(t) for t in texts]
    t0 = time.perf_counter()
    for source in programs:
        scope: dict = {}
        exec(compile(source, "<p>", "exec"), scope)
        scope["solution"]()
    return len(programs) / (time.perf_counter() - t0)


def pad_run(reward: ExecutionReward, texts: list[str], golds: list[float], batch: int) -> tuple[float, list, list]:
    """``(rewards/s, rewards, per-batch seconds)`` on the warm pool."""
    rewards, times = [], []
    t0 = time.perf_counter()
    for k in range(0, len(texts), batch):
        t = time.perf_counter()
        rewards += reward(texts[k:k + batch], answer=golds[k:k + batch])
        times.append(time.perf_counter() - t)
    return len(texts) / (time.perf_counter() - t0), rewards, times


def hostile_batch(batch: int, timeout: float) -> dict:
    """A batch with hostile completions mixed in, through pad's reward: time, and what leaked."""
    os.environ[SECRET] = "hunter2"
    me = os.getpid()
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "written-by-a-completion"
        precious = Path(d) / "trainer-file"
        precious.write_text("precious")
        hostile = [
            "import os\ndef solution():\n    return repr(dict(os.environ))",
            f"def solution():\n    return open('/proc/{me}/environ').read()",
            f"def solution():\n    return open({str(precious)!r}).read()",
            f"def solution():\n    open({str(target)!r}, 'w').write('x')\n    return 42",
            f"def solution():\n    open({str(precious)!r}, 'w').write('gone')\n    return 42",
            f"import os, signal\ndef solution():\n    os.kill({me}, signal.SIGKILL)\n    return 42",
            "def solution():\n    while True:\n        pass",
            "import os\ndef solution():\n    while True:\n        os.fork()",
        ]
        texts = [f"```python\n{h}\n```" for h in hostile]
        texts += [f"```python\ndef solution():\n    return {i} * 2\n```" for i in range(batch - len(texts))]
        golds = [42.0] * len(hostile) + [float(i * 2) for i in range(batch - len(hostile))]
        with ExecutionReward(timeout=timeout) as reward:
            reward(texts[:2], answer=golds[:2])
            t = time.perf_counter()
            rewards = reward(texts, answer=golds)
            seconds = time.perf_counter() - t
            labels = [label for label, _ in reward.last]
            leaked = any("hunter2" in str(r.value) or "precious" in str(r.value) for r in reward.last_results)
        return {"seconds": seconds, "timeout": timeout, "hostile": len(hostile),
                "hostile_labels": labels[:len(hostile)], "hostile_reward": sum(rewards[:len(hostile)]),
                "others_correct": sum(rewards[len(hostile):]) == batch - len(hostile), "leaked": leaked,
                "file_written": target.exists(), "trainer_file_intact": precious.read_text() == "precious"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5120)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--subprocess-n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "reward.json"))
    args = ap.parse_args(argv)
    texts, golds = completions(args.n)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.2f}")
    runs: dict[str, list] = {"pad": [], "exec": [], "bare_exec": [], "batch_ms": []}
    with ExecutionReward(timeout=args.timeout) as reward:
        pad_run(reward, texts[:args.batch], golds[:args.batch], args.batch)  # unmeasured: every worker warm
        for _ in range(args.repeats):
            rate, pad_rewards, times = pad_run(reward, texts, golds, args.batch)
            runs["pad"].append(rate)
            runs["batch_ms"] += [1000 * s for s in times]
            t0 = time.perf_counter()
            exec_out = exec_rewards(texts, golds)
            runs["exec"].append(len(texts) / (time.perf_counter() - t0))
            runs["bare_exec"].append(bare_exec_rate(texts))
            assert exec_out == pad_rewards, "pad and in-process exec disagree"
        isolation = reward.pool.isolation
    sub_n = min(args.subprocess_n, len(texts))
    t0 = time.perf_counter()
    sub_out = subprocess_rewards(texts[:sub_n], golds[:sub_n], timeout=max(args.timeout, 5.0))
    sub_rate = sub_n / (time.perf_counter() - t0)
    assert sub_out == pad_rewards[:sub_n], "pad and subprocess.run disagree"
    hostile = hostile_batch(args.batch, args.timeout)
    pad, ex, bare = (statistics.median(runs[k]) for k in ("pad", "exec", "bare_exec"))
    batch_ms = statistics.median(runs["batch_ms"])
    p90 = statistics.quantiles(runs["batch_ms"], n=10)[-1] if len(runs["batch_ms"]) > 1 else batch_ms
    result = {"n": args.n, "batch": args.batch, "repeats": args.repeats, "isolation": isolation,
              "rewards_per_s": {"pad": pad, "exec": ex, "bare_exec": bare, "subprocess_run": sub_rate},
              "batch_ms": {"median": batch_ms, "p90": p90}, "vs_exec": pad / ex, "vs_bare_exec": pad / bare,
              "vs_subprocess": pad / sub_rate, "accuracy_of_completions": sum(pad_rewards) / len(pad_rewards),
              "hostile": hostile, "runs": runs, "load": os.getloadavg()[0]}
    result["goals"] = {"rewards_per_s": pad >= GOALS["rewards_per_s"], "batch_ms": batch_ms <= GOALS["batch_ms"],
                       "vs_exec": pad / ex >= GOALS["vs_exec"],
                       "hostile": (not hostile["leaked"] and not hostile["file_written"]
                                   and hostile["trainer_file_intact"] and hostile["others_correct"]
                                   and hostile["hostile_reward"] == 0)}
    print(f"{'':58} {'rewards/s':>10} {'pad is':>8}")
    rows = [("pad ExecutionReward, warm pool, 2 workers, isolation " + isolation, pad, ""),
            (f"subprocess.run per program, 2 threads ({sub_n} completions)", sub_rate, f"{pad / sub_rate:.0f}x"),
            ("in-process exec, no isolation, same extraction and labels", ex, f"{pad / ex:.2f}x"),
            ("bare exec of pre-extracted programs (no extraction, labels)", bare, f"{pad / bare:.2f}x")]
    for name, rate, vs in rows:
        print(f"{name:58} {rate:>10,.0f} {vs:>8}")
    print(f"batch of {args.batch}: median {batch_ms:.1f} ms, p90 {p90:.1f} ms; hostile batch "
          f"{hostile['seconds']:.2f} s at timeout {args.timeout:g} s ({', '.join(hostile['hostile_labels'])}); "
          f"leaked: {hostile['leaked']}, file written: {hostile['file_written']}")
    print("goals: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in result["goals"].items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
