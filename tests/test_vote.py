import json

import pytest

from pad_data.rules.answers import parse_answer
from pad_data.rules.labels import numbers_match
from pad_data.rules.majority import majority
from pad_data.stages.batch import generate_batch
from pad_data.stages.curate import CurateParams, curate
from pad_data.stages.execute import execute
from pad_data.stages.ingest import import_programs, ingest
from pad_data.stages.vote import vote
from pad_data.store import Store

from conftest import pad_cli
from openai_server import FakeTeacherServer

N_PROBLEMS = 300


def test_majority_groups_values_within_the_label_tolerance_and_refuses_ties():
    assert majority([]) is None
    assert majority([5.0]) == (5.0, 1)
    # 18.0000003 and 18 are one answer (|d| < 1e-3); the exact 18 is the representative
    assert majority([18.0, 18.0000003, 18.0, 7.0, 7.0]) == (18.0, 3)
    assert majority([7.0, 18.0, 18.0000003]) == (18.0, 2)
    assert majority([1.0, 1.0, 2.0, 2.0]) is None  # tied: two answers with 2 votes each
    assert majority([1.0, 1.0006, 1.0012]) == (1.0006, 3)  # the middle value matches both ends
    assert majority([1000.0, 1001.0, 1001.0]) == (1001.0, 2)  # PAL's absolute rule: 1000 != 1001


def test_one_majority_rule_for_texts_and_for_a_vote_that_must_choose():
    # texts agree as labels compare them; a number never agrees with a text
    assert majority(["Yes", "yes", "no", "YES"]) == ("YES", 3)  # three forms, one each: the smallest
    assert majority(["ab", "a b", "ab "]) == ("ab", 2)
    assert majority(["18", "18", 18.0, 18.0004, 18.0]) == (18.0, 3)
    assert majority(["18", 18.0, 18.0004, "18"]) is None  # "18" and 18.0 do not agree: 2 votes each
    # ties: no consensus, or (a sampled answer must be chosen) the leader given first
    for answers, first in (([2.0, 1.0, 1.0, 2.0], 2.0), ([1.0, 2.0, 2.0, 1.0], 1.0), (["b", 3.0, "B", 3.0], "b"),
                           ([3.0, "x"], 3.0)):
        assert majority(answers) is None
        assert majority(answers, ties="first") == (first, 2 if len(answers) > 2 else 1)
    assert majority([1.0, 1.0006, 1.0012], ties="first") == (1.0006, 3)  # not a tie: they agree
    assert majority([], ties="first") is None


def test_vote_recovers_hidden_gsm8k_gold_and_agreement_curation_is_clean(db, tmp_path, shared_data):
    records = [json.loads(line) for line in
               (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:N_PROBLEMS]]
    hidden = {r["question"]: parse_answer(r["answer"]).number for r in records}
    questions = tmp_path / "questions.jsonl"  # the questions alone: the gold answers stay hidden
    questions.write_text("\n".join(json.dumps({"question": r["question"]}) for r in records))
    with Store(db) as st:
        r = ingest(st, questions, "gsm8k-nogold", split="train")
        assert r["added"] == N_PROBLEMS and "none of the" in r["warning"]
        with FakeTeacherServer(answers=hidden, batch_s=0.1) as srv:  # one Batch API job: 300 requests, n = 8
            g = generate_batch(st, "fake-teacher", "gsm8k-nogold", base_url=srv.base_url, samples=8,
                               poll_interval=0.05)
            assert (g["added"], g["failed"], srv.batches_created) == (8 * N_PROBLEMS, 0, 1)
        execute(st, workers=2)
        before = dict(st.con.execute("SELECT label, count(*) FROM labeled_programs GROUP BY 1").fetchall())
        assert "correct" not in before and before["unverifiable"] > 0.8 * 8 * N_PROBLEMS
        # below --min-votes (more votes than samples) nothing gets a consensus
        assert vote(st, min_votes=9)["voted"] == 0
        assert st.scalar("SELECT count(*) FROM labeled_programs WHERE label = 'correct'") == 0

    res = pad_cli("--db", db, "vote", "--dataset", "gsm8k-nogold")
    assert res.returncode == 0, res.stderr
    assert f"{N_PROBLEMS} problems without gold:" in res.stdout and "correct" in res.stdout
    with Store(db) as st:
        cons = st.df("SELECT pr.question, c.answer, c.votes, c.voters, c.agreement "
                     "FROM consensus c JOIN problems pr USING (problem_id)")
        recovered = sum(numbers_match(a, hidden[q]) for q, a in zip(cons.question, cons.answer))
        assert recovered >= 0.95 * N_PROBLEMS
        assert recovered < N_PROBLEMS  # the teacher is sometimes wrong: some problems are lost
        assert ((cons.votes >= 3) & (cons.votes <= cons.voters) & (cons.voters <= 8)).all()
        assert (cons.agreement == cons.votes / cons.voters).all()
        lp = st.df("SELECT lp.*, c.answer AS consensus FROM labeled_programs lp "
                   "LEFT JOIN consensus c USING (problem_id)")
        voted, rest = lp[lp.consensus.notna()], lp[lp.consensus.isna()]
        assert (voted.gold_source == "consensus").all() and (voted.gold == voted.consensus).all()
        assert set(voted.label) <= {"correct", "wrong_answer", "runtime_error"}
        ok = voted[voted.status == "ok"]
        assert (ok.label == ["correct" if numbers_match(v, c) else "wrong_answer"
                             for v, c in zip(ok.value_num, ok.consensus)]).all()
        assert rest.gold_source.isna().all() and set(rest.label) <= {"unverifiable", "runtime_error"}

    def truly_correct(name: str) -> tuple[float, int]:
        with Store(db, read_only=True) as st:
            rows = st.df("SELECT ce.question, lp.value_num FROM curated_examples ce "
                         "JOIN labeled_programs lp USING (program_id) WHERE ce.name = ?", [name])
        return sum(numbers_match(v, hidden[q]) for q, v in zip(rows.question, rows.value_num)) / len(rows), len(rows)

    res = pad_cli("--db", db, "curate", "agreed", "--max-per-problem", "8", "--dedup", "none", "--min-agreement", "0.6")
    assert res.returncode == 0, res.stderr
    with Store(db) as st:
        curate(st, "all", CurateParams(max_per_problem=8, dedup="none"))
    agreed, n_agreed = truly_correct("agreed")
    everything, n_all = truly_correct("all")
    assert agreed >= 0.99 and n_agreed > 0.7 * 8 * N_PROBLEMS * 0.8
    assert everything < agreed and n_all > n_agreed  # the agreement filter is what removes wrong consensus

    # a real gold answer always wins, over a stale consensus too; a new vote drops those consensus rows
    gold_file = tmp_path / "gold.jsonl"
    gold_file.write_text("\n".join(json.dumps(r) for r in records[:5]))
    with Store(db) as st:
        ingest(st, gold_file, "gsm8k-nogold", split="train", update=True)
        g = st.df("SELECT DISTINCT question, gold, gold_source FROM labeled_programs WHERE gold_source = 'gold'")
        assert len(g) == 5 and all(numbers_match(a, hidden[q]) for q, a in zip(g.question, g.gold))
        assert st.scalar("SELECT count(*) FROM consensus c JOIN problems pr USING (problem_id) "
                         "WHERE pr.answer IS NOT NULL") > 0  # stale, and ignored
        r = vote(st, dataset="gsm8k-nogold")
        assert r["problems"] == N_PROBLEMS - 5
        assert st.scalar("SELECT count(*) FROM consensus c JOIN problems pr USING (problem_id) "
                         "WHERE pr.answer IS NOT NULL") == 0


