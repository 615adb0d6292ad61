"""`pad check` within the memory budget: under the smallest budget Great Expectations never sees
more than its share of the budget at once (whole frames were 5.2 GiB at 10M programs), and every
check comes out as it does when each frame fits one chunk: counts, pass/fail and the rows named."""

import pytest

from pad_data.rules.options import MIN_MEMORY
from pad_data.store import Store

from conftest import pad_cli

PROBLEMS = 60_000
PER_PROBLEM = 3
NO_GOLD = 97  # every 97th problem lost its gold (a critical failure, rows all over the table)
LEAKS = 6
QUESTION = "a long story about apples and the pears that Sam sold at the market on Sunday. " * 6


def _store(db) -> None:
    """PROBLEMS problems (long train questions) x PER_PROBLEM programs, executed, in SQL; then
    planted faults: problems without gold, duplicate and orphan programs, an unknown label, an
    overlong stdout, and curated test questions copied into the same snapshot's train split."""
    with Store(db) as st:
        with st.transaction():
            st.con.execute(f"""INSERT INTO problems (problem_id, dataset, split, question, answer)
                SELECT substr(sha256('p' || i), 1, 16), 'gsm8k', CASE WHEN i % 10 = 0 THEN 'test' ELSE 'train' END,
                       'Question ' || i || ': ' || $q, CASE WHEN i % {NO_GOLD} = 5 THEN NULL ELSE i % 89 END
                FROM range($n) t(i)""", {"q": QUESTION, "n": PROBLEMS})
            st.con.execute(f"""INSERT INTO programs (program_id, problem_id, origin, teacher, sample_idx, program)
                SELECT substr(sha256('g' || i), 1, 16), substr(sha256('p' || (i // {PER_PROBLEM})), 1, 16),
                       'teacher', 't', (i % {PER_PROBLEM})::INTEGER, 'def solution():' || chr(10) || '    return ' || i
                FROM range(?) t(i)""", [PROBLEMS * PER_PROBLEM])
        with st.transaction():
            st.add_executions(st.df("""SELECT p.program_id, 'ok' AS status,
                    CASE WHEN hash(p.program_id) % 10 = 0 THEN 'wrong_answer'
                         WHEN hash(p.program_id) % 997 = 1 THEN 'crashed' ELSE 'correct' END AS label,
                    NULL AS value, pr.answer AS value_num, 'int' AS value_type, NULL AS error_type,
                    NULL AS error_message, NULL AS error_line,
                    CASE WHEN hash(p.program_id) % 40009 = 3 THEN repeat('x', 9000) ELSE '' END AS stdout,
                    0.1 AS duration_ms, 2.0 AS timeout_s, 512 AS memory_mb, 'test' AS executor,
                    TIMESTAMP '2026-12-01' AS executed_at, p.problem_id, pr.dataset, p.origin, p.teacher,
                    NULL::BIGINT AS prev_seq
                FROM programs p JOIN problems pr USING (problem_id)"""))
        with st.transaction():
            st.con.execute("INSERT INTO programs SELECT * FROM programs WHERE rowid IN (17, 60001, 179998)")
            st.con.execute("INSERT INTO programs (program_id, problem_id, origin, program) "
                           "SELECT 'orphan' || i, 'nope', 'alien', 'x' FROM range(5) t(i)")
            st.con.execute("UPDATE program_labels SET label = 'weird' WHERE rowid IN (3, 100003)")
            st.con.execute("""INSERT INTO curated_examples (name, split, problem_id, program_id, question)
                SELECT 'snap', CASE WHEN i % 10 = 0 THEN 'test' ELSE 'train' END, problem_id, problem_id, question
                FROM (SELECT row_number() OVER (ORDER BY problem_id) AS i, * FROM problems
                      WHERE rowid % 7 = 0)""")
            st.con.execute(f"""INSERT INTO curated_examples (name, split, problem_id, program_id, question)
                SELECT 'snap', 'train', 'leak' || rowid, 'leak' || rowid, upper(question) || '!'
                FROM curated_examples WHERE split = 'test' ORDER BY rowid LIMIT {LEAKS}""")


