"""Near-duplicate questions never cross splits (issue #33 item 5): PoT's SVAMP file imported twice,
once with a trailing "." added to every question, as two datasets; the split rule keeps each
question and its copy in one split, and ``pad check`` finds no leak in the snapshot."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

import duckdb
import pytest

from pad_data.stages.check import leak_key
from pad_data.stages.curate import CurateParams, curate
from pad_data.stages.curate.split import assign_splits
from pad_data.stages.execute import execute
from pad_data.stages.ingest import import_programs
from pad_data.store import Store, problem_id

from conftest import pad_cli

FIELDS = {"question_field": ["passage", "question"], "program_field": "generated", "answer_field": "answer",
          "skip_invalid": True}
PARAMS = CurateParams(test_fraction=0.2, validation_fraction=0.1)


def _svamp(shared_data) -> list[dict]:
    """PoT's SVAMP records (its 3 demonstration records left out)."""
    lines = (shared_data / "pot" / "svamp.jsonl").read_text().splitlines()
    return [rec for rec in map(json.loads, lines) if "generated" in rec]


def _dotted(records: list[dict]) -> list[dict]:
    return [{**r, "question": r["question"] + "."} for r in records]


def _question(rec: dict) -> str:
    return f"{rec['passage']} {rec['question']}"  # as --question-field passage,question joins them


def _splits(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str | None]]) -> dict[str, str]:
    """problem_id -> split, by :func:`assign_splits` over ``rows`` (problem_id, question, source_split)."""
    con.execute("CREATE OR REPLACE TABLE q (problem_id VARCHAR, question VARCHAR, source_split VARCHAR)")
    con.executemany("INSERT INTO q VALUES (?, ?, ?)", rows)
    con.execute("DROP TABLE IF EXISTS problem_split")
    assign_splits(con, "q", PARAMS)
    return dict(con.execute("SELECT problem_id, split FROM problem_split").fetchall())


def _crossing(questions: dict[str, str], split: dict[str, str]) -> list[str]:
    """The leak keys (pad check's) whose problems are in more than one split."""
    by_key = defaultdict(set)
    for pid, q in questions.items():
        if leak_key(q):
            by_key[leak_key(q)].add(split[pid])
    return [k for k, s in by_key.items() if len(s) > 1]


def test_split_rule_keeps_svamp_questions_and_their_dotted_copies_together(shared_data):
    records = _svamp(shared_data)
    questions = {problem_id(ds, _question(r)): _question(r)
                 for ds, recs in (("svamp", records), ("svamp-dot", _dotted(records))) for r in recs}
    assert len(questions) >= 1900  # each question of the file, and its copy
    con = duckdb.connect()
    split = _splits(con, [(pid, q, "train") for pid, q in questions.items()])
    assert set(split) == set(questions)
    assert _crossing(questions, split) == []
    assert set(split.values()) == {"train", "validation", "test"}
    # the rule it replaces, a draw per problem id, put pairs in different splits
    def by_problem(pid: str) -> str:
        u = int(hashlib.sha256(f"{PARAMS.seed}:{pid}".encode()).hexdigest()[:12], 16) / 16**12
        return "test" if u < 0.2 else "validation" if u < 0.3 else "train"
    assert len(_crossing(questions, {pid: by_problem(pid) for pid in questions})) > 100

    # a question ingested as test takes its near-duplicates with it, whatever they draw
    drawn_train = [pid for pid in questions if split[pid] == "train"][:20]
    rows = [(pid, q, "test" if pid in drawn_train else "train") for pid, q in questions.items()]
    split = _splits(con, rows)
    assert _crossing(questions, split) == []
    moved = {pid for pid, q in questions.items() if leak_key(q) in {leak_key(questions[t]) for t in drawn_train}}
    assert len(moved) >= 2 * len(drawn_train) - 5 and {split[pid] for pid in moved} == {"test"}

    # questions with nothing left to compare (no letters or digits) are not one cluster
    blank = {f"blank{i}": "？" * (i + 1) for i in range(200)}
    split = _splits(con, [(pid, q, None) for pid, q in blank.items()])
    assert set(split.values()) == {"train", "validation", "test"}


@pytest.mark.e2e
def test_curated_svamp_and_its_dotted_copy_never_leak(db, shared_data, tmp_path):
    records = _svamp(shared_data)
    plain, dotted = tmp_path / "svamp.jsonl", tmp_path / "svamp-dot.jsonl"
    plain.write_text("\n".join(json.dumps(r) for r in records))
    dotted.write_text("\n".join(json.dumps(r) for r in _dotted(records)))
    with Store(db) as st:
        import_programs(st, plain, "svamp", **FIELDS)
        import_programs(st, dotted, "svamp-dot", **FIELDS)
        execute(st, timeout=5)
        made = curate(st, "both", PARAMS)
        assert set(made["splits"]) == {"train", "validation", "test"}
        rows = st.df("SELECT DISTINCT problem_id, dataset, question, split FROM curated_examples WHERE name = 'both'")
    assert set(rows.dataset) == {"svamp", "svamp-dot"}
    keys = [leak_key(q) for q in rows.question]
    pairs = rows.assign(key=keys).groupby("key").dataset.nunique()
    assert (pairs == 2).sum() > 500  # most questions are in the snapshot twice, once from each file
    assert _crossing(dict(zip(rows.problem_id, rows.question)), dict(zip(rows.problem_id, rows.split))) == []
    res = pad_cli("--db", db, "check")
    assert res.returncode == 0, res.stdout + res.stderr
    leak_line = [line for line in res.stdout.splitlines() if "leaked_from_test" in line]
    assert leak_line and "FAIL" not in leak_line[0], res.stdout
