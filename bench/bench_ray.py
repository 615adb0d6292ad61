"""`pad execute --engine ray` on a local Ray cluster vs `--engine local`, on this machine.

The same 20,000 GSM8K-style programs (bench_execute.make_programs) are executed three ways,
each into a fresh store: the local engine (the baseline, measured in the same run), Ray
cold (``ray.init`` and worker start-up included: what a one-off `pad execute --engine ray`
costs here) and Ray warm (the cluster already up: what each further run or each node's
steady state costs). Labels are checked to be identical to the local engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_execute import fill_store, make_programs  # noqa: E402

from pad_data.stages.execute import execute  # noqa: E402
from pad_data.store import Store  # noqa: E402


def labels(db: Path) -> pd.DataFrame:
    with Store(db, read_only=True) as st:
        return st.df("SELECT program_id, label, value FROM executions ORDER BY 1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shard-size", type=int, default=2500)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "ray.json"))
    args = ap.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    from pad_data.engines.ray_engine import connect, execute_ray

    triples = make_programs(args.n, errors=0.1)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        def run(name: str, engine) -> float:
            db = Path(d) / f"{name}-{len(rows)}.duckdb"
            with Store(db) as st:
                fill_store(st, triples)
                t = time.perf_counter()
                r = engine(st)
                rate = r["executed"] / (time.perf_counter() - t)
            assert r["executed"] == args.n
            rows.append({"benchmark": name, "programs_per_s": rate, "db": str(db)})
            print(f"  {name:44s} {rate:>10,.0f}/s", flush=True)
            return rate

        local = [run("pad execute --engine local (2 workers)", lambda st: execute(st, workers=2))
                 for _ in range(args.repeats)]
        ray.shutdown()
        cold = run("pad execute --engine ray, cold (ray.init incl.)",
                   lambda st: (connect(num_cpus=os.cpu_count()), execute_ray(st, shard_size=args.shard_size))[1])
        warm = [run("pad execute --engine ray, warm cluster", lambda st: execute_ray(st, shard_size=args.shard_size))
                for _ in range(args.repeats)]
        ref = labels(Path(rows[0]["db"]))
        same = all(labels(Path(r["db"])).equals(ref) for r in rows[1:])
    ray.shutdown()
    summary = {"programs": args.n, "shard_size": args.shard_size, "cores": os.cpu_count(),
               "local_programs_per_s": statistics.median(local), "ray_cold_programs_per_s": cold,
               "ray_warm_programs_per_s": statistics.median(warm),
               "ray_warm_vs_local": statistics.median(warm) / statistics.median(local),
               "labels_identical": same, "runs": [{k: v for k, v in r.items() if k != "db"} for r in rows]}
    print(f"\nray warm / local: {summary['ray_warm_vs_local']:.2f}x   ray cold / local: "
          f"{cold / statistics.median(local):.2f}x   labels identical: {same}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