def test_vote_and_min_agreement_bad_input_fail_clearly(db):
    with Store(db) as st:
        st.con.execute("INSERT INTO problems (problem_id, dataset, split, question) VALUES ('p', 'd', 'train', 'q')")
    res = pad_cli("--db", db, "vote", "--dataset", "nope")
    assert res.returncode == 1 and "--dataset: no dataset 'nope'" in res.stderr
    with Store(db) as st:
        r = vote(st)
        assert (r["problems"], r["no_results"], r["voted"]) == (1, 1, 0)
        with pytest.raises(ValueError, match="--min-votes must be"):
            vote(st, min_votes=0)
        with pytest.raises(ValueError, match="--min-agreement must be"):
            curate(st, "x", CurateParams(min_agreement=1.5))
        assert CurateParams().to_json() == CurateParams(min_agreement=None).to_json()  # old snapshot hashes hold
        assert '"min_agreement": 0.6' in CurateParams(min_agreement=0.6).to_json()


def test_vote_skips_problems_whose_programs_are_not_all_executed_unless_partial(db, tmp_path, shared_data):
    """PoT's SVAMP programs, three samples of each problem, gold hidden: with some not yet executed,
    `pad vote` votes only on the problems whose programs all ran and says how many it skipped."""
    records = [json.loads(line) for line in (shared_data / "pot" / "svamp.jsonl").read_text().splitlines()
               if "generated" in line][:10]
    f = tmp_path / "pot.jsonl"
    f.write_text("\n".join(json.dumps({"question": f"{r['passage']} {r['question']}", "program": r["generated"] * 3})
                           for r in records))
    with Store(db) as st:
        import_programs(st, f, "svamp-nogold")
        execute(st, workers=2, limit=21)
        waiting = dict(st.con.execute(
            "SELECT problem_id, count(*) FROM programs WHERE program_id NOT IN (SELECT program_id FROM program_labels) "
            "GROUP BY 1").fetchall())
        assert sum(waiting.values()) == 9 and 3 <= len(waiting) <= 9
        r = vote(st)
        assert (r["problems"], r["unexecuted"], r["unexecuted_programs"], r["skipped"]) == (10, len(waiting), 9,
                                                                                          len(waiting))
        assert r["voted"] == 10 - len(waiting) and r["no_results"] == 0
        assert set(waiting).isdisjoint(r[0] for r in st.con.execute("SELECT problem_id FROM consensus").fetchall())
    res = pad_cli("--db", db, "vote")
    assert res.returncode == 0, res.stderr
    assert f"warning: skipped {len(waiting)} problems with 9 programs not yet executed" in res.stderr
    assert "--partial" in res.stderr
    res = pad_cli("--db", db, "vote", "--partial", "--min-votes", "1")
    assert f"voted on {len(waiting)} problems with 9 programs not yet executed (--partial)" in res.stdout
    assert "10 got a consensus answer" in res.stdout and "skipped" not in res.stderr
    with Store(db) as st:
        execute(st, workers=2)
        r = vote(st)
        assert (r["voted"], r["unexecuted"], r["skipped"]) == (10, 0, 0)
        assert st.scalar("SELECT count(*) FROM consensus WHERE votes = 3 AND agreement = 1") == 10
    res = pad_cli("--db", db, "vote")
    assert "not yet executed" not in res.stdout + res.stderr
