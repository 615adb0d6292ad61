"""Live-store benchmark: `pad sql` polled every 0.5 s while `pad execute` runs, vs the same execute alone.

    .venv/bin/python bench/bench_live.py [--n 300000] [--repeats 2] [--poll 0.5] [--within 3] [--api] [--control]

A store of ``--n`` GSM-style programs (bench_execute's) is copied for every run. Each repeat
runs ``pad execute`` twice on a fresh copy, in alternating order: alone (the baseline), and
while another thread runs ``pad sql "SELECT count(*) FROM executions"`` in a loop, one poll
every ``--poll`` seconds (the next starts when the last ended if that took longer). Reported:
the share of polls answered (exit 0) within ``--within`` seconds, whether the counts grew,
and the stage's programs/s (its own timer) with the poller over without it. The figure the
issue asks for: >= 90% of polls answered within 3 s, with counts that grow, and a throughput
ratio >= 0.90. ``--api`` adds a second reader at the same time: the Python API polled from this
process (open read-only, count, close), with no process start-up in its times. ``--control``
adds a third run per repeat: the same poller reading a copy of the store that the stage never
touches. Since the stage answers `pad sql` on its own store (pad_data.store.live_reads), the control's
polls are the full command instead (start DuckDB, open the copy): what a poll costs without live reads.

``--before REV`` also runs the same pair with pad as it was at git revision REV (its
``pad_data`` extracted to a temporary folder; its own schema), for the figures before the live
store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PAD = str(Path(sys.executable).with_name("pad"))

import duckdb  # noqa: E402
from bench_execute import fill_store, gsm_program  # noqa: E402
from pad_data.store import Store  # noqa: E402

RATE = re.compile(r"executed ([\d,]+) programs in ([\d.]+) s \(([\d,]+)/s")


def make_store(path: Path, n: int, schema: int | None = None) -> None:
    rng = random.Random(0)
    triples = []
    for i in range(n):
        gold = float(100 + (i // 4) * 7 % 800)  # one gold per question: its 4 programs share it
        triples.append((f"Question {i // 4}: how much does the order cost?", gold, gsm_program(rng, gold)))
    with Store(path, migrate_to=schema) as st:
        fill_store(st, triples)


def old_pad(rev: str, work: Path) -> tuple[list[str], dict, int]:
    """The ``pad`` command of git revision ``rev``, its environment, and its schema version."""
    folder = work / f"pad-{rev}"
    folder.mkdir()
    subprocess.run(f"git -C {ROOT} archive {rev} pad_data | tar -x -C {folder}", shell=True, check=True)
    env = dict(os.environ, PYTHONPATH=str(folder))
    # -c and -m put the working folder first on sys.path, before the installed (editable) pad
    schema = subprocess.run([sys.executable, "-c", "from pad_data.store import SCHEMA_VERSION; print(SCHEMA_VERSION)"],
                            env=env, cwd=folder, capture_output=True, text=True, check=True).stdout
    return [sys.executable, "-m", "pad_data.cli"], env, int(schema)


def cwd_of(env: dict | None) -> str | None:
    return env["PYTHONPATH"] if env else None


def poller(pad: list[str], env: dict | None, db: Path, every: float, stop: threading.Event, out: list) -> None:
    """``pad sql`` in a loop until ``stop``: (start, seconds, exit code, count or None) per poll."""
    t0 = time.monotonic()
    nxt = t0
    while not stop.is_set():
        start = time.monotonic()
        res = subprocess.run(pad + ["--db", str(db), "sql", "SELECT count(*) AS n FROM executions", "--format", "csv"],
                             capture_output=True, text=True, env=env, cwd=cwd_of(env))
        took = time.monotonic() - start
        count = int(res.stdout.splitlines()[1]) if res.returncode == 0 else None
        out.append({"at": round(start - t0, 3), "seconds": round(took, 3), "code": res.returncode, "count": count,
                    "error": res.stderr.strip()[-200:] if res.returncode else None})
        nxt = max(nxt + every, time.monotonic())
        stop.wait(max(0.0, nxt - time.monotonic()))


def api_poller(db: Path, every: float, stop: threading.Event, out: list, retry: bool) -> None:
    """The Python API in a loop (this process: no start-up cost, so its time is the wait for the
    store): open read-only, count, close. ``retry``: pad's Store (waits while the store is held);
    else a bare DuckDB connection, which fails while the store is held."""
    t0 = time.monotonic()
    nxt = t0
    while not stop.is_set():
        start = time.monotonic()
        try:
            if retry:
                with Store(db, read_only=True) as st:
                    count, err = st.scalar("SELECT count(*) FROM executions"), None
            else:
                con = duckdb.connect(str(db), read_only=True)
                count, err = con.execute("SELECT count(*) FROM executions").fetchall()[0][0], None
                con.close()
        except Exception as exc:  # noqa: BLE001 - a refused poll is a result
            count, err = None, str(exc).splitlines()[0][:200]
        out.append({"at": round(start - t0, 3), "seconds": round(time.monotonic() - start, 4),
                    "code": 0 if err is None else 1, "count": count, "error": err})
        nxt = max(nxt + every, time.monotonic())
        stop.wait(max(0.0, nxt - time.monotonic()))


def run_execute(template: Path, work: Path, poll: float | None, workers: int, pad: list[str] | None = None,
                env: dict | None = None, api: bool = False, twin: Path | None = None) -> dict:
    """One ``pad execute`` on a fresh copy of ``template``, polled every ``poll`` seconds (or not).
    ``twin``: the poller reads that other store instead, a copy nobody writes: the same
    processes and queries, the same CPU, but never the stage's store (the control)."""
    before = pad is not None
    pad = pad or [PAD]
    db = work / "run.duckdb"
    shutil.copy(template, db)
    polls: list = []
    api_polls: list = []
    stop = threading.Event()
    threads = []
    if poll:
        threads = [threading.Thread(target=poller, args=(pad, env, twin or db, poll, stop, polls), daemon=True)]
        if api:
            threads.append(threading.Thread(target=api_poller, args=(db, poll, stop, api_polls, not before),
                                            daemon=True))
    t = time.perf_counter()
    stage = subprocess.Popen(pad + ["--db", str(db), "execute", "--workers", str(workers)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd_of(env))
    for thread in threads:
        thread.start()
    out, err = stage.communicate()
    wall = time.perf_counter() - t
    stop.set()
    for thread in threads:
        thread.join()
    if stage.returncode != 0:
        raise RuntimeError(f"pad execute failed: {err[-500:]}")
    m = RATE.search(" ".join(out.split()))  # the table title wraps at any width
    if not m:
        raise RuntimeError(f"no rate in pad execute's output: {out[:400]!r}")
    db.unlink()
    return {"executed": int(m.group(1).replace(",", "")), "stage_seconds": float(m.group(2)),
            "programs_per_s": int(m.group(1).replace(",", "")) / float(m.group(2)), "wall_s": wall, "polls": polls,
            "api_polls": api_polls}


def summarize(polls: list, within: float) -> dict:
    answered = [p for p in polls if p["code"] == 0 and p["seconds"] <= within]
    counts = [p["count"] for p in polls if p["count"] is not None]
    return {"polls": len(polls), "answered_within": len(answered),
            "share": len(answered) / len(polls) if polls else 0.0,
            "median_poll_s": statistics.median(p["seconds"] for p in polls) if polls else None,
            "max_poll_s": max((p["seconds"] for p in polls), default=None),
            "errors": sorted({p["error"] for p in polls if p["error"]}),
            "counts_grow": counts == sorted(counts) and len(set(counts)) > 2,
            "distinct_counts": len(set(counts))}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--poll", type=float, default=0.5)
    ap.add_argument("--within", type=float, default=3.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--api", action="store_true",
                    help="also poll the Python API from this process at the same time (a second reader)")
    ap.add_argument("--before", help="git revision of pad to run the same pair with, for comparison")
    ap.add_argument("--control", action="store_true",
                    help="also run the stage with the same poller reading a copy of the store that nobody writes: "
                         "what the poller's CPU alone costs the stage, with no store shared")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "live.json"))
    return ap.parse_args()


