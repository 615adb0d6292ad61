"""The review app's data layer on a realistic store (bench/realistic.py: two teachers, every label,
injected variants, reviewers' verdicts): literal search, the list's order without a sort, sorts,
failure patterns and a verdict per pattern, queues, undo, conflicts, views, diffs and folding;
and the plain-text rule the app renders data with (pad_data.rules.display.reveal)."""

import json
import shutil
import sys
import unicodedata

import duckdb
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from pad_data import review as rv  # noqa: E402
from pad_data.rules.display import hidden_count, reveal  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    import realistic

    db = tmp_path_factory.mktemp("review-data") / "base.duckdb"
    realistic.build_store(db, n=4000, injected=200, reviews=30)
    return db


@pytest.fixture
def db(base, tmp_path):
    path = tmp_path / "pad.duckdb"
    shutil.copy(base, path)
    return str(path)


def _q(db, sql, params=()):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_search_is_literal_and_the_list_keeps_the_stored_order(db):
    pid = _q(db, "SELECT program_id FROM programs ORDER BY rowid LIMIT 1 OFFSET 7")[0][0]
    con = duckdb.connect(db)
    con.execute("UPDATE programs SET program = program || '# 100%_done\\x' WHERE program_id = ?", [pid])
    con.close()
    with rv.reading(db) as st:
        n = st.scalar("SELECT count(*) FROM programs")
        assert rv.count(st, rv.Filters(text="%")) < n and rv.count(st, rv.Filters(text="_")) < n
        assert rv.page_ids(st, rv.Filters(text="100%_done\\x")) == [pid]
        assert rv.count(st, rv.Filters(text="100%_done\\x")) == 1
        assert rv.count(st, rv.Filters(text="100_%done")) == 0  # "_" and "%" are not wildcards
        assert rv.page_ids(st, rv.Filters(text="DONE\\X")) == [pid]  # no escape character; any case
        assert rv.count(st, rv.Filters(text="done\\")) == 1 and rv.count(st, rv.Filters(text="100%_DONE")) == 1
        # a capped count stops at cap + 1
        assert rv.count(st, rv.Filters(text="def"), cap=10) == 11
        for f in (rv.Filters(), rv.Filters(label=["wrong_answer"]), rv.Filters(text="return"),
                  rv.Filters(origin=["injected"]), rv.Filters(verdict=[rv.UNREVIEWED], dataset=["gsm8k"])):
            query, params = f.listing()
            ordered = [r[0] for r in st.con.execute(f"SELECT program_id FROM ({query}) ORDER BY pos LIMIT 60 "
                                                    "OFFSET 30", params).fetchall()]
            assert rv.page_ids(st, f, 30, 60) == ordered, f
            assert list(rv.page(st, f, 30, 60).program_id) == ordered
            found = rv.page_positions(st, f, 30, 60)  # programs looked up by their row there
            assert rv.rows(st, [i for i, _ in found], positions=[p for _, p in found]).equals(rv.rows(st, ordered))



def test_a_search_reads_programs_a_range_of_rows_at_a_time_and_can_stop_early(db):
    with rv.reading(db) as st:
        n = st.scalar("SELECT count(*) FROM programs")
        question = st.scalar("SELECT question FROM problems ORDER BY rowid LIMIT 1 OFFSET 40")[5:25]
        for f in (rv.Filters(text="return"), rv.Filters(text=question), rv.Filters(text="_", label=["correct"]),
                  rv.Filters(text=question, origin=["injected"])):
            whole = rv.page_positions(st, f, 0, 2 * n)
            assert whole, f
            assert rv.search_positions(st, f, 2 * n, chunk=64) == (whole, None), f  # every range read
            assert rv.search_positions(st, f, 5, chunk=64) == (whole[:5], None)
            assert rv.search_positions(st, f, 2 * n, start=whole[-1][1], chunk=64)[0] == whole[-1:]
        nowhere = rv.Filters(text="zqxjv")
        assert rv.search_positions(st, nowhere, 10, budget_s=0.0, chunk=64) == ([], 64)  # stopped after one range
        # on from where it stopped
        assert rv.search_positions(st, nowhere, 10, start=64, budget_s=0.0, chunk=64) == ([], 128)
        assert rv.search_positions(st, nowhere, 10, start=64, chunk=64) == ([], None)