@pytest.mark.e2e
def test_check_under_the_smallest_budget_validates_chunks_with_the_results_of_whole_frames(db, monkeypatch):
    from great_expectations.validator.v1_validator import Validator

    _store(db)
    seen: list[tuple[int, int]] = []  # (rows, bytes) of every frame Great Expectations validated
    init = Validator.__init__

    def spy(self, *args, **kwargs):
        frame = (kwargs.get("batch_parameters") or {})["dataframe"]
        seen.append((len(frame), int(frame.memory_usage(deep=True).sum())))
        init(self, *args, **kwargs)

    monkeypatch.setattr(Validator, "__init__", spy)
    small = pad_cli("--db", db, "check", "--memory-limit", f"{MIN_MEMORY // 2**20}MiB")
    assert small.returncode == 1, small.stdout + small.stderr
    # no frame above a sixteenth of the budget (16 MiB); whole frames were up to ~75 MB here
    assert max(b for _, b in seen) <= MIN_MEMORY // 16, max(seen, key=lambda s: s[1])
    assert len(seen) > 4 * 3  # the row-wise checks of each frame on several chunks
    chunked, seen[:] = len(seen), []
    large = pad_cli("--db", db, "check", "--memory-limit", "16GiB")  # every frame in one chunk
    assert large.returncode == 1, large.stdout + large.stderr
    assert len(seen) < chunked

    with Store(db) as st:
        runs = st.df("SELECT run_id FROM check_runs ORDER BY created_at").run_id.tolist()
        got = [st.df("SELECT table_name, expectation, column_name, observed, success FROM check_results "
                     "WHERE run_id = ? ORDER BY rowid", [r]).to_dict("records") for r in runs]
        no_gold = st.df("SELECT problem_id FROM problems WHERE answer IS NULL ORDER BY rowid").problem_id.tolist()
        dup = st.df("SELECT program_id FROM programs WHERE rowid IN (17, 60001, 179998) ORDER BY rowid").program_id
    assert len(got) == 2 and got[0] == got[1] and len(got[0]) == 16
    failed = {(r["table_name"], r["column_name"]): r["observed"] for r in got[0] if not r["success"]}
    assert set(failed) == {("problems", "gold"), ("programs", "program_id"), ("programs", "origin"),
                           ("programs", "has_problem"), ("executions", "label"), ("executions", "stdout_length"),
                           ("train_questions", "leaked_from_test")}
    # the first failing rows in table order, across chunks
    assert failed[("problems", "gold")].startswith(
        f"{len(no_gold):,} unexpected ({100 * len(no_gold) / PROBLEMS:.2f}%): "
        + "; ".join(f"problem {p} (gsm8k)" for p in no_gold[:3]) + f"; and {len(no_gold) - 3:,} more")
    # duplicates meet in their hash part: both copies of each, named in table order
    assert failed[("programs", "program_id")].startswith(
        f"6 unexpected (0.00%): program {dup[0]}; program {dup[1]}; program {dup[2]}; and 3 more")
    orphans = "5 unexpected (0.00%): program orphan0; program orphan1; program orphan2; and 2 more"
    assert failed[("programs", "origin")] == failed[("programs", "has_problem")] == orphans
    assert failed[("executions", "label")].startswith("2 unexpected") and "(weird)" in failed[("executions", "label")]
    assert failed[("train_questions", "leaked_from_test")].startswith(f"{LEAKS} unexpected")
    assert "(snapshot snap)" in failed[("train_questions", "leaked_from_test")]
    shares = {r["column_name"]: float(r["observed"]) for r in got[0] if r["expectation"].endswith("mean_to_be_between")}
    assert 0.85 < shares["is_correct"] < 0.92 and 0 < shares["is_crashed"] < 0.01


