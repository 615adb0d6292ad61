"""Review-app benchmark: the served app in headless Chromium on a realistic 1M-program store, the
app now against the app at a baseline revision, in the same run, plus the data calls alone.

    .venv/bin/python bench/bench_review.py [--n 1000000] [--db STORE] [--baseline-rev REV] [--repeats 5]

The store is bench/realistic.py's (two teachers, four samples each, ~15% failing in every label,
injected variants, reviewers' verdicts), built unless ``--db`` names one. Each app (``pad review``
of this tree, and of this tree with ``pad_data/review/`` as it was at ``--baseline-rev``, copied
into a temporary folder put first on ``PYTHONPATH``) is started fresh and driven as a reviewer would:

- **first load**: a new session (after one that warmed the server), from opening the page to the
  first program's title shown (this app: also to its keys ready, when its key script has loaded);
- **label filter**: choosing ``runtime_error``, to its count shown;
- **text search**: a word typed + Enter, to the first page's count shown; then a word found
  nowhere, to its "0 programs match" (every program read) or, from an app that stops a search
  after a time budget, its "No match in the first N programs";
- **verdict**: ``a`` pressed on a runtime error, to the next program's title shown (``--repeats``
  verdicts in a row, median and max);
- **key burst**: 10 ``j`` presses 150 ms apart, then how far the list moved (waiting up to 30 s
  for the 10th), and when.

Then the data calls alone (uncached, this tree's ``pad_data.review``): what a first load, a label
filter, a search (and a word found nowhere: to the partial answer, and every program read), a
program's detail and a verdict read and write. Results to ``bench/results/review.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pad_data import review as rv  # noqa: E402

SEARCH = "Betty"  # a name in ~1 in 20 questions
RARE = "zqxjv"  # in no question or program


def replicate(db: str, times: int) -> None:
    """Make the store ``db`` ``times`` as large, in place: every problem, program, execution and
    label copied ``times - 1`` times under new ids (an md5 of the old id and the copy's number;
    an injected program's parent is its copy's parent; seq + copy * 10^9), questions tagged with
    the copy's number. bench/realistic.py builds a store in memory, which does not fit at 10M;
    copies of its 1M do."""
    from pad_data.store import Store

    with Store(db) as st:
        cols = {t: [r[0] for r in st.con.execute(f"DESCRIBE {t}").fetchall()]
                for t in ("problems", "programs", "executions", "program_labels")}
        originals = {"problems": f"rowid < {st.scalar('SELECT count(*) FROM problems')}",
                     "programs": f"rowid < {st.scalar('SELECT count(*) FROM programs')}",
                     "executions": "seq < 1000000000", "program_labels": "seq < 1000000000"}
        for k in range(1, times):
            new = {"problem_id": f"substr(md5(problem_id || '{k}'), 1, 16)",
                   "program_id": f"substr(md5(program_id || '{k}'), 1, 16)",
                   "parent_program_id": f"substr(md5(parent_program_id || '{k}'), 1, 16)",
                   "seq": f"seq + {k}::BIGINT * 1000000000", "question": f"question || ' (copy {k})'"}
            with st.transaction():
                for table, where in originals.items():
                    st.con.execute(f"INSERT INTO {table} SELECT {', '.join(new.get(c, c) for c in cols[table])} "
                                   f"FROM {table} WHERE {where}")
            print(f"copy {k} of {times - 1}", flush=True)


def baseline_tree(rev: str) -> Path:
    """This tree's ``pad_data`` with the review app (``pad_data/review/``) as it was at ``rev``, in a
    temporary folder (for ``PYTHONPATH``): the old app on today's store schema."""
    out = Path(tempfile.mkdtemp(prefix="pad-review-baseline-"))
    shutil.copytree(ROOT / "pad_data", out / "pad_data", ignore=shutil.ignore_patterns("__pycache__"))
    archive = subprocess.run(["git", "archive", rev, "pad_data/review"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    shutil.rmtree(out / "pad_data" / "review")
    tar = out / "review.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(out, filter="data")
    tar.unlink()
    return out


def serve(db: str, pythonpath: Path | None) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PAD_REVIEWER="bench")
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    proc = subprocess.Popen([sys.executable, "-m", "pad_data.cli", "--db", db, "review", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the review app did not start")


def title(page, n: int):
    """The open program's title, 'Program N of ...' (an h3 in both apps)."""
    return page.locator("h3").filter(has_text=f"Program {n:,} of")


def drive(browser, port: int, new: bool, counts: dict, repeats: int) -> dict:
    """One app, as a reviewer: the timings described in the module's docstring."""
    url = f"http://127.0.0.1:{port}/"
    out: dict = {}
    for session in ("warm-up", "first_load"):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t = time.perf_counter()
        page.goto(url)
        title(page, 1).first.wait_for(state="attached", timeout=300_000)
        out[f"{session}_s"] = time.perf_counter() - t
        if new:
            page.get_by_text("keys ready").wait_for(timeout=120_000)
            out[f"{session}_keys_ready_s"] = time.perf_counter() - t
        if session == "warm-up":
            page.close()
    if not new:
        page.get_by_role("tab", name="Programs").click()
    page.locator("[data-testid='stMultiSelect']").filter(has_text="Label").first.click()
    t = time.perf_counter()
    page.get_by_role("option", name="runtime_error", exact=True).click()
    page.get_by_text(f"{counts['runtime_error']:,} programs match").first.wait_for(timeout=120_000)
    out["label_filter_s"] = time.perf_counter() - t
    page.keyboard.press("Escape")
    title(page, 1).first.wait_for(timeout=120_000)
    page.wait_for_timeout(1000)

    # verdicts: a, then the next program's title
    page.mouse.click(700, 5)
    if new:
        page.get_by_text("keys ready").wait_for(timeout=60_000)
    times = []
    for k in range(repeats):
        t = time.perf_counter()
        page.keyboard.press("a")
        title(page, k + 2).first.wait_for(timeout=120_000)
        times.append(time.perf_counter() - t)
        page.wait_for_timeout(300)
    out["verdict_s"] = times

    # a burst of 10 j, 150 ms apart: where the list is once it settled
    page.wait_for_timeout(1000)
    start = repeats + 1
    t_burst = time.perf_counter()
    for _ in range(10):
        page.keyboard.press("j")
        page.wait_for_timeout(150)
    end, deadline = start, time.monotonic() + 30
    while time.monotonic() < deadline and end < start + 10:  # until all 10 are applied, or 30 s
        page.wait_for_timeout(500)
        text = page.locator("h3").filter(has_text="Program ").first.inner_text()
        end = int(text.split("Program ")[1].split(" of")[0].replace(",", ""))
    out["burst_s"] = time.perf_counter() - t_burst
    out["burst_moved"] = end - start

    page.close()

    # a text search over the whole store, to its first page's count (a new session)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    title(page, 1).first.wait_for(state="attached", timeout=300_000)
    if not new:
        page.get_by_role("tab", name="Programs").click()
    page.wait_for_timeout(1000)
    box = page.get_by_label("Search question or program", exact=False)
    box.fill(SEARCH)
    t = time.perf_counter()
    box.press("Enter")
    expected = f"{min(counts['search'], rv_cap()):,}+" if new and counts["search"] > rv_cap() \
        else f"{counts['search']:,}"
    page.get_by_text(f"{expected} programs match").first.wait_for(timeout=120_000)
    out["text_search_s"] = time.perf_counter() - t
    # a word no program or question has: every program is read, or (this app) those read in its
    # time budget, answered "No match in the first N programs"
    box.fill(RARE)
    t = time.perf_counter()
    box.press("Enter")
    answer = page.get_by_text("0 programs match").or_(page.get_by_text("No match in the first")).first
    answer.wait_for(timeout=300_000)
    out["text_search_rare_s"] = time.perf_counter() - t
    out["text_search_rare_answer"] = answer.inner_text()
    page.close()
    return out


def rv_cap() -> int:
    from pad_data.review.app import SEARCH_CAP

    return SEARCH_CAP


def budget() -> float:
    from pad_data.review.app import SEARCH_BUDGET_S

    return SEARCH_BUDGET_S


def data_calls(db: str, repeats: int) -> dict:
    """The data calls alone, uncached: what a first load, a filter, a search and a verdict read."""
    def timed(fn, times: int = repeats) -> float:
        runs = []
        for _ in range(times):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    def shown(st, found):  # the page's rows, looked up by their rows in programs, as the app does
        return rv.rows(st, [i for i, _ in found], verdicts=False, positions=[p for _, p in found])

    def first():
        with rv.reading(db) as st:
            rv.choices(st)
            f = rv.Filters()
            rv.count(st, f)
            found = rv.page_positions(st, f, 0, 50)
            table = shown(st, found)
            rv.verdicts_of(st, [i for i, _ in found])
            rv.program_detail(st, found[0][0], position=found[0][1], seq=int(table.seq.iloc[0]))

    def label():
        with rv.reading(db) as st:
            f = rv.Filters(label=["runtime_error"])
            rv.count(st, f)
            shown(st, rv.page_positions(st, f, 0, 50))

    def search():  # the app's one scan: the first cap + 1 matches give the count and the first page
        with rv.reading(db) as st:
            shown(st, rv.search_positions(st, rv.Filters(text=SEARCH), rv_cap() + 1, 0, budget())[0][:50])

    def rare():  # a word found nowhere, to the app's partial answer
        with rv.reading(db) as st:
            out["rare_read_programs"] = rv.search_positions(st, rv.Filters(text=RARE), rv_cap() + 1, 0, budget())[1]

    def rare_whole():  # and every program read
        with rv.reading(db) as st:
            rv.search_positions(st, rv.Filters(text=RARE), rv_cap() + 1)

    def detail():  # a program's detail, read near the execution its page row gives, as the app does
        pid, position, seq = next(programs)
        with rv.reading(db) as st:
            rv.program_detail(st, pid, reviews=False, position=position, seq=seq)

    with rv.reading(db) as st:
        found = rv.page_positions(st, rv.Filters(label=["timeout"]), 0, repeats)
        faulty = rv.page_positions(st, rv.Filters(label=["runtime_error"]), 500, repeats)
        programs = iter([(i, p, int(s)) for (i, p), s in zip(faulty, shown(st, faulty).seq)])
    it = iter(found)
    out: dict = {}

    def verdict():
        pid, position = next(it)
        batch = rv.new_batch()
        rv.add_verdicts(db, "accept", None, "bench-data", program_ids=[pid], positions=[position], batch=batch)
        with rv.reading(db) as st:
            rv.verdicts_of(st, [pid])
            rv.program_reviews(st, pid)

    out.update(first_load_s=timed(first), label_filter_s=timed(label), text_search_s=timed(search),
               text_search_rare_s=timed(rare), detail_s=timed(detail), verdict_write_and_reread_s=timed(verdict))
    out["text_search_rare_whole_s"] = timed(rare_whole, 1)
    return out


def run_apps(out: dict, db: str, baseline: Path | None, counts: dict, repeats: int) -> None:
    """Both apps, one after the other, in one browser: ``out["baseline"]``, ``out["pad"]``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        # a baseline from issue #31's work on is driven as this app is (its key script, capped search)
        old = baseline and "keys ready" in (baseline / "pad_data" / "review" / "app.py").read_text()
        for name, path, new in ((("baseline", baseline, bool(old)),) if baseline else ()) + (("pad", None, True),):
            proc, port = serve(db, path)
            try:
                out[name] = drive(browser, port, new, counts, repeats)
            finally:
                proc.terminate()
                proc.wait()
            print(name, json.dumps(out[name]), flush=True)
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--db", help="reuse this store instead of building one (it gets the bench's verdicts)")
    ap.add_argument("--baseline-rev", default="5f82b2f~1", help="git revision of the baseline app")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-baseline", action="store_true",
                    help="serve only this app (the data calls alone are then the baseline)")
    ap.add_argument("--replicate", type=int, default=1, metavar="K",
                    help="before measuring, make the store K times as large (copies under new ids): K=10 gives 10M")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "review.json"))
    args = ap.parse_args()

    out: dict = {"programs": args.n, "baseline_rev": args.baseline_rev, "load_avg_at_start": os.getloadavg()}
    if args.db:
        db = args.db
    else:
        import realistic

        db = str(Path(tempfile.mkdtemp(prefix="pad-review-")) / "review.duckdb")
        out["build"] = realistic.build_store(db, n=args.n)
    if args.replicate > 1:
        t = time.perf_counter()
        replicate(db, args.replicate)
        out["replicate_s"] = time.perf_counter() - t
    with rv.reading(db) as st:
        out["programs"] = st.scalar("SELECT count(*) FROM programs")
        counts = {"runtime_error": rv.count(st, rv.Filters(label=["runtime_error"])),
                  "search": rv.count(st, rv.Filters(text=SEARCH))}
    baseline = None if args.skip_baseline else baseline_tree(args.baseline_rev)
    try:
        run_apps(out, db, baseline, counts, args.repeats)
    finally:
        if baseline:
            shutil.rmtree(baseline, ignore_errors=True)
    out["data_calls"] = data_calls(db, args.repeats)
    out["load_avg_at_end"] = os.getloadavg()
    p, d = out["pad"], out["data_calls"]
    b = out.get("baseline") or {k: float("nan") for k in p if not isinstance(p[k], list)} | {"verdict_s": [float("nan")]}

    def row(what: str, key: str, data: float | None = None) -> str:
        return (f"| {what} | {b[key]:.2f} | **{p[key]:.2f}** | {b[key] / p[key]:.1f}x | "
                f"{'' if data is None else f'{data:.2f}'} |")

    for who in (b, p):
        who["verdict_median_s"] = statistics.median(who["verdict_s"])
        who["verdict_max_s"] = max(who["verdict_s"])
    rows = [row("first load (a new session: table + program 1)", "first_load_s", d["first_load_s"]),
            f"| first load to keys ready | | {p['first_load_keys_ready_s']:.2f} | | |",
            row("label filter (runtime_error)", "label_filter_s", d["label_filter_s"]),
            row(f"text search ('{SEARCH}')", "text_search_s", d["text_search_s"]),
            row(f"text search, a word found nowhere ('{RARE}'; baseline: every program read; pad: "
                f"'{p['text_search_rare_answer']}')", "text_search_rare_s", d["text_search_rare_s"]),
            f"| the same, every program read (data call) | | | | {d['text_search_rare_whole_s']:.2f} |",
            f"| a program's detail (data call, median of {args.repeats}) | | | | {d['detail_s']:.2f} |",
            row(f"a: save, next program shown (median of {args.repeats})", "verdict_median_s",
                d["verdict_write_and_reread_s"]),
            row("a: the slowest of those", "verdict_max_s"),
            f"| 10 j presses 150 ms apart: programs moved (in 30 s) | {b['burst_moved']} | **{p['burst_moved']}** | | |",
            row("10 j presses: from the first press to the last move seen", "burst_s")]
    print(f"\n| {out['programs']:,} programs, headless Chromium | baseline {args.baseline_rev} (s) | pad (s) | "
          "speed-up | data calls alone (s) |\n|---|---|---|---|---|\n" + "\n".join(rows))
    print(f"load average at start {out['load_avg_at_start'][0]:.1f}, at end {out['load_avg_at_end'][0]:.1f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