def test_sorts_order_every_match_server_side(db):
    with rv.reading(db) as st:
        f = rv.Filters(label=["timeout", "runtime_error"])
        ids = rv.page_ids(st, f, 0, 20, sort="duration", descending=True)
        durations = [st.scalar("SELECT duration_ms FROM program_labels WHERE program_id = ?", [i]) for i in ids]
        assert durations == sorted(durations, reverse=True)
        assert durations[0] == st.scalar("SELECT max(duration_ms) FROM program_labels "
                                         "WHERE label IN ('timeout', 'runtime_error')")
        teachers = list(rv.page(st, rv.Filters(), 0, 4000, sort="teacher").teacher)
        assert teachers == sorted(teachers) and len(set(teachers)) == 2
        with pytest.raises(ValueError, match="sort must be one of"):
            rv.page_ids(st, f, 0, 5, sort="nope")


def test_failure_patterns_group_mask_and_take_one_verdict(db):
    with rv.reading(db) as st:
        groups = rv.patterns(st, rv.Filters(), "message")
        failing = st.scalar("SELECT count(*) FROM program_labels WHERE label NOT IN ('correct', 'unverifiable')")
        assert groups.programs.sum() == failing
        name_errors = groups[groups.pattern == "NameError: name '…' is not defined"]
        assert len(name_errors) == 1  # every undefined name is one group
        n = int(name_errors.programs.iloc[0])
        assert n == st.scalar("SELECT count(*) FROM program_labels l JOIN executions e USING (seq) "
                              "WHERE e.error_message LIKE 'name ''%'' is not defined'")
        lines = rv.patterns(st, rv.Filters(dataset=["gsm8k"]), "line")
        assert lines.programs.sum() == st.scalar("SELECT count(*) FROM program_labels WHERE dataset = 'gsm8k' "
                                                 "AND label NOT IN ('correct', 'unverifiable')")
        assert not lines.pattern.str.contains(r"\d").any()  # numbers masked
    f = rv.Filters(pattern="NameError: name '…' is not defined")
    assert rv.add_verdicts(db, "needs-fix", "undefined name", "ann", filters=f) == n
    assert _q(db, "SELECT count(*) FROM current_reviews WHERE reviewer = 'ann' AND verdict = 'needs-fix'") == [(n,)]


def test_queue_undo_conflicts_and_counts_per_reviewer(db):
    f = rv.Filters(label=["syntax_error"])
    with rv.reading(db) as st:
        total = rv.count(st, f)
        first = rv.page_ids(st, dataclasses_replace(f, unreviewed_by="ann"), 0, 3)
    assert total > 10
    batch = rv.new_batch()
    with rv.reading(db) as st:
        (_, row), (_, other) = rv.page_positions(st, f, 0, 2)
    # found by its row in programs; a row that is not the program's: found by its id
    assert rv.add_verdicts(db, "reject", None, "ann", program_ids=first[:1], positions=[row], batch=batch) == 1
    zed = rv.new_batch()
    assert rv.add_verdicts(db, "reject", None, "zed", program_ids=first[:1], positions=[other], batch=zed) == 1
    assert _q(db, "SELECT program_id FROM current_reviews WHERE reviewer = 'zed'") == [(first[0],)]
    assert rv.undo(db, zed) == 1
    with pytest.raises(ValueError, match="no program nope"):
        rv.add_verdicts(db, "reject", None, "zed", program_ids=["nope"], positions=[row])
    with rv.reading(db) as st:  # the queue moves on; the judged program leaves it
        queue = dataclasses_replace(f, unreviewed_by="ann")
        assert rv.count(st, queue) == total - 1 and rv.page_ids(st, queue, 0, 2) == first[1:3]
    # a second verdict on it, then undo: back to the first one, then to none
    again = rv.new_batch()
    rv.add_verdicts(db, "accept", None, "ann", program_ids=first[:1], batch=again)
    assert rv.undo(db, again) == 1
    assert _q(db, "SELECT verdict FROM current_reviews WHERE program_id = ? AND reviewer = 'ann'", first[:1]) == \
        [("reject",)]
    assert rv.undo(db, batch) == 1
    assert _q(db, "SELECT count(*) FROM current_reviews WHERE program_id = ? AND reviewer = 'ann'", first[:1]) == \
        [(0,)]
    # nothing is lost: both undone verdicts stay in the history, marked, and undoing again does nothing
    assert _q(db, "SELECT verdict, undone_at IS NOT NULL FROM reviews WHERE batch_id IN (?, ?) ORDER BY reviewed_at",
              [batch, again]) == [("reject", True), ("accept", True)]
    assert rv.undo(db, batch) == 0
    with rv.reading(db) as st:
        assert rv.count(st, dataclasses_replace(f, unreviewed_by="ann")) == total  # back in the queue
        history = rv.program_reviews(st, first[0])["reviews"]
        assert history[history.reviewer == "ann"].undone_at.notna().tolist() == [True, True]
    # a bulk batch is undone whole, leaving other reviewers' verdicts as they were
    bulk = rv.new_batch()
    assert rv.add_verdicts(db, "accept", None, "ann", filters=f, batch=bulk) == total
    rv.add_verdicts(db, "reject", None, "bob", program_ids=first)
    with rv.reading(db) as st:
        assert rv.count(st, rv.Filters(conflicts=True)) == 3
        conflicts = rv.conflicts(st)
        assert set(conflicts.program_id) == set(first) and set(conflicts.verdicts) == {"ann: accept, bob: reject"}
        counts = rv.reviewer_counts(st).set_index("reviewer")
        assert counts.loc["ann", "accept"] == total and counts.loc["ann", "conflicts"] == 3
        assert counts.loc["bob", "reject"] == 3 and counts.loc["reviewer-a", "conflicts"] == 0
    assert rv.undo(db, bulk) == total
    assert _q(db, "SELECT reviewer, count(*) FROM current_reviews WHERE reviewer IN ('ann', 'bob') GROUP BY 1") == \
        [("bob", 3)]


