"""Execution benchmark: ``pad execute`` end to end vs two baselines measured in the same run.

    .venv/bin/python bench/bench_execute.py [--n 20000] [--repeats 3] [--json bench/results/execute.json]

Programs are GSM8K-style (a dozen arithmetic lines, ``def solution(): ... return result``),
one per GSM8K train question when ``../shared/data`` is present. Figures are medians of
``--repeats`` runs. Rows:
- in-process exec (single core, no sandbox): the ceiling;
- process-per-program, in the style of openai/human-eval ``execution.py`` (a fresh
  ``multiprocessing.Process`` per program with a Manager list, run from a thread pool of
  ``--workers`` threads), on a subset because it is slow;
- ``pad execute`` end to end: read from DuckDB, run in the sandbox pool, label, write back;
- the same with 1% infinite loops and with 10% runtime errors;
- every slower path, sandbox only (no store): the fast path alone, the same programs forced
  through the forked path (a child per program), and PoT's real zero-shot programs (numpy,
  always forked) when ``../shared/data/pot`` is present;
- what each kind of program costs against the fast path in the same run: trivial programs that
  import ``fractions`` or define a class (both forked), and PoT zero-shot programs, TabMWP
  scripts and the realistic mix (bench/realistic.py's program styles, its correct programs: PAL,
  PoT scripts, helpers, ``math``, ``fractions``, numpy, sympy, classes), each as a ratio to an
  in-process loop over the same programs (those that finish in it within 0.5 s: a loop would
  measure only the timeout).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pad_data.stages.execute import execute  # noqa: E402
from pad_data.sandbox.pool import SandboxPool  # noqa: E402
from pad_data.sandbox.isolation import resolve  # noqa: E402
from pad_data.store import Store, problem_id, program_id  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
POT_ZS = SHARED.parents[1] / "pot" / "multiarith_zs.jsonl"
TABMWP = SHARED.parents[1] / "pot" / "tabmwp.jsonl"
LOOP = "def solution():\n    x = 0\n    while True:\n        x += 1\n    return x\n"


def gsm_program(rng: random.Random, gold: float) -> str:
    a, b, c = rng.randint(2, 60), rng.randint(2, 30), rng.randint(2, 9)
    return (
        "def solution():\n"
        '    """A shop sells pens in boxes; how much does the order cost?"""\n'
        f"    boxes = {a}\n"
        f"    pens_per_box = {b}\n"
        f"    price_per_pen = {c}\n"
        "    total_pens = boxes * pens_per_box\n"
        "    cost = total_pens * price_per_pen\n"
        f"    discount = cost * {rng.choice([0, 10, 20])} / 100\n"
        "    shipping = 5\n"
        "    subtotal = cost - discount + shipping\n"
        "    tax = subtotal * 0.0\n"
        f"    adjustment = {gold} - (subtotal + tax)\n"
        "    result = subtotal + tax + adjustment\n"
        "    return result\n"
    )


def make_programs(n: int, loops: float = 0.0, errors: float = 0.0, seed: int = 0) -> list[tuple[str, float, str]]:
    """``(question, gold, program)`` triples."""
    rng = random.Random(seed)
    questions = []
    if SHARED.exists():
        for line in SHARED.read_text().splitlines():
            rec = json.loads(line)
            questions.append((rec["question"], float(rec["answer"].split("####")[-1].replace(",", ""))))
    else:
        questions = [(f"Question {i}?", float(i)) for i in range(5000)]
    out = []
    for i in range(n):
        q, gold = questions[i % len(questions)]
        prog = gsm_program(rng, gold)
        r = rng.random()
        if r < loops:
            prog = LOOP
        elif r < loops + errors:
            prog = prog.replace("return result", "return reslt")
        out.append((q, gold, prog + f"# sample {i}\n"))
    return out


# ------------------------------------------------------------------ baselines
def inprocess(programs: list[str]) -> float:
    t = time.perf_counter()
    for src in programs:
        g: dict = {}
        exec(compile(src, "<program>", "exec"), g)
        g["solution"]()
    return len(programs) / (time.perf_counter() - t)


def _he_unsafe_execute(src: str, result) -> None:
    try:
        g: dict = {}
        exec(src, g)
        g["solution"]()
        result.append("passed")
    except BaseException as e:  # noqa: BLE001
        result.append(f"failed: {e}")


def _he_check(src: str, timeout: float = 2.0) -> str:
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=_he_unsafe_execute, args=(src, result))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()
    out = result[0] if result else "timed out"
    manager.shutdown()
    return out


def process_per_program(programs: list[str], workers: int) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(_he_check, programs))
    return len(programs) / (time.perf_counter() - t)


# ------------------------------------------------------------------ pad
def fill_store(st: Store, triples: list[tuple[str, float, str]]) -> None:
    """Store ``(question, gold, program)`` triples as problems and programs (dataset ``bench``)."""
    probs = {}
    rows = []
    for i, (q, gold, prog) in enumerate(triples):
        pid = problem_id("bench", q)
        probs[pid] = {"problem_id": pid, "dataset": "bench", "split": "train", "question": q,
                      "answer": gold, "answer_text": str(gold)}
        rows.append({"program_id": program_id(pid, prog, "bench", i), "problem_id": pid,
                     "origin": "import", "teacher": "bench", "sample_idx": i, "program": prog})
    with st.transaction():
        st.insert_new("problems", pd.DataFrame(list(probs.values())), "problem_id")
        st.insert_new("programs", pd.DataFrame(rows), "program_id")


def pad_end_to_end(triples: list[tuple[str, float, str]], workers: int, timeout: float) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        with Store(Path(d) / "bench.duckdb") as st:
            fill_store(st, triples)
            t = time.perf_counter()
            r = execute(st, workers=workers, timeout=timeout)
            rate = r["executed"] / (time.perf_counter() - t)
            assert r["executed"] == len(triples)
            return rate, r["labels"]


def pool_rate(programs: list[str], workers: int, warm: bool = False, **kw) -> float:
    """Programs/s through the sandbox pool alone (workers already started; ``warm``: after one
    unmeasured pass over every program, so each worker has preloaded numpy and sympy)."""
    with SandboxPool(workers=workers, timeout=2.0, **kw) as pool:
        list(pool.map(enumerate(programs if warm else programs[:workers])))
        t = time.perf_counter()
        n = sum(1 for _ in pool.map(enumerate(programs)))
        return n / (time.perf_counter() - t)


def pot_programs(path: Path = POT_ZS, n: int | None = None) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["generated"] for line in path.read_text().splitlines()[:n]]


class _Late(BaseException):
    pass


def _late(*_):
    raise _Late


def finishing(programs: list[str], limit: float = 0.5) -> list[str]:
    """The programs that end within ``limit`` seconds in-process (PoT has infinite loops)."""
    import contextlib
    import io
    import signal

    keep, old = [], signal.signal(signal.SIGALRM, _late)
    with contextlib.redirect_stdout(io.StringIO()):
        for src in programs:
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                exec(compile(src, "<program>", "exec"), {})
                keep.append(src)
            except _Late:
                pass
            except BaseException:  # noqa: BLE001 - a program's error is still a finished program
                keep.append(src)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)
    return keep


def inprocess_any(programs: list[str]) -> float:
    """An in-process exec loop over any programs (scripts or ``solution()``), stdout discarded."""
    import contextlib
    import io

    import numpy  # noqa: F401 - imported once, as a warm sandbox worker has both
    import sympy  # noqa: F401
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for src in programs:
            g: dict = {}
            try:
                exec(compile(src, "<program>", "exec"), g)
                if callable(g.get("solution")):
                    g["solution"]()
            except Exception:  # noqa: BLE001
                pass
    return len(programs) / (time.perf_counter() - t)


def trivial(kind: str, n: int) -> list[str]:
    if kind == "fractions":
        return [f"from fractions import Fraction\n\ndef solution():\n    a = Fraction({i}, 7)\n"
                "    return float((a * 3 + 1).limit_denominator())\n" for i in range(n)]
    return [f"class Problem:\n    def __init__(self):\n        self.a = {i}\n        self.b = 3\n\n"
            "    def answer(self):\n        return self.a * self.b + 1\n\n\n"
            "def solution():\n    return Problem().answer()\n" for i in range(n)]


def realistic_mix(n: int) -> list[str]:
    """``n`` of bench/realistic.py's teacher programs that it made correct, in its mix of styles."""
    sys.path.insert(0, str(Path(__file__).parent))
    import realistic

    out: list[str] = []
    for _, programs, results in realistic.problems_stream(4 * n):
        out += [p["program"] for p, r in zip(programs, results) if r["label"] == "correct"]
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--baseline-n", type=int, default=600, help="programs for process-per-program")
    ap.add_argument("--loop-timeout", type=float, default=0.1,
                    help="timeout for the 1%% infinite-loop run (each loop costs this much)")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "execute.json"))
    args = ap.parse_args()

    clean = make_programs(args.n)
    progs = [p for _, _, p in clean]
    rows = []

    def med(f, label, n, **extra):
        vals = [f() for _ in range(args.repeats)]
        rates = [v[0] if isinstance(v, tuple) else v for v in vals]
        row = {"benchmark": label, "programs": n, "programs_per_s": statistics.median(rates),
               "runs": [round(r, 1) for r in rates], **extra}
        rows.append(row)
        print(f"  {label:58s} {row['programs_per_s']:>10,.0f}/s", flush=True)
        return row

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"python {platform.python_version()}, isolation={resolve('auto')}")
    ceiling = med(lambda: inprocess(progs), "in-process exec, 1 core (unsandboxed ceiling)", len(progs))
    he = med(lambda: process_per_program(progs[: args.baseline_n], args.workers),
             f"process-per-program, human-eval style ({args.workers} threads)", args.baseline_n)
    # one unmeasured run first: run after run in one process the rate rises, and the first pad rows,
    # after the process-per-program baseline, come out below the later ones (bench/README.md)
    pad_end_to_end(clean, args.workers, 2.0)
    pad = med(lambda: pad_end_to_end(clean, args.workers, 2.0),
              f"pad execute end to end ({args.workers} workers)", len(clean))
    errs = make_programs(args.n, errors=0.10, seed=1)
    med(lambda: pad_end_to_end(errs, args.workers, 2.0), "pad execute, 10% runtime errors", len(errs))
    loops = make_programs(args.n, loops=0.01, seed=2)
    n_loops = sum(p.startswith(LOOP) for _, _, p in loops)
    ideal = len(loops) / (len(loops) / pad["programs_per_s"] + n_loops * args.loop_timeout / args.workers)
    med(lambda: pad_end_to_end(loops, args.workers, args.loop_timeout),
        f"pad execute, 1% infinite loops (timeout {args.loop_timeout:g} s)", len(loops),
        loops=n_loops, bound_if_each_loop_costs_its_timeout=round(ideal, 1))
    fast = med(lambda: pool_rate(progs, args.workers), "sandbox only: fast path (in the zygote)", len(progs))
    forked_n = min(len(progs), 2000)
    forked = med(lambda: pool_rate(progs[:forked_n], args.workers, fast_path=False),
                 "sandbox only: same programs, each forked", forked_n)
    kinds_n = min(len(progs), 3000)
    for kind in ("fractions", "class"):
        tp = trivial(kind, kinds_n)
        med(lambda: pool_rate(tp, args.workers), f"sandbox only: trivial programs, {kind}", kinds_n,
            vs_fast_path=None)
        rows[-1]["vs_fast_path"] = round(rows[-1]["programs_per_s"] / fast["programs_per_s"], 3)
    # bench/realistic.py's correct programs only: its corrupted ones (os.system, exit...) must not run unsandboxed
    mixes = [("PoT zero-shot (numpy)", pot_programs()), ("TabMWP scripts", pot_programs(TABMWP, 3000)),
             ("realistic mix", realistic_mix(kinds_n))]
    for label, mix in mixes:
        mix = finishing(mix)
        if not mix:
            continue
        base = med(lambda: inprocess_any(mix), f"in-process exec loop: {label}", len(mix))
        med(lambda: pool_rate(mix, args.workers, warm=True), f"sandbox only: {label}", len(mix))
        rows[-1]["vs_inprocess"] = round(rows[-1]["programs_per_s"] / base["programs_per_s"], 3)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "isolation": resolve("auto")},
        "rows": rows,
        "ratios": {"pad_vs_inprocess": pad["programs_per_s"] / ceiling["programs_per_s"],
                   "pad_vs_process_per_program": pad["programs_per_s"] / he["programs_per_s"],
                   "fast_vs_forked": fast["programs_per_s"] / forked["programs_per_s"]},
        "peak_parent_rss_mb": round(peak_mb, 1),
        "loop_model": f"each loop costs its timeout on one of {args.workers} workers: "
                      f"bound {ideal:,.0f}/s",
    }
    print(f"\npad / in-process exec: {summary['ratios']['pad_vs_inprocess']:.2f}x   "
          f"pad / process-per-program: {summary['ratios']['pad_vs_process_per_program']:.1f}x   "
          f"peak parent RSS {peak_mb:.0f} MiB")
    print(f"1% loops: {summary['loop_model']}")
    for row in rows:
        for key in ("vs_fast_path", "vs_inprocess"):
            if row.get(key) is not None:
                print(f"{row['benchmark']}: {row[key]:.2f}x {key[3:].replace('_', ' ')}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
