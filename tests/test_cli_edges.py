"""Small edges a new user hit: `pad check` names failing rows; `pad-train report` fits a terminal."""

from pad_data.store import Store

from conftest import pad_cli


def test_check_failures_name_the_rows_not_their_values(db):
    pad_cli("--db", db, "run", "--samples", "2", check=True)
    pad_cli("--db", db, "curate", "snap", "--test", "0.3", check=True)
    with Store(db) as st, st.transaction():
        q = st.scalar("SELECT question FROM curated_examples WHERE name = 'snap' AND split = 'test' LIMIT 1")
        st.con.execute("INSERT INTO curated_examples (name, split, problem_id, program_id, question) "
                       "VALUES ('snap', 'train', 'leak', 'leak', ?)", [q.upper() + "!"])
        st.con.execute("INSERT INTO programs (program_id, problem_id, origin, program) "
                       "VALUES ('orphan', 'nope', 'alien', 'x')")
    res = pad_cli("--db", db, "check")
    assert res.returncode == 1
    failed = {line.split("│")[3].strip(): line for line in res.stdout.splitlines() if "FAIL" in line}
    start = " ".join(q.upper().split())[:20]
    assert "1 unexpected" in failed["leaked_from_test"] and "(snapshot snap)" in failed["leaked_from_test"]
    assert start in failed["leaked_from_test"], failed
    assert "program orphan" in failed["has_problem"] and "program orphan" in failed["origin"]
    assert "True" not in failed["leaked_from_test"] and "False" not in failed["has_problem"]
    with Store(db) as st:
        observed = st.scalar("SELECT observed FROM check_results WHERE column_name = 'leaked_from_test' AND NOT success")
    assert "(snapshot snap)" in observed


def test_pad_train_report_fits_100_columns(db, monkeypatch):
    import pandas as pd
    from typer.testing import CliRunner

    import pad_train.evaluate
    from pad_train.cli import app

    Store(db).close()
    rows = [{"model": "/work/checkpoints/qwen2.5-0.5b-instruct-pad-gsm8k-sft-epoch3-lr5e-5/final", "dataset": "gsm8k",
             "split": "test", "decode": d, "samples": k, "refine_rounds": rr, "questions": 1319, "correct": c,
             "accuracy_pct": round(100 * c / 1319, 1), "accuracy_by_round": by, "programs_per_s": 12.3,
             "created_at": pd.Timestamp("2026-12-07 10:11:12"), "run_id": "3f9a1c2b7d4e"}
            for d, k, rr, c, by in (("greedy", 1, 0, 800, ""), ("sample", 8, 2, 900, "60.7 -> 66.1 -> 68.2"),
                                    ("stepwise", 1, 0, 850, ""))]
    monkeypatch.setattr(pad_train.evaluate, "report", lambda store: pd.DataFrame(rows))
    res = CliRunner().invoke(app, ["--db", str(db), "report"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(map(len, lines)) <= 100, res.stdout
    text = res.stdout
    assert "sample x8" in text and "68.2%" in text and "(900/1,319)" in text and "60.7->66.1->68.2" in text and "stepwise" in text
    assert "2026-12-07" in text and "3f9a1c2b7d4e" in text and "+2 refine" in text
    assert "epoch3" in "".join(line.split("│")[1].strip() for line in lines if line.startswith("│")), text