def dataclasses_replace(f, **kw):
    import dataclasses

    return dataclasses.replace(f, **kw)


def test_views_are_kept_beside_the_store(db, tmp_path):
    assert rv.load_views(db) == {}
    rv.save_view(db, "timeouts by duration", "label=timeout&sort=duration&desc=true")
    rv.save_view(db, "mine", "queue=true")
    assert rv.load_views(db) == {"timeouts by duration": "label=timeout&sort=duration&desc=true", "mine": "queue=true"}
    rv.views_path(db).write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"views\.json: not a views file"):
        rv.load_views(db)
    with pytest.raises(ValueError, match="a view needs a name"):
        rv.save_view(db, " ", "x=1")
    assert json.loads(rv.views_path(db).read_text()) == [1, 2]  # a failed save leaves the file as it was


def test_injected_parent_diff_has_no_false_change_and_long_programs_fold(db):
    # an injected program is rebuilt from its parent's AST, so it ends with a newline the parent may lack
    parent = "def solution():\n    kept = 3\n    return kept"
    assert rv.diff(parent, parent + "\n") == ""
    changed = rv.diff(parent, "def solution():\n    kept = 4\n    return kept\n")
    assert "-    kept = 3\n+    kept = 4" in changed and "return kept" not in changed.split("@@")[-1].replace(
        " return kept", "")
    with rv.reading(db) as st:
        pid, parent_id = _q(db, "SELECT program_id, parent_program_id FROM programs WHERE origin = 'injected' "
                                "LIMIT 1")[0]
        d = rv.program_detail(st, pid)
        assert d["parent_program"] == _q(db, "SELECT program FROM programs WHERE program_id = ?", [parent_id])[0][0]
        position = _q(db, "SELECT rowid FROM programs WHERE program_id = ?", [pid])[0][0]
        by_row = rv.program_detail(st, pid, position=position)  # read by its row in programs: the same
        assert by_row.keys() == d.keys() and by_row["siblings"].equals(d["siblings"])
        assert all(by_row[k] == d[k] or by_row[k] != by_row[k] for k in d if k not in ("siblings", "reviews"))
        shown = rv.diff(d["parent_program"], d["program"])
        assert shown and all(line[1:] not in {a[1:] for a in shown.splitlines() if a.startswith("+")}
                             for line in shown.splitlines() if line.startswith("-") and not line.startswith("---"))
        faulty = _q(db, "SELECT l.program_id FROM program_labels l WHERE label = 'runtime_error' AND EXISTS "
                        "(SELECT 1 FROM program_labels c WHERE c.problem_id = l.problem_id AND c.label = 'correct') "
                        "LIMIT 1")[0][0]
        sib = rv.program_detail(st, faulty)["correct_sibling"]
        assert sib and _q(db, "SELECT label FROM program_labels WHERE program_id = ?", [sib["program_id"]]) == \
            [("correct",)]
    assert rv.fold(40, 30) == [(1, 40)]  # short: whole
    assert rv.fold(5000, 2500) == [(1, 8), (2488, 2512)]
    assert rv.fold(5000, 12) == [(1, 24)] and rv.fold(5000, None) == [(1, 120)] and rv.fold(5000, 4999) == \
        [(1, 8), (4987, 5000)]


