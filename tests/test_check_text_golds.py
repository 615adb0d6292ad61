"""`pad check` on a real file whose golds are numbers and text (PoT's TabMWP: 'yes', 'surplus', '7:25 P.M.'):
a text gold is a gold, so the check passes; a problem that lost its gold is still a critical failure."""

from conftest import pad_cli

from pad_data.store import Store


def test_text_golds_are_golds_and_a_missing_one_fails(tmp_path, db, shared_data):
    src = tmp_path / "tabmwp.jsonl"
    src.write_text("".join((shared_data / "pot" / "tabmwp.jsonl").read_text().splitlines(True)[:200]))
    pad_cli("--db", db, "import-programs", src, "--dataset", "tabmwp", "--program-field", "generated",
            "--question-field", "table,question", check=True)
    with Store(db) as st:
        text, numeric = st.con.execute("SELECT count(*) FILTER (WHERE answer IS NULL AND answer_text <> ''), "
                                       "count(*) FILTER (WHERE answer IS NOT NULL) FROM problems").fetchall()[0]
    assert text >= 30 and numeric >= 100
    ok = pad_cli("--db", db, "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout
    with Store(db) as st:
        lost = st.scalar("SELECT problem_id FROM problems WHERE answer IS NULL ORDER BY problem_id LIMIT 1")
        st.con.execute("UPDATE problems SET answer_text = ' ' WHERE problem_id = ?", [lost])
    bad = pad_cli("--db", db, "check")
    assert bad.returncode == 1
    failed = " ".join(line for line in bad.stdout.splitlines() if "FAIL" in line or "more" in line)
    assert "gold" in failed and "1 unexpected" in failed and lost in failed
