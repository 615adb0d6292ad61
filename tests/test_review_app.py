"""The review app: driven by Streamlit's AppTest on a real store, and served by `pad review` to
headless Chromium (Playwright): one server and one browser for the module's browser tests."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, pad_cli

from pad_data.review.app import SEARCH_CAP

APP = str(ROOT / "apps" / "review.py")
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM, reason="Debian chromium not installed (setup.sh installs it)")


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    """`pad run --samples 2` once (638 programs); tests get copies."""
    db = tmp_path_factory.mktemp("review") / "base.duckdb"
    pad_cli("--db", db, "run", "--samples", "2", check=True)
    return db


@pytest.fixture
def store(base_store, tmp_path, monkeypatch):
    db = tmp_path / "pad.duckdb"
    shutil.copy(base_store, db)
    monkeypatch.setenv("PAD_DB", str(db))
    monkeypatch.setenv("PAD_REVIEWER", "tester")
    return db


def _app(tab=None):
    at = AppTest.from_file(APP, default_timeout=60)
    if tab:
        at.query_params["tab"] = tab
    at.run()
    assert not at.exception, at.exception
    return at


def _settle():
    """Wait for the app's read-ahead threads (AppTest runs the app in this process, and DuckDB
    refuses a read-write connection here while one of them reads)."""
    import threading

    for t in threading.enumerate():
        if t.name == "pad-review-read-ahead":
            t.join(30)


def _q(db, sql, params=()):
    _settle()
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _frame(at, column):
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _html(at):
    """The HTML blocks the app rendered (st.html: all data is shown through these, escaped)."""
    return [h.proto.body for h in at.get("html")]


def _title(at):
    return next(h for h in _html(at) if 'class="pad-title"' in h)


def _opened(at):
    """The program id the app shows."""
    return re.search(r"<code>([0-9a-f]+)</code>", _title(at))[1]


def test_overview_shows_the_store(store):
    at = _app("Overview")
    assert [t.label for t in at.tabs] == ["Programs", "Patterns", "Reviewers", "Overview", "SQL"]
    labels = next(df.value for df in at.dataframe if list(df.value.columns) == ["label", "programs"])
    assert dict(zip(labels.label, labels.programs)) == dict(_q(store, "SELECT label, count(*) FROM labeled_programs GROUP BY 1"))
    assert list(labels.programs) == sorted(labels.programs, reverse=True)  # the chart shows this order (sort=None)
    errors = _frame(at, "error_type")
    assert errors.iloc[0].error_type == "NameError"
    assert [m.value for m in at.metric][:2] == [f"{_q(store, 'SELECT count(*) FROM problems')[0][0]:,}",
                                               f"{_q(store, 'SELECT count(*) FROM programs')[0][0]:,}"]
    assert not at.sidebar.children  # filters live in the Programs tab, where they act
    assert not [h for h in _html(at) if 'class="pad-title"' in h]  # a closed tab renders nothing


def test_a_search_answers_for_the_programs_read_in_its_time_and_searches_on(store, monkeypatch):
    from pad_data.review import app

    # no time at all: each round reads its first 100 rows, so the store (638 programs) takes 7
    monkeypatch.setattr(app, "SEARCH_BUDGET_S", 0.0)
    monkeypatch.setattr(app, "SEARCH_FIRST_ROWS", 100)
    pid = _q(store, "SELECT program_id FROM programs WHERE rowid = 250")[0][0]
    con = duckdb.connect(str(store))
    con.execute("UPDATE programs SET program = program || chr(10) || '# zqx_marker' WHERE rowid = 250")
    con.close()
    n = _q(store, "SELECT count(*) FROM programs")[0][0]
    at = _app()
    at.text_input(key="q").input("zqx_marker").run()
    assert any("No match in the first <b>100</b> programs." in h for h in _html(at))
    assert not [h for h in _html(at) if 'class="pad-title"' in h]
    at.button(key="search_on").click().run()
    assert any("No match in the first <b>200</b> programs." in h for h in _html(at))
    at.button(key="search_on").click().run()
    assert any("<b>1</b> program matches in the first <b>300</b> programs." in h for h in _html(at))
    assert _opened(at) == pid and list(_frame(at, "program_id").program_id) == [pid]
    for _ in range(6):  # on to the end: the button goes
        if not any(b.key == "search_on" for b in at.button):
            break
        at.button(key="search_on").click().run()
    assert any("<b>1</b> program matches." in h for h in _html(at)) and n > 600  # read to the end: exact
    at.text_input(key="q").input("zqxjv_nowhere").run()  # another search starts over
    assert any("No match in the first <b>100</b> programs." in h for h in _html(at))
    # inside a reviewer's queue too: what the queue is "of" comes from the same scan within the
    # budget, never from a count that reads every program
    counted, count = [], app.rv.count
    monkeypatch.setattr(app.rv, "count", lambda st, f, cap=None: counted.append(f.text) or count(st, f, cap))
    at.toggle(key="queue").set_value(True).run()
    assert any("No match in the first <b>100</b> programs." in h for h in _html(at)) and not at.exception
    assert not [text for text in counted if text.strip()]
    for _ in range(8):  # searched on to the end, the queue and what it is "of" both read every program
        if not any(b.key == "search_on" for b in at.button):
            break
        at.button(key="search_on").click().run()
    assert any("<b>0</b> done · <b>0</b> remaining of 0." in h for h in _html(at)), \
        [h for h in _html(at) if "pad-count" in h]


def test_filter_open_judge_undo_jump_fix_and_rerun(store):
    at = _app()
    at.multiselect(key="label").select("runtime_error").run()
    n = _q(store, "SELECT count(*) FROM labeled_programs WHERE label = 'runtime_error'")[0][0]
    assert any(f"<b>{n}</b> programs match" in h for h in _html(at))
    table = _frame(at, "program_id")
    assert set(table.label) == {"runtime_error"}
    assert "runtime_error" in _title(at) and _opened(at) == table.program_id.iloc[0]
    error = next(h for h in _html(at) if 'class="pad-error"' in h)
    assert "NameError" in error and ">line " in error
    at.button(key="next").click().run()
    assert "Program 2 of" in _title(at) and _opened(at) == table.program_id.iloc[1]
    at.number_input(key="jump").set_value(5)
    at.button(key="jump_go").click().run()
    assert "Program 5 of" in _title(at) and _opened(at) == table.program_id.iloc[4]
    assert any("j next program" in c.value and "x reject" in c.value for c in at.caption)
    teacher, origin = _q(store, "SELECT teacher, origin FROM programs WHERE program_id = ?", [_opened(at)])[0]
    assert any(f"<b>Teacher</b> <code>{teacher}</code> · <b>Origin</b> <code>{origin}</code>" in h for h in _html(at))

    # a verdict with a note: saved, and the next program opens; a second verdict replaces the
    # reviewer's current one and both stay in the history; undo takes the second one back
    pid = _opened(at)
    at.text_input(key=f"note_{pid}").input("undefined variable").run()
    at.button(key="verdict_needs-fix").click().run()
    assert "Program 6 of" in _title(at)
    assert _q(store, "SELECT verdict, note, reviewer FROM reviews WHERE program_id = ?", [pid]) == \
        [("needs-fix", "undefined variable", "tester")]
    assert _frame(at, "program_id").set_index("program_id").verdict[pid] == "needs-fix"  # the list shows it at once
    at.number_input(key="jump").set_value(5)
    at.button(key="jump_go").click().run()
    at.button(key="verdict_reject").click().run()
    assert _q(store, "SELECT verdict FROM current_reviews WHERE program_id = ? AND reviewer = 'tester'", [pid]) == \
        [("reject",)]
    assert _q(store, "SELECT count(*) FROM reviews WHERE program_id = ?", [pid]) == [(2,)]
    assert at.button(key="undo").label == f"Undo reject of {pid}"
    at.button(key="undo").click().run()
    assert _opened(at) == pid and any("Undone: reject of" in h for h in _html(at))
    assert _q(store, "SELECT verdict FROM current_reviews WHERE program_id = ? AND reviewer = 'tester'", [pid]) == \
        [("needs-fix",)]
    assert _q(store, "SELECT verdict, undone_at IS NOT NULL FROM reviews WHERE program_id = ? ORDER BY reviewed_at",
              [pid]) == [("needs-fix", False), ("reject", True)]  # the undone verdict stays in the history

    # the reviewer's queue: programs they judged leave it, and a verdict keeps the position
    at.toggle(key="queue").set_value(True).run()
    assert any("<b>1</b> done · <b>" in h and f"remaining of {n}" in h for h in _html(at))
    first = _opened(at)
    at.button(key="verdict_accept").click().run()
    assert any("<b>2</b> done" in h for h in _html(at)) and "Program 1 of" in _title(at) and _opened(at) != first
    # a search inside the queue counts what it matches with the same capped scan as the queue's: its
    # "of" is the search's count outside the queue, and the program just judged is among the done
    word = max(_q(store, "SELECT question FROM problems JOIN programs USING (problem_id) WHERE program_id = ?",
                  [first])[0][0].split(), key=len)
    at.text_input(key="q").input(word).run()
    queue = re.search(r"<b>([\d,]+)</b> done · <b>([\d,]+)</b> remaining of ([\d,]+)\.",
                      next(h for h in _html(at) if "Queue of" in h))
    at.toggle(key="queue").set_value(False).run()
    assert queue, [h for h in _html(at) if "pad-count" in h]
    done, remaining, of = (int(g.replace(",", "")) for g in queue.groups())
    assert done >= 1 and done + remaining == of and of <= SEARCH_CAP
    assert any(f"<b>{of:,}</b> programs match" in h for h in _html(at))
    at.text_input(key="q").input("").run()

    # fix: return the gold answer; run it, then save it as a new program with its own execution
    at.number_input(key="jump").set_value(5)
    at.button(key="jump_go").click().run()
    assert _opened(at) == pid
    gold, gold_text = _q(store, "SELECT gold, gold_text FROM labeled_programs WHERE program_id = ?", [pid])[0]
    fixed = f"def solution():\n    return {gold!r}\n" if gold is not None else f"def solution():\n    return {gold_text!r}\n"
    at.toggle(key="fix_open").set_value(True).run()
    at.text_area(key=f"edit_{pid}").input(fixed).run()
    at.button(key="run_edit").click().run()
    assert any("Run result: <b>correct</b>" in h for h in _html(at))
    at.button(key="save_fix").click().run()
    assert not at.exception
    rows = _q(store, "SELECT p.origin, p.parent_program_id, p.teacher, lp.label FROM programs p "
                     "JOIN labeled_programs lp USING (program_id) WHERE p.parent_program_id = ?", [pid])
    assert rows == [("human", pid, "tester", "correct")]


EVIL_QUESTION = ("# Heading\n\nHow many? ![img](http://evil.example/x.png) [link](http://evil.example) <b>hi</b> "
                 "<img src=http://evil.example/i.png> **bold** :red[x] $\\frac{1}{2}$ $$x^2$$ "
                 "access\u202e \u2066# admin\u2069 \u2066 zero\u200bwidth")
EVIL_PROGRAM = ("def solution():\n    raise ValueError('# Big\\n![i](http://evil.example/y.png) `tick` <b>x</b> "
                ":red[x] $x^2$ \\u202e')\n")


def _evil_store(store, tmp_path):
    import json

    (tmp_path / "p.jsonl").write_text(json.dumps({"question": EVIL_QUESTION, "program": EVIL_PROGRAM, "answer": "2"}))
    pad_cli("--db", store, "import-programs", tmp_path / "p.jsonl", "--dataset", "evil**[x](http://evil.example)**",
            "--teacher", "t](http://evil.example) **x** $y$", check=True)
    pad_cli("--db", store, "execute", "--isolation", "process", check=True)


def _tags(markup):
    from html.parser import HTMLParser

    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Tags().feed(markup)
    return found


def test_data_is_shown_as_plain_text_never_as_markdown(store, tmp_path):
    """A question, a dataset's name, a split, a teacher's name and an error message are data: no
    heading, link, image, HTML, KaTeX or colour comes from them, and bidi controls and invisible
    characters are written out (\\u202e) instead of reordering or hiding text."""
    from markdown_it import MarkdownIt

    _evil_store(store, tmp_path)
    at = _app()
    at.multiselect(key="dataset").select("evil**[x](http://evil.example)**").run()
    shown = _html(at)
    assert any("![img](http://evil.example/x.png)" in h and "&lt;b&gt;hi&lt;/b&gt;" in h and "\\u202e" in h
               and "\\u2066# admin\\u2069" in h and "zero\\u200bwidth" in h for h in shown)
    assert any("ValueError" in h and "evil.example/y.png" in h for h in shown if 'class="pad-error"' in h)
    for markup in shown:
        for tag, attrs in _tags(markup):
            assert tag in {"div", "span", "b", "i", "code", "h3", "pre", "a", "style"}, (tag, markup)
            assert not any("evil" in (v or "") for v in attrs.values()), markup
            assert tag != "a" or attrs.get("href", "").startswith("?"), markup  # only pad's own view links
        assert not any(ch in markup for ch in "\u202e\u2066\u2069\u200b"), markup
    # what still goes through Markdown carries no data
    for value in [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]:
        assert "evil" not in value and "Heading" not in value, value
        tokens = [t for block in MarkdownIt("commonmark").parse(value) for t in (block.children or [block])]
        assert not {t.type for t in tokens} & {"image", "link_open", "html_inline", "html_block"}, value
    # table cells hold no bidi controls either
    for df in at.dataframe:
        for col in df.value.columns:
            assert not df.value[col].astype(str).str.contains("[\u202e\u2066\u200b]").any(), col


def test_diff_against_parent_for_edited_programs(store):
    at = _app()
    at.multiselect(key="label").select("runtime_error").run()
    pid = _opened(at)
    gold = _q(store, "SELECT coalesce(gold_text, gold::VARCHAR) FROM labeled_programs WHERE program_id = ?", [pid])[0][0]
    from pad_data.review import save_fix
    _settle()
    out = save_fix(str(store), pid, f"def solution():\n    return {gold!r}\n", "tester")
    at = _app()
    at.multiselect(key="origin").select("human").run()
    assert any(h.startswith('<div class="pad-count"><b>1</b> program matches') for h in _html(at))
    assert any(c.language == "diff" and "+    return" in c.value for c in at.code)
    assert out["label"] in ("correct", "wrong_answer")


def test_sql_tab_runs_one_select_only(store):
    at = _app("SQL")
    at.text_area(key="sql_query").input("SELECT count(*) AS n FROM programs").run()
    at.button(key="run_sql").click().run()
    assert _frame(at, "n").n.iloc[0] == _q(store, "SELECT count(*) FROM programs")[0][0]
    before = _q(store, "SELECT count(*) FROM programs")[0][0]

    def error():
        return [h for h in _html(at) if 'class="pad-error"' in h][-1]

    for bad in ("DELETE FROM programs", "COPY programs TO '/tmp/pad-leak.csv'", "SELECT 1; DROP TABLE programs"):
        at.text_area(key="sql_query").input(bad).run()
        at.button(key="run_sql").click().run()
        assert not at.exception and "only SELECT is allowed" in error(), bad
    at.text_area(key="sql_query").input("SELECT * FROM read_csv('/etc/passwd')").run()
    at.button(key="run_sql").click().run()
    assert not at.exception and "disabled" in error()
    assert _q(store, "SELECT count(*) FROM programs")[0][0] == before
    assert not Path("/tmp/pad-leak.csv").exists()


def test_patterns_reviewers_sort_views_and_a_correct_sibling_beside(store):
    from pad_data import review as rv

    at = _app("Patterns")
    groups = _frame(at, "pattern")
    failing = _q(store, "SELECT count(*) FROM program_labels WHERE label NOT IN ('correct', 'unverifiable')")[0][0]
    assert groups.programs.sum() == failing
    top = groups.iloc[0]
    # a group opens in the Programs tab through its address (what "Open in Programs" sets)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(tab="Programs", pattern=top.pattern, pattern_by="message")
    at.run()
    assert any(f"<b>{top.programs}</b> program" in h for h in _html(at))
    # a faulty program with a correct sibling: the sibling beside it, with a diff
    faulty = _q(store, """SELECT l.program_id FROM program_labels l JOIN program_labels c
                                   ON c.problem_id = l.problem_id AND c.label = 'correct' WHERE l.label = 'runtime_error'
                                   GROUP BY 1 ORDER BY 1 LIMIT 1""")[0][0]
    question = _q(store, "SELECT question FROM labeled_programs WHERE program_id = ?", [faulty])[0][0]
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(q=question, label="runtime_error")  # its problem's faulty programs
    at.run()
    assert "runtime_error" in _title(at)
    assert at.toggle(key="sibling_open").label.startswith("Beside a correct sibling")
    at.toggle(key="sibling_open").set_value(True).run()
    sib_program = _q(store, "SELECT program FROM labeled_programs WHERE label = 'correct' AND problem_id = "
                            "(SELECT problem_id FROM programs WHERE program_id = ?) ORDER BY teacher, sample_idx "
                            "LIMIT 1", [_opened(at)])[0][0]
    assert any(c.language == "python" and c.value.rstrip("\n") == sib_program.rstrip("\n") for c in at.code)
    assert any(c.language == "diff" and "correct sibling" in c.value for c in at.code)
    # sorted server-side, descending
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(sort="duration", desc="true", label="runtime_error")
    at.run()
    durations = list(_frame(at, "duration_ms").duration_ms)
    assert durations == sorted(durations, reverse=True)
    # reviewers: counts and conflicts
    ids = [r[0] for r in _q(store, "SELECT program_id FROM program_labels WHERE label = 'correct' LIMIT 4")]
    rv.add_verdicts(str(store), "accept", None, "ann", program_ids=ids)
    rv.add_verdicts(str(store), "reject", None, "bob", program_ids=ids[:2])
    at = _app("Reviewers")
    counts = _frame(at, "conflicts").set_index("reviewer")
    assert counts.loc["ann", "accept"] == 4 and counts.loc["ann", "conflicts"] == 2 and counts.loc["bob", "reject"] == 2
    assert set(_frame(at, "verdicts").program_id) == set(ids[:2])
    # a named view is kept beside the store and offered as a link
    rv.save_view(str(store), "ann's **conflicts**", "conflicts=true")
    at = _app()
    at.selectbox(key="view_pick").select("ann's **conflicts**").run()
    assert any('href="?conflicts=true"' in h and "ann&#x27;s **conflicts**" in h for h in _html(at))


def test_busy_store_is_reported_not_crashed(store, monkeypatch):
    monkeypatch.setenv("PAD_BUSY_TIMEOUT", "1")  # a store held longer than this is "busy"
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(store)!r}); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        assert not at.exception
        assert any("busy" in w.value for w in at.warning)
        assert all(w.icon == ":material/hourglass_top:" for w in at.warning)
    finally:
        holder.kill()
        holder.wait()


def test_bulk_verdicts_are_set_based_kept_per_reviewer_and_upgrade_in_place(store, tmp_path):
    from pad_data import review as rv
    from pad_data.store import Store

    f = rv.Filters(label=["correct"], dataset=["pad-arith"])
    with rv.reading(str(store)) as st:
        n = rv.count(st, f)
    assert n >= 100
    assert rv.add_verdicts(str(store), "accept", "fine", "ann", filters=f) == n
    assert rv.add_verdicts(str(store), "reject", "no", "bob", filters=f) == n
    assert rv.add_verdicts(str(store), "reject", "still no", "bob", filters=f) == n  # bob's current verdict replaced
    assert _q(store, "SELECT reviewer, verdict, count(*) FROM current_reviews GROUP BY ALL ORDER BY 1") == \
        [("ann", "accept", n), ("bob", "reject", n)]
    assert _q(store, "SELECT count(*), count(DISTINCT batch_id) FROM reviews") == [(3 * n, 3)]
    assert _q(store, "SELECT DISTINCT verdict FROM program_verdicts") == [("reject",)]  # the strictest
    with pytest.raises(ValueError, match="no program nope"):
        rv.add_verdicts(str(store), "accept", None, "ann", program_ids=["nope"])

    # a store of schema 13 with reviews (two by one reviewer on one program) upgrades in place
    old = tmp_path / "old.duckdb"
    Store(old, migrate_to=13).close()
    con = duckdb.connect(str(old))
    con.execute("INSERT INTO reviews (review_id, program_id, verdict, reviewer, reviewed_at) VALUES "
                "('r1', 'p1', 'accept', 'ann', '2025-01-01'), ('r2', 'p1', 'reject', 'ann', '2025-01-02'), "
                "('r3', 'p1', 'accept', NULL, '2025-01-01'), ('r4', 'p2', 'needs-fix', 'bob', '2025-01-01')")
    con.close()
    with Store(old) as st:
        assert st.version >= 14
        assert st.df("SELECT program_id, reviewer, verdict, review_id FROM current_reviews ORDER BY ALL") \
            .values.tolist() == [["p1", "", "accept", "r3"], ["p1", "ann", "reject", "r2"],
                                 ["p2", "bob", "needs-fix", "r4"]]
        assert st.scalar("SELECT count(*) FROM reviews") == 4


def test_curate_by_review_and_export_carries_the_verdict(store, tmp_path):
    from pad_data import review as rv
    from pad_data.stages.curate import CurateError, CurateParams, curate
    from pad_data.stages.export import export
    from pad_data.store import Store

    rejected = rv.add_verdicts(str(store), "reject", None, "ann", filters=rv.Filters(label=["correct"],
                                                                                      dataset=["pad-arith"]))
    accepted = rv.add_verdicts(str(store), "accept", None, "ann", filters=rv.Filters(label=["correct"],
                                                                                      dataset=["pad-coin"]))
    correct = "SELECT count(*) FROM program_labels WHERE label = 'correct' AND dataset = ?"
    assert (rejected, accepted) == (_q(store, correct, ["pad-arith"])[0][0], _q(store, correct, ["pad-coin"])[0][0])
    assert rejected and accepted
    every = dict(dedup="none", max_per_problem=10)
    with Store(store) as st:
        counts = {mode: curate(st, mode, CurateParams(review=mode, **every))["programs"]
                  for mode in ("ignore", "exclude-rejected", "accepted-only")}
        verdicts = dict(st.con.execute("SELECT name || ':' || coalesce(verdict, '-'), count(*) FROM curated_examples "
                                       "GROUP BY 1").fetchall())
        with pytest.raises(CurateError, match="unknown --review 'rejected'; choose from exclude-rejected, "
                                              "accepted-only, ignore"):
            curate(st, "x", CurateParams(review="rejected"))
        export(st, "accepted-only", str(tmp_path / "export"), fmt="parquet")
    assert verdicts["ignore:reject"] == rejected and verdicts["ignore:accept"] == accepted  # all there
    assert counts["exclude-rejected"] == counts["ignore"] - rejected and "exclude-rejected:reject" not in verdicts
    assert counts["accepted-only"] == accepted and set(k for k in verdicts if k.startswith("accepted-only")) == \
        {"accepted-only:accept"}
    exported = duckdb.sql(f"SELECT verdict, count(*) FROM read_parquet('{tmp_path}/export/*.parquet') GROUP BY 1")
    assert exported.fetchall() == [("accept", accepted)]


# ---------------------------------------------------------------------- served, in Chromium
def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait_healthy(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the review app did not start")


def _serve(db, *args, cwd=None, env=None, python=None, output=subprocess.DEVNULL):
    """`pad review` (the console script, or ``python -m pad_data.cli``) on a free port."""
    port = _free_port()
    cmd = [python, "-m", "pad_data.cli"] if python else [str(Path(sys.executable).with_name("pad"))]
    proc = subprocess.Popen([*cmd, "--db", str(db), "review", "--port", str(port), *args], cwd=cwd,
                            env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    _wait_healthy(port, proc)
    return proc, port


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def served(base_store, tmp_path_factory):
    """`pad review` on a copy of the store with two programs added, on 127.0.0.1 (no token): one
    whose question, names and error carry Markdown, HTML, KaTeX, image URLs and bidi controls
    (:data:`EVIL_QUESTION`), and one of 5,000 lines failing at line 2,500."""
    import json

    tmp = tmp_path_factory.mktemp("served")
    db = tmp / "pad.duckdb"
    shutil.copy(base_store, db)
    _evil_store(db, tmp)
    long = "def solution():\n" + "".join(f"    x{i} = {i}\n" for i in range(2, 2500)) + "    y = long_missing\n" + \
        "".join(f"    z{i} = {i}\n" for i in range(2501, 5000)) + "    return y\n"
    (tmp / "long.jsonl").write_text(json.dumps({"question": "A long one", "program": long, "answer": "1"}))
    pad_cli("--db", db, "import-programs", tmp / "long.jsonl", "--dataset", "long", check=True)
    pad_cli("--db", db, "execute", "--isolation", "process", check=True)
    proc, port = _serve(db, env=dict(os.environ, PAD_REVIEWER="browser"))
    yield db, port
    _stop(proc)


def _grid_row(page, table, row):
    """Click row ``row``'s selection box in a Streamlit dataframe (a canvas grid), once the grid
    has stopped moving: a click while it is still being laid out (a busy machine) lands elsewhere."""
    table.locator("canvas").first.wait_for(timeout=30_000)
    box, deadline = table.bounding_box(), time.monotonic() + 15
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        now = table.bounding_box()
        if now == box:
            break
        box = now
    page.mouse.click(box["x"] + 18, box["y"] + 35 * (row + 1) + 17)


@pytest.mark.e2e
@needs_chromium
def test_browser_overview_and_a_clicked_row_opens_its_program(served, browser):
    db, port = served
    artifacts = Path(os.environ.get("PAD_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"http://127.0.0.1:{port}/?tab=Overview")
    page.get_by_text("Label distribution").wait_for(timeout=60_000)
    page.get_by_text("Execution time").wait_for(timeout=30_000)
    assert page.locator("[data-testid='stAppDeployButton']").count() == 0  # toolbar: no Deploy
    page.locator("[data-testid='stVegaLiteChart'] .marks").last.wait_for(timeout=30_000)
    page.wait_for_timeout(500)  # let the charts finish drawing
    page.screenshot(path=str(artifacts / "review-overview.png"), full_page=True)
    page.get_by_role("tab", name="Programs").click()
    page.get_by_text("Program 1 of").wait_for(timeout=30_000)
    ids = [r[0] for r in _q(db, "SELECT program_id FROM programs ORDER BY rowid LIMIT 5")]
    assert ids[0] in page.locator("h3").filter(has_text="Program 1 of").inner_text()
    table = page.locator("[data-testid='stDataFrame']").filter(visible=True).first
    _grid_row(page, table, 3)
    title = page.locator("h3").filter(has_text="Program 4 of")
    title.wait_for(timeout=30_000)
    assert ids[3] in title.inner_text()
    box = title.bounding_box()  # the opened program is in view, beside the list, not below the fold
    assert 0 <= box["y"] < 1000 - 200 and box["x"] > 400, box
    page.screenshot(path=str(artifacts / "review-program.png"), full_page=True)
    assert (artifacts / "review-overview.png").stat().st_size > 30_000
    page.close()


@pytest.mark.e2e
@needs_chromium
def test_browser_bulk_verdict_on_a_filter_then_curate_excludes_them(served, browser):
    from pad_data.stages.curate import CurateParams, curate
    from pad_data.store import Store

    db, port = served
    expected = _q(db, "SELECT count(*) FROM programs p JOIN problems USING (problem_id) WHERE dataset = 'pad-arith'")[0][0]
    assert expected >= 100
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_role("tab", name="Programs").click()
    page.get_by_text("programs match").first.wait_for(timeout=60_000)
    page.locator("[data-testid='stMultiSelect']").filter(has_text="Dataset").first.click()
    page.get_by_role("option", name="pad-arith", exact=True).click()
    page.keyboard.press("Escape")
    page.get_by_text(f"{expected} programs match").wait_for(timeout=30_000)
    assert "dataset=pad-arith" in page.url  # the filter is in the address: the view can be shared
    page.get_by_text("Bulk verdict").click()
    page.get_by_label("Note", exact=True).fill("bulk: arithmetic looks off")
    page.locator("[data-testid='stRadio']").filter(has_text="Verdict").get_by_text("reject", exact=True).click()
    page.get_by_role("button", name="Apply…").click()
    page.get_by_role("button", name=f"Confirm: {expected} programs").click()
    page.get_by_text(f"Saved reject for {expected} programs.").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Apply…").is_visible()  # the panel stays open after a save
    assert page.get_by_role("button", name=f"Undo reject of {expected} programs (bulk)").is_visible()
    page.close()
    assert _q(db, "SELECT count(*), count(DISTINCT program_id), min(note), min(reviewer) FROM current_reviews "
                  "WHERE verdict = 'reject'") == [(expected, expected, "bulk: arithmetic looks off", "browser")]
    with Store(db) as st:  # what `pad curate kept --review exclude-rejected` runs
        kept = curate(st, "kept", CurateParams(review="exclude-rejected", dedup="none", max_per_problem=10))
    correct = _q(db, "SELECT count(*) FROM program_labels WHERE label = 'correct'")[0][0]
    arith = _q(db, "SELECT count(*) FROM program_labels WHERE label = 'correct' AND dataset = 'pad-arith'")[0][0]
    assert arith > 0 and kept["programs"] == correct - arith
    assert _q(db, "SELECT count(*) FROM curated_examples c JOIN current_reviews r USING (program_id)")[0][0] == 0


def test_busy_port_is_one_error_line_before_anything_else(base_store):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = pad_cli("--db", base_store, "review", "--port", port)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == f"error: port {port} on 127.0.0.1 is in use (another pad review?); choose another with --port\n"


@pytest.mark.e2e
@needs_chromium
def test_installed_wheel_serves_the_app_needs_a_token_off_loopback_and_stops_on_sigterm(base_store, tmp_path, browser):
    """Built as a wheel, installed (not editable) into a folder, run from outside the source tree,
    bound to 0.0.0.0: the page needs the printed token; SIGTERM stops the server with it."""
    src, wheels, site = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    src.mkdir()
    for part in ("pyproject.toml", "README.md", "pad_data", "pad_train"):  # built from a copy: no build/ here
        if (ROOT / part).is_dir():
            shutil.copytree(ROOT / part, src / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / part, src / part)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", wheels, src], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("pad-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target", site, wheel],
                   check=True, capture_output=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import pad_data; print(pad_data.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site)
    db = tmp_path / "pad.duckdb"
    shutil.copy(base_store, db)
    proc, port = _serve(db, "--host", "0.0.0.0", cwd=tmp_path, env=env, python=sys.executable,
                        output=subprocess.PIPE)
    line = proc.stdout.readline()
    assert f"pad review on http://0.0.0.0:{port}/?token=" in line
    token = line.split("?token=")[1].split()[0]
    server = _children(proc.pid)
    assert len(server) == 1
    argv = open(f"/proc/{server[0]}/cmdline").read().split("\0")
    assert str(site / "pad_data" / "review" / "app.py") in argv  # the installed app
    assert not any(token in a for a in argv)  # the token is not on the command line
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/?token=wrong-{token}")
        page.get_by_text("needs its access token").wait_for(timeout=60_000)
        assert page.get_by_text("programs match").count() == 0 and page.get_by_text("store:").count() == 0
        page.goto(f"http://127.0.0.1:{port}/?token={token}")
        page.get_by_text("programs match").wait_for(timeout=30_000)
        assert page.get_by_text("needs its access token").count() == 0
        page.close()
    finally:
        code = _stop(proc)  # SIGTERM to `pad review`: forwarded to the server, and waited for
    assert code == 0
    assert not Path(f"/proc/{server[0]}").exists()  # no orphan server
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))  # the port is free


@pytest.mark.e2e
@needs_chromium
def test_browser_plain_text_folding_and_a_key_burst_with_undo(served, browser):
    """One page: the hostile program's view shows its text and nothing else (no heading, link,
    image, KaTeX, nothing fetched from elsewhere, bidi controls written out); the 5,000-line
    program is folded around its failing line; keys pressed faster than the app answers, the
    first ones before its key script has loaded, are all applied, in order (10 j, then 5 a),
    and undo takes the last verdict back."""
    db, port = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(f"http://127.0.0.1:{port}/")
            and not r.url.startswith(("data:", "blob:")) else None)
    page.goto(f"http://127.0.0.1:{port}/?dataset=evil**[x](http://evil.example)**")
    page.get_by_text("keys ready").wait_for(timeout=60_000)
    page.locator("h3").filter(has_text="Program 1 of 1:").wait_for(timeout=30_000)
    page.wait_for_timeout(500)
    text = page.locator("body").inner_text()
    assert "![img](http://evil.example/x.png)" in text and "# Heading" in text and "$\\frac{1}{2}$" in text
    assert "\\u202e" in text and "\\u2066# admin\\u2069" in text and "\u202e" not in text and "\u200b" not in text
    assert page.locator("h1, h2").filter(has_text="Heading").count() == 0
    assert page.locator("h1, h2").filter(has_text="Big").count() == 0  # from the error message
    assert page.locator(".katex, img[src*='evil'], a[href*='evil'], b:text-is('hi')").count() == 0
    assert page.locator(".pad-error code").inner_text() == EVIL_PROGRAM.splitlines()[1].strip()  # the line as written

    page.goto(f"http://127.0.0.1:{port}/?dataset=long")
    page.get_by_text("keys ready").wait_for(timeout=60_000)
    program = page.locator(".pad-program")
    program.wait_for(timeout=30_000)
    shown = program.inner_text()
    assert "y = long_missing" in shown and "lines 9-2,487 folded (2,479 lines)" in shown
    assert "lines 2,513-5,000 folded (2,488 lines)" in shown and shown.count("\n") < 80
    assert "line 2,500: y = long_missing" in page.locator(".pad-error").inner_text()
    assert not outside, outside

    ids = [r[0] for r in _q(db, "SELECT program_id FROM programs WHERE program_id IN (SELECT program_id FROM "
                                "program_labels WHERE label = 'correct') ORDER BY rowid LIMIT 20")]
    # the first presses come before the review area's key script has loaded (the list is not
    # even read yet: the store is held, the app waits for it): the page's early listener queues them
    held = duckdb.connect(str(db))
    try:
        page.goto(f"http://127.0.0.1:{port}/?label=correct")
        page.wait_for_function("document.body.classList.contains('pad-keys-early')", timeout=60_000, polling=10)
        early = page.evaluate("!document.body.classList.contains('pad-keys-on')")
        for _ in range(10):
            page.keyboard.press("j")
            page.wait_for_timeout(150)
    finally:
        held.close()
    assert early
    page.locator("h3").filter(has_text="Program 11 of").wait_for(timeout=60_000)
    for _ in range(5):
        page.keyboard.press("a")
        page.wait_for_timeout(300)
    page.locator("h3").filter(has_text="Program 16 of").wait_for(timeout=60_000)
    page.get_by_text("keys ready").wait_for(timeout=30_000)  # every press acknowledged
    assert not page.get_by_text("keys starting").is_visible()  # shown only until the key script runs
    judged = "SELECT program_id FROM current_reviews WHERE reviewer = 'browser' AND verdict = 'accept' ORDER BY 1"
    assert [r[0] for r in _q(db, judged)] == sorted(ids[10:15])
    page.get_by_role("button", name=f"Undo accept of {ids[14]}").click()
    page.locator("h3").filter(has_text="Program 15 of").wait_for(timeout=30_000)
    assert [r[0] for r in _q(db, judged)] == sorted(ids[10:14])
    assert not outside, outside
    page.close()