def test_a_detail_reads_its_problems_labels_near_its_execution(db, monkeypatch):
    # a faulty program with a correct sibling and an injected variant: labels both near and far
    faulty, seq = _q(db, "SELECT l.program_id, l.seq FROM program_labels l WHERE l.label = 'runtime_error' AND "
                         "EXISTS (SELECT 1 FROM program_labels c WHERE c.problem_id = l.problem_id AND "
                         "c.label = 'correct') AND EXISTS (SELECT 1 FROM programs i WHERE i.origin = 'injected' "
                         "AND i.problem_id = l.problem_id) LIMIT 1")[0]
    position = _q(db, "SELECT rowid FROM programs WHERE program_id = ?", [faulty])[0][0]
    with rv.reading(db) as st:
        shown = rv.rows(st, [faulty], positions=[position])
        assert shown.seq.tolist() == [seq]  # the list carries the execution the detail is read near
        whole = rv.program_detail(st, faulty, reviews=False)  # every label of the problem, by id
        assert len(whole["siblings"]) >= 3 and whole["correct_sibling"]
        # near its own execution; a guess far from any (every label looked up by id); with the window
        # shrunk to its own execution alone, its siblings' labels are looked up by id beside it
        # and with no window near its rows either, every label but its own by id
        for guess, near, rows in ((seq, rv.NEAR_SEQ, rv.NEAR_ROWS), (seq + 100 * rv.NEAR_SEQ, rv.NEAR_SEQ, rv.NEAR_ROWS),
                                  (seq, 0, rv.NEAR_ROWS), (seq, 0, 0)):
            monkeypatch.setattr(rv, "NEAR_SEQ", near)
            monkeypatch.setattr(rv, "NEAR_ROWS", rows)
            monkeypatch.setattr(rv, "MAX_RANGES", 0 if rows == 0 else 16)
            d = rv.program_detail(st, faulty, reviews=False, position=position, seq=guess)
            assert d["siblings"].equals(whole["siblings"]), (guess, near)
            assert d["correct_sibling"] == whole["correct_sibling"] and d["label"] == "runtime_error"
            assert all(d[k] == whole[k] or d[k] != d[k] for k in whole if k != "siblings")
        assert rv.program_detail(st, faulty, position=position + 1, seq=seq) is None  # a moved row: not this one


def test_a_page_reads_its_labels_near_its_rows_and_looks_up_the_others(db, monkeypatch):
    # 50 programs in the stored order: 10 re-executed since (their labels written last, far from
    # their rows) and 5 whose labels are gone (not executed): every one shown as a lookup by id shows it
    page = _q(db, "SELECT program_id, rowid FROM programs ORDER BY rowid LIMIT 50 OFFSET 1000")
    ids, positions = [i for i, _ in page], [p for _, p in page]
    con = duckdb.connect(db)
    moved = con.execute("SELECT * FROM program_labels WHERE program_id = ANY(?)", [ids[:10]]).df()
    con.execute("DELETE FROM program_labels WHERE program_id = ANY(?)", [ids[:15]])
    # rows between, of no program shown
    con.execute("INSERT INTO program_labels SELECT * REPLACE (program_id || '-other' AS program_id) "
                "FROM program_labels LIMIT 3000")
    con.register("moved", moved)
    con.execute("INSERT INTO program_labels SELECT * FROM moved")
    con.close()
    with rv.reading(db) as st:
        whole = rv.rows(st, ids)  # every label looked up by id
        assert whole.label.isna().sum() == 5 and whole.label.notna().sum() == 45
        for near, ranges in ((rv.NEAR_ROWS, rv.MAX_RANGES), (40, rv.MAX_RANGES), (0, 100), (40, 0)):
            monkeypatch.setattr(rv, "NEAR_ROWS", near)
            monkeypatch.setattr(rv, "MAX_RANGES", ranges)  # 0: too many ranges, every label by id
            shown = rv.rows(st, ids, positions=positions)
            assert shown.equals(whole), (near, ranges)


def test_reveal_shows_bidi_and_invisible_characters():
    hidden = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Cf", "Zl", "Zp")]
    text = "x" + "x".join(hidden)
    shown = reveal(text)
    assert hidden_count(text) == len(hidden)
    assert not any(ch in shown for ch in hidden)
    assert reveal("if access != 'user\u202e \u2066# admin\u2069 \u2066':") == \
        "if access != 'user\\u202e \\u2066# admin\\u2069 \\u2066':"
    assert reveal("tab\there\nnext\x1b[31m\U000e0041") == "tab\there\nnext\\x1b[31m\\U000e0041"
    assert reveal("ok: ünïcödé, 中文, emoji 🙂") == "ok: ünïcödé, 中文, emoji 🙂"  # visible text unchanged