def run_versions(args: argparse.Namespace, work: Path, results: dict) -> list[str]:
    """Build the stores, then every repeat's runs (alone, polled, control) for pad now and ``--before``,
    in alternating order; each run is appended to ``results["runs"]``. Returns the versions run."""
    template = work / "template.duckdb"
    t = time.perf_counter()
    make_store(template, args.n)
    print(f"store of {args.n:,} programs in {time.perf_counter() - t:.1f} s", flush=True)
    idle = [time.perf_counter()]
    res = subprocess.run([PAD, "--db", str(template), "sql", "SELECT count(*) FROM programs"], capture_output=True)
    results["pad_sql_idle_s"] = time.perf_counter() - idle[0]
    assert res.returncode == 0
    versions = [("now", None, None, template)]
    if args.before:
        pad, env, schema = old_pad(args.before, work)
        old_template = work / "template-before.duckdb"
        make_store(old_template, args.n, schema=schema)
        versions.append((args.before, pad, env, old_template))
    for k in range(args.repeats):
        for version, pad, env, tmpl in versions:
            modes = [False, True] + (["control"] if args.control else [])
            for polled in (modes if k % 2 == 0 else modes[::-1]):
                twin = None
                if polled == "control":
                    twin = work / "twin.duckdb"
                    shutil.copy(tmpl, twin)
                r = run_execute(tmpl, work, args.poll if polled else None, args.workers, pad, env,
                                args.api and polled is True, twin)
                r.update(polled=polled, version=version)
                if polled:
                    r["summary"] = summarize(r["polls"], args.within)
                    r["api_summary"] = summarize(r["api_polls"], args.within)
                results["runs"].append(r)
                print(json.dumps({"version": version, "polled": polled, "programs_per_s": round(r["programs_per_s"]),
                                  "wall_s": round(r["wall_s"], 1), **r.get("summary", {}),
                                  "api": r.get("api_summary") if args.api else None}), flush=True)
    return [version for version, *_ in versions]


