"""Store benchmark: pad's data stages at 10k / 100k / 1M programs, each beside a baseline.

    .venv/bin/python bench/bench_store.py [--sizes 10000,100000,1000000] [--repeats 3]

| figure | pad | baseline (same run) |
|---|---|---|
| ingest GSM8K train | `pad ingest` (validation, hashing, one transaction) | DuckDB `read_json` straight into a table |
| import programs | `pad import-programs` of N JSONL records | DuckDB `read_json` straight into a table |
| execute | `pad execute` end to end | (see bench_execute.py for its baselines) |
| label distribution, error-type ranking | SQL on the store (ms) | pandas `groupby` on the same rows already in memory |
| curation | `pad curate --dedup ast` | exact-text dedup with pandas `drop_duplicates` |
| HF export | `pad export --format hf` (streamed), peak RSS | `Dataset.from_pandas(all rows).save_to_disk`, peak RSS |

Every export runs in a child process so its peak memory is its own. Figures are medians of
``--repeats`` runs (1M rows: ``--repeats-1m``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GSM_TRAIN = ROOT.parent / "shared" / "data" / "gsm8k" / "train.jsonl"

import duckdb  # noqa: E402

from pad_data.stages.curate import CurateParams, curate  # noqa: E402
from pad_data.stages.execute import execute  # noqa: E402
from pad_data.stages.ingest import import_programs, ingest  # noqa: E402
from pad_data.store import Store  # noqa: E402


def write_programs(path: Path, n: int, seed: int = 0) -> None:
    """n GSM8K-style records (4 programs per question; ~10% faulty; renamed copies for dedup)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            q, k = i // 4, i % 4
            a, b = rng.randint(2, 90), rng.randint(2, 9)
            gold = (q % 97 + 3) * 7
            names = ("boxes", "per_box", "total") if k != 1 else ("n", "m", "t")
            prog = (f"def solution():\n    {names[0]} = {gold // 7}\n    {names[1]} = 7\n"
                    f"    {names[2]} = {names[0]} * {names[1]}\n    extra = {a} * {b} - {a * b}\n"
                    f"    return {names[2]} + extra\n")
            if k == 3 and q % 3 == 0:
                prog = prog.replace("return", "return undefined_name +")
            f.write(json.dumps({"question": f"Question {q}: a shop packs {gold // 7} boxes of 7. How many?",
                                "program": prog, "answer": gold}) + "\n")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


SAMPLER = """
import threading, time
_peak = [0]
def _sample():
    while True:
        for line in open('/proc/self/status'):
            if line.startswith('RssAnon:'):
                _peak[0] = max(_peak[0], int(line.split()[1]))
        time.sleep(0.02)
threading.Thread(target=_sample, daemon=True).start()
"""


def child_peak_mb(code: str) -> tuple[float, float]:
    """(seconds, peak anonymous RSS MiB) of ``code`` run in a child process.

    Anonymous memory (heap), sampled every 20 ms: VmHWM would also count the pages of
    memory-mapped Arrow files, which are file-backed and reclaimable, and ``wait4``'s
    ru_maxrss would include the parent's RSS, which a forked child inherits.
    """
    t = time.perf_counter()
    report = "\ntime.sleep(0.05); print('PEAK_ANON_KB', _peak[0])"
    out = subprocess.run([sys.executable, "-c", SAMPLER + code + report], cwd=str(ROOT), capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"child failed: {out.stderr[-500:]}")
    kb = int(out.stdout.split("PEAK_ANON_KB")[-1].split()[0])
    return time.perf_counter() - t, kb / 1024