def test_user_expectations_judging_rows_by_their_column_are_run_whole_and_bad_ones_named(db, tmp_path, monkeypatch):
    # a z-score or outlier check judges a row against the whole column: in chunks of 300 rows it
    # gives what one frame gives; a malformed user expectation is one line naming its item
    from pad_data.stages import check

    from great_expectations.validator.v1_validator import Validator

    with Store(db) as st, st.transaction():  # answer_text: empty but for 20 values, 8 of them twice
        st.con.execute("""INSERT INTO problems (problem_id, dataset, split, question, answer, answer_text)
            SELECT 'p' || i, 'd', 'train', 'Q ' || i, CASE WHEN i % 10 = 0 THEN 500 + i ELSE i % 7 END,
                   CASE WHEN i % 150 = 7 THEN 'x' || (i % 1800) END
            FROM range(3000) t(i)""")
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {table: problems, expectation: expect_column_value_z_scores_to_be_less_than,\n"
                     "   kwargs: {column: answer, threshold: 2.5, double_sided: true, mostly: 0.95}}\n"
                     "- {table: problems, expectation: expect_column_values_to_be_in_set,\n"
                     "   kwargs: {column: dataset, value_set: [d]}}\n"
                     "- {table: problems, expectation: expect_column_values_to_be_unique, kwargs: {column: answer_text}}\n"
                     "- {table: problems, expectation: expect_column_values_to_be_unique, kwargs: {column: split}}\n"
                     "- {table: problems, expectation: expect_column_values_to_match_regex,\n"  # a column with no value
                     "   kwargs: {column: split, regex: '^x', row_condition: 'dataset == \"none\"', condition_parser: pandas}}\n")
    results, seen, init = [], [], Validator.__init__

    def spy(self, *args, **kwargs):
        seen.append(len((kwargs.get("batch_parameters") or {})["dataframe"]))
        init(self, *args, **kwargs)

    monkeypatch.setattr(Validator, "__init__", spy)
    for rows in (300, check.MAX_CHUNK_ROWS):
        monkeypatch.setattr(check, "MAX_CHUNK_ROWS", rows)
        with Store(db) as st:
            out = check.run_checks(st, expectations_file=rules)
        results.append({(r.check.expectation, r.check.kwargs.get("column")): (r.success, r.observed)
                        for r in out["results"] if r.check.note == "user"})
        if rows == 300:  # a mostly empty column's uniqueness: its empty rows a range at a time, not one part;
            # a column of one value ('train'): its rows in pieces, not one part
            assert sorted(seen)[-2] <= 2 * 300, sorted(seen)[-5:]  # the largest: the z-scores' one column, whole
    assert results[0] == results[1]
    assert results[0][("expect_column_values_to_be_unique", "answer_text")][1].startswith("16 unexpected (80.00%)")
    assert results[0][("expect_column_values_to_be_unique", "split")][1].startswith("3,000 unexpected (100.00%): problem p0 ")
    assert results[0][("expect_column_values_to_match_regex", "split")] == (True, "0 unexpected (0.00%)")
    success, observed = results[0][("expect_column_value_z_scores_to_be_less_than", "answer")]
    assert not success and int(observed.split()[0]) > 100  # the largest of the 300 outliers
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {table: programs, expectation: expect_column_values_to_be_unique, kwargs: {columns: program_id}}\n")
    res = pad_cli("--db", db, "check", "--expectations", bad)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert f"{bad}: item 1: expect_column_values_to_be_unique" in res.stderr and "column" in res.stderr


def test_the_store_is_let_go_while_the_expectations_run(db, monkeypatch):
    # the frames are copied into a scratch file first: another process opens the store (and could
    # write it) while Great Expectations validates, as it could while the whole frames were validated
    import subprocess
    import sys

    from great_expectations.validator.v1_validator import Validator

    from pad_data.stages import check

    with Store(db) as st, st.transaction():
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question, answer) "
                       "SELECT 'p' || i, 'd', 'train', 'Q ' || i, i FROM range(500) t(i)")
    opened: list[int] = []
    init = Validator.__init__

    def spy(self, *args, **kwargs):
        if not opened:
            opened.append(subprocess.run([sys.executable, "-c", "import duckdb, sys; "
                                          "duckdb.connect(sys.argv[1]).execute('CHECKPOINT')", str(db)],
                                         capture_output=True, timeout=60).returncode)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Validator, "__init__", spy)
    with Store(db) as st:
        out = check.run_checks(st)
        assert st.scalar("SELECT count(*) FROM check_runs") == 1
    assert opened == [0] and out["results"]
    assert not [p for p in db.parent.iterdir() if p.name.startswith(".pad-")]  # the scratch copy is gone
