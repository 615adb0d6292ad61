"""Label-query benchmark: current labels materialized vs the window over every execution.

    .venv/bin/python bench/bench_labels.py [--sizes 1000000] [--repeats 5]

For each size N: a store of N programs (4 per problem, GSM8K-style text) with one execution
each and a second execution for 10% of them (a rerun), written through
``Store.add_executions`` (the one insert path, timed). Then, in the same run:

- label distribution and error-type ranking: on ``program_labels`` (what pad's counts read),
  on ``labeled_programs`` (the joined view), and, as the baseline, a window over every
  execution that picks each program's latest;
- a gold-answer update of 1% of the problems: ``update_gold`` + ``relabel`` (what
  ``ingest --update`` does), against the alternative of storing only the value and computing
  correctness at query time (a label distribution that joins the gold answer);
- ``pad stats`` and the review app's first load (overview, filter choices, count, first page,
  one program) and one filtered load (label runtime_error).

Medians of ``--repeats``. ``--scan-sizes`` (e.g. 10000000) times the two label queries alone on
a ``program_labels`` of that many rows filled directly with SQL (the queries read that table
and nothing else), where building a whole store of that size would take too long.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pad_data import review  # noqa: E402
from pad_data.rules.labels import relabel  # noqa: E402
from pad_data.rules.labels import MATCH_SQL  # noqa: E402
from pad_data.store.queries import stats  # noqa: E402
from pad_data.store import Store  # noqa: E402

WINDOW = """WITH latest AS (SELECT * FROM executions
                            QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY seq DESC) = 1)
            SELECT {cols} FROM programs p JOIN problems pr USING (problem_id) LEFT JOIN latest e USING (program_id)"""
QUERIES = {
    "label_distribution": "SELECT label, count(*) FROM {src} GROUP BY 1",
    "error_types": "SELECT error_type, count(*) AS n FROM {src} WHERE error_type IS NOT NULL GROUP BY 1 ORDER BY n DESC",
}
# the alternative to relabeling on a gold update: correctness computed at query time from the value
GOLD_JOIN = f"""SELECT CASE WHEN l.status <> 'ok' THEN l.label WHEN pr.answer IS NULL THEN l.label
                           WHEN e.value_num IS NULL THEN 'non_numeric'
                           WHEN {MATCH_SQL.format(v='e.value_num', g='pr.answer')} THEN 'correct' ELSE 'wrong_answer' END AS label,
                      count(*)
               FROM program_labels l JOIN executions e USING (seq) JOIN problems pr USING (problem_id) GROUP BY 1"""


RESULTS = """SELECT p.program_id, CASE WHEN h % 10 = 9 THEN 'runtime_error' ELSE 'ok' END AS status,
                     CASE WHEN h % 10 = 9 THEN 'runtime_error' WHEN h % 10 = 8 THEN 'wrong_answer'
                          ELSE 'correct' END AS label,
                     CASE WHEN h % 10 = 9 THEN NULL WHEN h % 10 = 8 THEN (pr.answer + 1)::VARCHAR
                          ELSE pr.answer::VARCHAR END AS value,
                     CASE WHEN h % 10 = 9 THEN NULL WHEN h % 10 = 8 THEN pr.answer + 1 ELSE pr.answer END AS value_num,
                     CASE WHEN h % 10 = 9 THEN NULL ELSE 'float' END AS value_type,
                     CASE WHEN h % 10 = 9 THEN 'NameError' END AS error_type,
                     CASE WHEN h % 10 = 9 THEN 'name ''x'' is not defined' END AS error_message,
                     CASE WHEN h % 10 = 9 THEN 4 END AS error_line, '' AS stdout, 0.05 AS duration_ms,
                     2.0 AS timeout_s, 512 AS memory_mb, 'bench' AS executor, now()::TIMESTAMP AS executed_at,
                     p.problem_id, pr.dataset, p.origin, p.teacher, NULL::BIGINT AS prev_seq
              FROM (SELECT *, hash(program_id) AS h FROM programs WHERE program_id > ?
                    ORDER BY program_id LIMIT 100000) p JOIN problems pr USING (problem_id)
              ORDER BY p.program_id"""


def build(db: Path, n: int) -> dict:
    """N programs and their executions; returns seconds per step."""
    out = {}
    with Store(db) as st:
        t = time.perf_counter()
        with st.transaction():
            st.con.execute("""INSERT INTO problems (problem_id, dataset, split, question, answer)
                SELECT 'q' || lpad(i::VARCHAR, 9, '0'), 'bench', 'train',
                       'Question ' || i || ': a shop packs boxes of 7 pens. How many pens are in ' || (i % 97 + 3) || ' boxes?',
                       (i % 97 + 3) * 7.0 FROM range(?) t(i)""", [n // 4])
            st.con.execute("""INSERT INTO programs (program_id, problem_id, origin, teacher, sample_idx, program)
                SELECT substr(sha256('program' || i), 1, 16), 'q' || lpad((i // 4)::VARCHAR, 9, '0'), 'import',
                       CASE WHEN i % 2 = 0 THEN 'teacher-a' ELSE 'teacher-b' END, (i % 4)::INTEGER,
                       'def solution():\n    boxes = ' || ((i // 4) % 97 + 3) || '\n    per_box = 7\n'
                       || '    total = boxes * per_box\n    return total\n'
                FROM range(?) t(i)""", [n])
        out["fill_s"] = time.perf_counter() - t
        # results as an engine makes them: 80% correct, 10% wrong, 10% NameError; in commits of 100k
        # programs (in program_id order, as execute's pages come)
        after, stored, spent = "", 0, 0.0
        while True:
            results = st.df(RESULTS, [after])
            if results.empty:
                break
            t = time.perf_counter()
            with st.transaction():
                stored += sum(st.add_executions(results).values())
            spent += time.perf_counter() - t
            after = results.program_id.iloc[-1]
        out["add_executions_rows_per_s"] = stored / spent  # the inserts alone, not making the rows
        rerun = st.df("""SELECT e.* EXCLUDE (seq), l.problem_id, l.dataset, l.origin, l.teacher, l.seq AS prev_seq
                         FROM program_labels l JOIN executions e USING (seq) USING SAMPLE 10 PERCENT (reservoir, 1)""")
        rerun["label"] = "timeout"
        rerun["status"] = "timeout"
        rerun["error_type"] = None
        with st.transaction():
            st.add_executions(rerun)
        out["executions"] = st.scalar("SELECT count(*) FROM executions")
    return out


def median_ms(st: Store, query: str, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        st.con.execute(query).fetchall()
        runs.append(time.perf_counter() - t)
    return 1000 * statistics.median(runs)


def bench_size(n: int, repeats: int, work: Path) -> dict:
    db = work / f"labels-{n}.duckdb"
    out = {"programs": n, **build(db, n)}
    out["store_mb"] = round(db.stat().st_size / 2**20)
    with Store(db) as st:
        srcs = {"program_labels": "program_labels", "labeled_programs": "labeled_programs",
                "baseline_window": "(" + WINDOW.format(cols="p.program_id, e.label, e.error_type") + ")"}
        for q, sql in QUERIES.items():
            for name, src in srcs.items():
                out[f"{q}_{name}_ms"] = median_ms(st, sql.format(src=src), repeats)
        same = [sorted(st.con.execute(QUERIES["label_distribution"].format(src=src)).fetchall(),
                       key=lambda r: str(r[0])) for src in srcs.values()]
        assert same[0] == [r for r in same[1] if r[0] is not None] and same[1] == same[2], same
        # gold update of 1% of the problems: relabel (materialized) vs correctness at query time
        changed = st.df("SELECT problem_id, answer + 7 AS answer, NULL AS answer_text, NULL AS rationale "
                        "FROM problems USING SAMPLE 1 PERCENT (reservoir, 2)")
        t = time.perf_counter()
        with st.transaction():
            ids = st.update_gold(changed)
            out["gold_update_relabeled"] = relabel(st, ids)
        out["gold_update_1pct_s"] = time.perf_counter() - t
        out["gold_update_problems"] = len(ids)
        out["alternative_label_distribution_gold_join_ms"] = median_ms(st, GOLD_JOIN, repeats)
        t = time.perf_counter()
        stats(st)
        out["pad_stats_ms"] = 1000 * (time.perf_counter() - t)
    # the review app: what it reads on first load, and with a label filter
    for name, f in (("review_first_load_ms", review.Filters()),
                    ("review_filter_runtime_error_ms", review.Filters(label=["runtime_error"]))):
        runs = []
        for _ in range(max(1, repeats // 2)):
            t = time.perf_counter()
            with review.reading(str(db)) as st:
                if name == "review_first_load_ms":
                    review.choices(st)
                    review.overview(st)
                total = review.count(st, f)
                review.page(st, f, 0, 50)
                first = review.page(st, f, 0, 1)
                review.program_detail(st, first.program_id.iloc[0])
            runs.append(time.perf_counter() - t)
        out[name] = 1000 * statistics.median(runs)
        out[name.replace("_ms", "_matches")] = total
    db.unlink()
    return out


def scan_only(n: int, repeats: int, work: Path) -> dict:
    """The label queries on a program_labels of n rows (same columns and shares as build's)."""
    db = work / f"scan-{n}.duckdb"
    with Store(db) as st:
        t = time.perf_counter()
        with st.transaction():
            st.con.execute("""INSERT INTO program_labels
                SELECT substr(sha256('program' || i), 1, 16), 'q' || lpad((i // 4)::VARCHAR, 9, '0'), 'bench', 'import',
                       CASE WHEN i % 2 = 0 THEN 'teacher-a' ELSE 'teacher-b' END, i,
                       CASE WHEN h % 10 = 9 THEN 'runtime_error' WHEN h % 10 = 8 THEN 'wrong_answer' ELSE 'correct' END,
                       CASE WHEN h % 10 = 9 THEN 'runtime_error' ELSE 'ok' END,
                       CASE WHEN h % 10 = 9 THEN 'NameError' END, 0.05
                FROM (SELECT range AS i, hash(range) AS h FROM range(?))""", [n])
        out = {"programs": n, "fill_s": time.perf_counter() - t}
        for q, sql in QUERIES.items():
            out[f"{q}_program_labels_ms"] = median_ms(st, sql.format(src="program_labels"), repeats)
    db.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scan-sizes", default="", help="also time the label queries alone at these sizes")
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "labels.json"))
    args = ap.parse_args()
    results = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                           "load_avg_at_start": os.getloadavg()}, "sizes": [], "scan_only": []}
    with tempfile.TemporaryDirectory(prefix="pad-labels-") as d:
        for n in [int(x) for x in args.sizes.split(",") if x]:
            r = bench_size(n, args.repeats, Path(d))
            results["sizes"].append(r)
            print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
        for n in [int(x) for x in args.scan_sizes.split(",") if x]:
            r = scan_only(n, args.repeats, Path(d))
            results["scan_only"].append(r)
            print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)
    print("\n| programs | label distribution: program_labels / labeled_programs / baseline window (ms) | "
          "error types: same three (ms) | gold update of 1% of problems (s) | alternative: correctness at "
          "query time (ms) | pad stats (ms) | review first load / filtered (ms) |")
    print("|---|---|---|---|---|---|---|")
    for r in results["sizes"]:
        print(f"| {r['programs']:,} | {r['label_distribution_program_labels_ms']:.1f} / "
              f"{r['label_distribution_labeled_programs_ms']:.0f} / {r['label_distribution_baseline_window_ms']:.0f} | "
              f"{r['error_types_program_labels_ms']:.1f} / {r['error_types_labeled_programs_ms']:.0f} / "
              f"{r['error_types_baseline_window_ms']:.0f} | {r['gold_update_1pct_s']:.2f} | "
              f"{r['alternative_label_distribution_gold_join_ms']:.0f} | {r['pad_stats_ms']:.0f} | "
              f"{r['review_first_load_ms']:.0f} / {r['review_filter_runtime_error_ms']:.0f} |")
    for r in results["scan_only"]:
        print(f"program_labels alone at {r['programs']:,} rows: label distribution "
              f"{r['label_distribution_program_labels_ms']:.0f} ms, error types {r['error_types_program_labels_ms']:.0f} ms")
    print(f"load average at start {results['machine']['load_avg_at_start'][0]:.1f}, at end {os.getloadavg()[0]:.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