def bench_size(n: int, repeats: int, work: Path) -> dict:
    src = work / f"programs-{n}.jsonl"
    write_programs(src, n)
    out: dict = {"programs": n, "jsonl_mb": round(src.stat().st_size / 2**20, 1)}

    def pad_import():
        db = work / f"imp-{n}.duckdb"
        db.unlink(missing_ok=True)
        with Store(db) as st:
            import_programs(st, src, "bench", split="train")

    def raw_import():
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{src}', format='newline_delimited')")
        con.close()

    out["import_s"] = statistics.median(timed(pad_import) for _ in range(repeats))
    out["import_rows_per_s"] = n / out["import_s"]
    out["baseline_raw_duckdb_import_rows_per_s"] = n / statistics.median(timed(raw_import) for _ in range(repeats))
    db = work / f"store-{n}.duckdb"
    db.unlink(missing_ok=True)
    with Store(db) as st:
        import_programs(st, src, "bench", split="train")
        t = time.perf_counter()
        r = execute(st, timeout=1.0)
        out["execute_programs_per_s"] = r["executed"] / (time.perf_counter() - t)
        out["labels"] = r["labels"]
    out["store_mb"] = round(db.stat().st_size / 2**20, 1)

    with Store(db, read_only=True) as st:
        q_labels = "SELECT label, count(*) FROM labeled_programs GROUP BY 1"
        q_errors = ("SELECT error_type, count(*) n FROM labeled_programs WHERE error_type IS NOT NULL "
                    "GROUP BY 1 ORDER BY n DESC")
        out["sql_label_distribution_ms"] = 1000 * statistics.median(
            timed(lambda: st.con.execute(q_labels).fetchall()) for _ in range(repeats * 3))
        out["sql_error_types_ms"] = 1000 * statistics.median(
            timed(lambda: st.con.execute(q_errors).fetchall()) for _ in range(repeats * 3))
        df = st.df("SELECT program_id, problem_id, label, error_type, program FROM labeled_programs")
    out["baseline_pandas_label_distribution_ms"] = 1000 * statistics.median(
        timed(lambda: df.groupby("label").size()) for _ in range(repeats * 3))
    out["baseline_pandas_error_types_ms"] = 1000 * statistics.median(
        timed(lambda: df.dropna(subset=["error_type"]).groupby("error_type").size().sort_values())
        for _ in range(repeats * 3))

    def pad_curate(i=[0]):  # noqa: B006 - a counter for fresh snapshot names
        i[0] += 1
        with Store(db) as st:
            curate(st, f"bench-{i[0]}", CurateParams(dedup="ast", max_per_problem=4))

    out["curate_ast_s"] = statistics.median(timed(pad_curate) for _ in range(repeats))
    out["curate_ast_programs_per_s"] = n / out["curate_ast_s"]
    out["baseline_exact_dedup_s"] = statistics.median(
        timed(lambda: df[df.label == "correct"].drop_duplicates(subset=["problem_id", "program"]))
        for _ in range(repeats))
    del df
    with Store(db) as st:
        curated = st.scalar("SELECT count(*) FROM curated_examples WHERE name = 'bench-1'")
    out["curated_rows"] = curated

    exp = ("import sys; sys.path.insert(0, '.'); from pad_data.store import Store; "
           "from pad_data.stages.export import export; "
           f"st = Store({str(db)!r}); export(st, 'bench-1', {str(work / 'exp')!r}, fmt='hf', overwrite=True)")
    base = ("import sys, shutil, duckdb, datasets; datasets.disable_progress_bars(); "
            f"con = duckdb.connect({str(db)!r}, read_only=True); "
            "df = con.execute(\"SELECT question, program, answer, answer_text, problem_id, program_id, dataset, "
            "label, teacher, origin FROM curated_examples WHERE name = 'bench-1'\").df(); "
            f"datasets.Dataset.from_pandas(df).save_to_disk({str(work / 'base')!r})")
    runs = [child_peak_mb(exp) for _ in range(repeats)]
    out["export_hf_s"] = statistics.median(r[0] for r in runs)
    out["export_hf_rows_per_s"] = curated / out["export_hf_s"]
    out["export_hf_peak_mb"] = statistics.median(r[1] for r in runs)
    base_runs = [child_peak_mb(base) for _ in range(repeats)]
    out["baseline_from_pandas_s"] = statistics.median(r[0] for r in base_runs)
    out["baseline_from_pandas_peak_mb"] = statistics.median(r[1] for r in base_runs)
    for f in work.glob(f"*-{n}.*"):
        f.unlink()
    return out


def bench_ingest(repeats: int) -> dict:
    if not GSM_TRAIN.exists():
        return {}

    def pad_ingest():
        with tempfile.TemporaryDirectory() as d, Store(Path(d) / "i.duckdb") as st:
            ingest(st, GSM_TRAIN, "gsm8k")

    def raw():
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{GSM_TRAIN}', format='newline_delimited')")
        con.close()

    return {"rows": 7473, "pad_rows_per_s": 7473 / statistics.median(timed(pad_ingest) for _ in range(repeats)),
            "baseline_raw_duckdb_rows_per_s": 7473 / statistics.median(timed(raw) for _ in range(repeats))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-1m", type=int, default=1)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "store.json"))
    args = ap.parse_args()
    results = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                           "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)},
               "ingest_gsm8k_train": bench_ingest(args.repeats), "sizes": []}
    print(f"ingest GSM8K train: {results['ingest_gsm8k_train']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pad-bench-") as d:
        for n in [int(x) for x in args.sizes.split(",")]:
            r = bench_size(n, args.repeats if n < 1_000_000 else args.repeats_1m, Path(d))
            results["sizes"].append(r)
            print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    cols = [("programs", "{:,}"), ("import_rows_per_s", "{:,.0f}"), ("baseline_raw_duckdb_import_rows_per_s", "{:,.0f}"),
            ("execute_programs_per_s", "{:,.0f}"), ("sql_label_distribution_ms", "{:.1f}"),
            ("baseline_pandas_label_distribution_ms", "{:.1f}"), ("sql_error_types_ms", "{:.1f}"),
            ("curate_ast_programs_per_s", "{:,.0f}"), ("export_hf_rows_per_s", "{:,.0f}"),
            ("export_hf_peak_mb", "{:,.0f}"), ("baseline_from_pandas_peak_mb", "{:,.0f}"), ("store_mb", "{}")]
    print("\n| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in results["sizes"]:
        print("| " + " | ".join(fmt.format(r[c]) for c, fmt in cols) + " |")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