def report(args: argparse.Namespace, versions: list[str], results: dict) -> None:
    """Print the table of medians per version (and the API reader's and the control's figures), and
    keep them in ``results["summary"]``."""
    print(f"\n| pad | programs | execute alone, programs/s | with `pad sql` every {args.poll} s | throughput ratio | "
          f"polls answered within {args.within:g} s | median / max poll | counts grow |")
    print("|---|---|---|---|---|---|---|---|")
    results["summary"] = {}
    for version in versions:
        runs = [r for r in results["runs"] if r["version"] == version]
        base = statistics.median(r["programs_per_s"] for r in runs if not r["polled"])
        live = statistics.median(r["programs_per_s"] for r in runs if r["polled"] is True)
        polls = [p for r in runs if r["polled"] is True for p in r["polls"]]
        api = summarize([p for r in runs if r["polled"] is True for p in r["api_polls"]], args.within)
        s = results["summary"][version] = {
            "baseline_programs_per_s": base, "polled_programs_per_s": live, "throughput_ratio": live / base,
            **summarize(polls, args.within), "api": api,
            "counts_grow_every_run": all(r["summary"]["counts_grow"] for r in runs if r["polled"] is True)}
        print(f"| {version} | {args.n:,} | {base:,.0f} | {live:,.0f} | {s['throughput_ratio']:.2f} | "
              f"{s['answered_within']} of {s['polls']} ({100 * s['share']:.0f}%) | {s['median_poll_s']:.2f} s / "
              f"{s['max_poll_s']:.2f} s | {s['counts_grow_every_run']} |")
        if api["polls"]:
            print(f"  {version}, the Python API polled from this process at the same time: {api['answered_within']} "
                  f"of {api['polls']} answered within {args.within:g} s, median {api['median_poll_s']:.3f} s, max "
                  f"{api['max_poll_s']:.3f} s" + (f"; errors: {api['errors'][:1]}" if api["errors"] else ""))
        if s["errors"]:
            print(f"  {version}: errors seen: {s['errors'][:2]}")
        control = [r for r in runs if r["polled"] == "control"]
        if control:
            c = statistics.median(r["programs_per_s"] for r in control)
            cpolls = summarize([p for r in control for p in r["polls"]], args.within)
            s["control_programs_per_s"], s["control_ratio"] = c, c / base
            print(f"  {version}, control (the same poller on a copy of the store nobody writes): {c:,.0f} programs/s, "
                  f"ratio {c / base:.2f}; its polls: median {cpolls['median_poll_s']:.2f} s, {cpolls['polls']} polls. "
                  f"The live store's own cost: {live / c:.2f} of the control's throughput")


def main() -> None:
    args = parse_args()
    results: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                 "load_avg_at_start": os.getloadavg()},
                     "n": args.n, "poll_s": args.poll, "within_s": args.within, "runs": []}
    with tempfile.TemporaryDirectory(prefix="pad-live-") as d:
        versions = run_versions(args, Path(d), results)
    report(args, versions, results)
    results["load_avg_at_end"] = os.getloadavg()
    print(f"`pad sql` on an idle store: {results['pad_sql_idle_s']:.2f} s; load average at start "
          f"{results['machine']['load_avg_at_start'][0]:.1f}, at end {results['load_avg_at_end'][0]:.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")

if __name__ == "__main__":
    main()
