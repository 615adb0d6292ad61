"""Review-app benchmark: the app's data calls on a 1M-program store, against a baseline revision.

    .venv/bin/python bench/bench_review.py [--n 1000000] [--repeats 3] [--baseline-rev 0dcacc6]

Builds a store of N programs in SQL (4 per problem, 3 datasets, 2 teachers, content-hash ids
as pad makes them, GSM8K-length questions and programs), executes them as ``bench_labels.py``
does (80% correct, 10% wrong, 10% NameError, through ``Store.add_executions``), then times, in
the same run, what one page view of the review app reads:

- **baseline**: ``pad_data/review/__init__.py`` as it was at ``--baseline-rev`` (loaded from git);
- **pad**: ``pad_data/review/__init__.py`` now, uncached (the app caches these per store change, so a
  cold start is what this measures);

for a first load (filter choices, overview, count, a page, the current program's detail), a
label filter, a dataset + teacher filter, a text search, and a jump deep into the list
(position 700,000). Then a bulk verdict on every runtime_error (~100k programs), and the app
as a reviewer sees it: ``pad review`` freshly started, in headless Chromium, the time from
opening the page to the first program shown, and from choosing a label to its list shown.
Medians of ``--repeats`` (the served app: one run); results to ``bench/results/review.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_labels import RESULTS  # noqa: E402
from pad_data import review as rv  # noqa: E402
from pad_data.store import Store  # noqa: E402

FILL_PROBLEMS = """INSERT INTO problems (problem_id, dataset, split, question, answer)
    SELECT substr(sha256('problem' || i), 1, 16), ['gsm8k', 'svamp', 'asdiv'][i % 3 + 1],
           CASE WHEN i % 20 = 0 THEN 'test' ELSE 'train' END,
           'Natalia sold clips to ' || (i % 89 + 11) || ' of her friends in April, and then she sold half as many '
           || 'clips in May. Each clip costs ' || (i % 7 + 2) || ' dollars and she kept the boxes for later. '
           || 'How much money did Natalia make from the clips in April and May altogether (case ' || i || ')?',
           (i % 89 + 11) * 1.5 * (i % 7 + 2) FROM range(?) t(i)"""
FILL_PROGRAMS = """INSERT INTO programs (program_id, problem_id, origin, teacher, sample_idx, program)
    SELECT substr(sha256('program' || i), 1, 16), substr(sha256('problem' || (i // 4)), 1, 16),
           CASE WHEN i % 4 = 3 THEN 'import' ELSE 'teacher' END,
           CASE WHEN i % 2 = 0 THEN 'gpt-4o-mini-2024-07-18' ELSE 'gpt-3.5-turbo-0125' END, (i % 4)::INTEGER,
           'def solution():\n    # Natalia''s clips\n    april = ' || ((i // 4) % 89 + 11) || '\n'
           || '    may = april / 2\n    price = ' || ((i // 4) % 7 + 2) || '\n    total = (april + may) * price\n'
           || '    result = total\n    return result\n'
    FROM range(?) t(i)"""
DEEP = 700_000


def build(db: Path, n: int) -> None:
    with Store(db) as st:
        with st.transaction():
            st.con.execute(FILL_PROBLEMS, [n // 4])
            st.con.execute(FILL_PROGRAMS, [n])
        after = ""
        while True:
            results = st.df(RESULTS, [after])
            if results.empty:
                break
            with st.transaction():
                st.add_executions(results)
            after = results.program_id.iloc[-1]


def baseline_module(rev: str):
    """``pad_data/review/__init__.py`` at ``rev``, importable beside today's."""
    src = subprocess.run(["git", "show", f"{rev}:pad_data/review/__init__.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="pad-bench-")) / "review_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("pad_data.review_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def view(mod, db: str, filters, first: bool, offset: int = 0) -> float:
    """Seconds for what one page view reads, uncached (the app reads only what a change of store,
    filter or page makes it read; the baseline revision's app read all of it on every interaction)."""
    t = time.perf_counter()
    with mod.reading(db) as store:
        if first:
            mod.choices(store)
            mod.overview(store)
        total = mod.count(store, filters)
        table = mod.page(store, filters, (offset // 50) * 50, 50)
        if mod is rv:  # the app opens the current row of the page it shows
            current = table.iloc[offset % 50:offset % 50 + 1]
        else:  # the baseline reads the current row again
            current = mod.page(store, filters, offset, 1)
        if len(current):
            mod.program_detail(store, current.program_id.iloc[0])
    assert total > offset or offset == 0, (total, offset)
    return time.perf_counter() - t


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def app_runs(db: str, expected_label_count: int) -> dict:
    """The served app as a reviewer sees it: ``pad review`` (fresh server, empty caches) and
    headless Chromium; seconds from opening the page to the first program shown, then from
    choosing a label filter to its list shown."""
    import shutil
    import socket
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("pad")), "--db", db, "review", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"])
            for session in ("first", "second"):  # the server's first session pays its one-time start-up
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_text("Program 1 of").wait_for(state="attached", timeout=120_000)
                seconds = {session: time.perf_counter() - t}
                if session == "first":
                    first = seconds["first"]
                    page.close()
            second = seconds["second"]
            page.get_by_role("tab", name="Programs").click()
            page.locator("[data-testid='stMultiSelect']").filter(has_text="Label").first.click()
            t = time.perf_counter()
            page.get_by_role("option", name="runtime_error", exact=True).click()
            page.get_by_text(f"{expected_label_count:,} programs match").wait_for(timeout=120_000)
            filtered = time.perf_counter() - t
            browser.close()
    finally:
        server.terminate()
        server.wait()
    return {"app_first_load_s": first, "app_second_session_s": second, "app_label_filter_s": filtered}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-rev", default="0dcacc6", help="git revision of the baseline review.py")
    ap.add_argument("--db", help="reuse this store (built by an earlier run) instead of building one")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "review.json"))
    args = ap.parse_args()
    out: dict = {"programs": args.n, "load_avg_at_start": os.getloadavg()}
    work = Path(tempfile.mkdtemp(prefix="pad-review-"))
    db = Path(args.db) if args.db else work / "review.duckdb"
    if not args.db:
        t = time.perf_counter()
        build(db, args.n)
        out["build_s"] = time.perf_counter() - t
    base = baseline_module(args.baseline_rev)
    cases = {"first_load": (lambda m: m.Filters(), True, 0),
             "label_filter": (lambda m: m.Filters(label=["runtime_error"]), False, 0),
             "dataset_teacher_filter": (lambda m: m.Filters(dataset=["svamp"], teacher=["gpt-3.5-turbo-0125"]),
                                        False, 0),
             "text_search": (lambda m: m.Filters(text="case 4242)"), False, 0),
             "deep_jump": (lambda m: m.Filters(), False, DEEP)}
    rows = []
    for name, (make, first, offset) in cases.items():
        for who, mod in (("baseline", base), ("pad", rv)):
            out[f"{name}_{who}_s"] = median(lambda: view(mod, str(db), make(mod), first, offset), args.repeats)
        rows.append(f"| {name.replace('_', ' ')} | {out[f'{name}_baseline_s']:.2f} | {out[f'{name}_pad_s']:.2f} | "
                    f"{out[f'{name}_baseline_s'] / out[f'{name}_pad_s']:.1f}x |")
        print(rows[-1], flush=True)
    t = time.perf_counter()
    out["bulk_verdicts"] = rv.add_verdicts(str(db), "reject", "bench", "bench", filters=rv.Filters(label=["runtime_error"]))
    out["bulk_verdict_s"] = time.perf_counter() - t
    print(f"bulk verdict: {out['bulk_verdicts']:,} programs in {out['bulk_verdict_s']:.2f} s", flush=True)
    # the served app on this store and, as its baseline, on a store of 4,000 programs (what
    # Streamlit and the browser take whatever the store's size)
    small = work / "small.duckdb"
    build(small, 4000)
    app = []
    for name, path in (("4,000 programs", small), (f"{args.n:,} programs", db)):
        with rv.reading(str(path)) as store:
            errors = rv.count(store, rv.Filters(label=["runtime_error"]))
        r = app_runs(str(path), errors)
        out[f"app_{'small' if path == small else 'store'}"] = r
        app.append(f"| {name} | {r['app_first_load_s']:.2f} | {r['app_second_session_s']:.2f} | "
                   f"{r['app_label_filter_s']:.2f} |")
        print(app[-1], flush=True)
    out["load_avg_at_end"] = os.getloadavg()
    print("\n| page view | baseline (s) | pad (s) | speed-up |\n|---|---|---|---|\n" + "\n".join(rows))
    print("\n| served app, headless Chromium | first session after start (s) | a new session (s) | label filter (s) |"
          "\n|---|---|---|---|\n" + "\n".join(app))
    print(f"load average at start {out['load_avg_at_start'][0]:.1f}, at end {out['load_avg_at_end'][0]:.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
