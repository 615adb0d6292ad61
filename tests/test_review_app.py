"""The review app, driven by Streamlit's AppTest on a real store, and once in headless Chromium."""

import os
import shutil
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

APP = str(ROOT / "apps" / "review.py")


@pytest.fixture
def store(tmp_path, monkeypatch):
    db = tmp_path / "pad.duckdb"
    pad_cli("--db", db, "run", "--samples", "2", check=True)
    monkeypatch.setenv("PAD_DB", str(db))
    monkeypatch.setenv("PAD_REVIEWER", "tester")
    return db


def _app():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _q(db, sql, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def _frame(at, column):
    return next(df.value for df in at.dataframe if column in df.value.columns)


def test_overview_shows_the_store(store):
    at = _app()
    assert [t.label for t in at.tabs] == ["Overview", "Programs", "SQL"]
    labels = next(df.value for df in at.dataframe if list(df.value.columns) == ["label", "programs"])
    assert dict(zip(labels.label, labels.programs)) == dict(_q(store, "SELECT label, count(*) FROM labeled_programs GROUP BY 1"))
    errors = _frame(at, "error_type")
    assert errors.iloc[0].error_type == "NameError"
    assert [m.value for m in at.metric][:2] == [f"{_q(store, 'SELECT count(*) FROM problems')[0][0]:,}",
                                               f"{_q(store, 'SELECT count(*) FROM programs')[0][0]:,}"]


def test_filter_open_annotate_fix_and_rerun(store):
    at = _app()
    at.multiselect(key="f_label").select("runtime_error").run()
    n = _q(store, "SELECT count(*) FROM labeled_programs WHERE label = 'runtime_error'")[0][0]
    assert any(f"**{n}** programs match" in m.value for m in at.markdown)
    table = _frame(at, "program_id")
    assert set(table.label) == {"runtime_error"}
    first = at.subheader[-1].value
    assert "runtime_error" in first
    assert at.error and "NameError" in at.error[0].value and at.error[0].value.startswith("line ")
    at.button(key="next").click().run()
    assert at.subheader[-1].value != first and "Program 2 of" in at.subheader[-1].value
    pid = at.subheader[-1].value.split("`")[1]
    assert _q(store, "SELECT label FROM labeled_programs WHERE program_id = ?", [pid])[0][0] == "runtime_error"

    # annotate
    at.radio(key=f"verdict_{pid}").set_value("needs-fix").run()
    at.text_area(key=f"note_{pid}").input("undefined variable").run()
    at.button(key="save_review").click().run()
    assert not at.exception
    assert _q(store, "SELECT verdict, note, reviewer FROM reviews WHERE program_id = ?", [pid]) == \
        [("needs-fix", "undefined variable", "tester")]

    # fix: return the gold answer; run it, then save it as a new program with its own execution
    gold, gold_text = _q(store, "SELECT gold, gold_text FROM labeled_programs WHERE program_id = ?", [pid])[0]
    fixed = f"def solution():\n    return {gold!r}\n" if gold is not None else f"def solution():\n    return {gold_text!r}\n"
    at.text_area(key=f"edit_{pid}").input(fixed).run()
    at.button(key="run_edit").click().run()
    assert any("Run result: correct" in i.value for i in at.info)
    at.button(key="save_fix").click().run()
    assert not at.exception
    rows = _q(store, "SELECT p.origin, p.parent_program_id, p.teacher, lp.label FROM programs p "
                     "JOIN labeled_programs lp USING (program_id) WHERE p.parent_program_id = ?", [pid])
    assert rows == [("human", pid, "tester", "correct")]


def test_diff_against_parent_for_edited_programs(store):
    at = _app()
    at.multiselect(key="f_label").select("runtime_error").run()
    pid = at.subheader[-1].value.split("`")[1]
    gold = _q(store, "SELECT coalesce(gold_text, gold::VARCHAR) FROM labeled_programs WHERE program_id = ?", [pid])[0][0]
    from pad_data.review import save_fix
    out = save_fix(str(store), pid, f"def solution():\n    return {gold!r}\n", "tester")
    at = _app()
    at.multiselect(key="f_origin").select("human").run()
    assert any(m.value.startswith("**1** program matches.") for m in at.markdown)
    assert any(c.language == "diff" and "+    return" in c.value for c in at.code)
    assert out["label"] in ("correct", "wrong_answer")


def test_sql_tab_is_read_only(store):
    at = _app()
    at.text_area(key="sql_query").input("SELECT count(*) AS n FROM programs").run()
    at.button(key="run_sql").click().run()
    assert _frame(at, "n").n.iloc[0] == _q(store, "SELECT count(*) FROM programs")[0][0]
    before = _q(store, "SELECT count(*) FROM programs")[0][0]
    for bad in ("DELETE FROM programs", "COPY programs TO '/tmp/pad-leak.csv'", "SELECT * FROM read_csv('/etc/passwd')"):
        at.text_area(key="sql_query").input(bad).run()
        at.button(key="run_sql").click().run()
        assert not at.exception and at.error, bad
    assert _q(store, "SELECT count(*) FROM programs")[0][0] == before
    assert not Path("/tmp/pad-leak.csv").exists()


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
    finally:
        holder.kill()
        holder.wait()


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium not installed (setup.sh installs it)")
def test_browser_renders_the_overview_and_a_faulty_program(store):
    """`pad review` served on 127.0.0.1, loaded in headless Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    exe = Path(sys.executable).with_name("pad")
    server = subprocess.Popen([str(exe), "--db", str(store), "review", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    artifacts = Path(os.environ.get("PAD_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the review app did not start")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Label distribution").wait_for(timeout=60_000)
            page.get_by_text("Error types").wait_for(timeout=30_000)
            page.get_by_text("Execution time").wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # let the charts finish drawing
            page.screenshot(path=str(artifacts / "review-overview.png"), full_page=True)
            page.get_by_role("tab", name="Programs").click()
            page.get_by_text("programs match").wait_for(timeout=30_000)
            page.get_by_text("Sibling programs for this problem").wait_for(timeout=30_000)
            page.screenshot(path=str(artifacts / "review-program.png"), full_page=True)
            browser.close()
        assert (artifacts / "review-overview.png").stat().st_size > 50_000
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)
