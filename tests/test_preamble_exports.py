"""A preamble travels with its programs: curated snapshots keep it, every export format ships it (and
the card shows it), and injected variants run after their parent's, so what a user gets runs."""

import json

import datasets
import pandas as pd
import pyarrow as pa
import pytest
from conftest import pad_cli
from test_preamble import PAL_AQUA, PAL_MATH, POT_AQUA, POT_AQUA_RECS, _jsonl

from pad_data.sandbox.pool import SandboxPool
from pad_data.stages.curate import CurateParams, content_hash, curate
from pad_data.stages.execute import execute
from pad_data.stages.export import CHAT_PREAMBLE, CHAT_SYSTEMS, fenced
from pad_data.stages.ingest import import_programs
from pad_data.stages.inject import inject_errors
from pad_data.store import Store
from pad_data.store.ids import preamble_id
from pad_data.store.migrations import MIGRATIONS

PLAIN = [{"question": f"What is {i} plus {i + 2}?", "answer": 2 * i + 2,
          "code": f"def solution():\n    return {i} + {i + 2}\n"} for i in range(3)]
ALL = CurateParams(dedup="none", validation_fraction=0, test_fraction=0)
PAL_ID, POT_ID = preamble_id(PAL_MATH.read_text()), preamble_id(POT_AQUA.read_text())


@pytest.fixture
def mixed(tmp_path, db):
    """PAL-AQuA functions imported with pal_math.py, PoT-AQuA scripts with pot_aqua.py, the PAL ones again
    imported bare and run with `pad execute --preamble` ("late": the preamble is in no program id), and
    plain programs needing none: all correct, curated into one snapshot through the CLI."""
    with Store(db) as st:
        import_programs(st, _jsonl(tmp_path / "pal.jsonl", PAL_AQUA), "pal", answer_field="correct", preamble=PAL_MATH)
        import_programs(st, _jsonl(tmp_path / "pot.jsonl", POT_AQUA_RECS), "pot", answer_field="correct",
                        preamble=POT_AQUA)
        import_programs(st, tmp_path / "pal.jsonl", "late", answer_field="correct")
        import_programs(st, _jsonl(tmp_path / "plain.jsonl", PLAIN), "plain")
        execute(st, dataset="late", preamble=PAL_MATH, isolation_level="process")
        execute(st, isolation_level="process")
        assert st.scalar("SELECT count(*) FROM labeled_programs WHERE label = 'correct'") == 14
    pad_cli("--db", db, "curate", "snap", "--dedup", "none", "--validation", "0", "--test", "0", check=True)
    return db


def _runs(rows: list[tuple[str, str | None, str]]) -> list[str]:
    """Run each ``(key, preamble, program)`` as a user would, ``preamble + "\\n" + program`` as one
    program, in pad's sandbox: each one's status (``ok`` with its value) or error type."""
    with SandboxPool(workers=2, timeout=10.0, isolation_level="process") as pool:
        res = dict(pool.map((k, (pre + "\n" if isinstance(pre, str) else "") + prog) for k, pre, prog in rows))
    return {k: (r.value if r.status == "ok" else r.error_type) for k, r in res.items()}


def test_snapshot_and_every_export_carry_the_preamble(mixed, tmp_path):
    want = {"pal": PAL_ID, "late": PAL_ID, "pot": POT_ID, "plain": None}
    texts = {PAL_ID: PAL_MATH.read_text(), POT_ID: POT_AQUA.read_text(), None: None}
    with Store(mixed) as st:
        stored = st.con.execute("SELECT dataset, preamble_id, count(*) FROM curated_examples WHERE name = 'snap' "
                                "GROUP BY ALL ORDER BY 1").fetchall()
    assert stored == [("late", PAL_ID, 4), ("pal", PAL_ID, 4), ("plain", None, 3), ("pot", POT_ID, 3)]
    for fmt in ("hf", "parquet", "jsonl", "chat"):
        pad_cli("--db", mixed, "export", "snap", "--out", tmp_path / fmt, "--format", fmt, check=True)
    hf = datasets.load_from_disk(str(tmp_path / "hf"))["train"].to_pandas()
    flat = {"parquet": pd.read_parquet(tmp_path / "parquet" / "train.parquet"),
            "jsonl": pd.read_json(tmp_path / "jsonl" / "train.jsonl", lines=True)}
    for fmt, rows in {"hf": hf, **flat}.items():
        assert len(rows) == 14, fmt
        got = [(d, p if isinstance(p, str) else None) for d, p in zip(rows.dataset, rows.preamble)]
        assert got == [(d, texts[want[d]]) for d in rows.dataset], fmt
    # what was executed runs as the export gives it; the program alone fails for want of its names
    ran = _runs([(f"{pid}:with", pre, prog) for pid, pre, prog in zip(hf.program_id, hf.preamble, hf.program)]
                + [(f"{pid}:bare", None, prog) for pid, prog in zip(hf.program_id, hf.program)])
    for pid, answer, pre in zip(hf.program_id, hf.answer, hf.preamble):
        assert float(ran[f"{pid}:with"]) == pytest.approx(answer), pid
        assert (ran[f"{pid}:bare"] == "NameError") == isinstance(pre, str), pid
    # chat: the system turn shows the preamble; the assistant turn is the program alone, as written
    chat = datasets.load_from_disk(str(tmp_path / "chat"))["train"].to_pandas()
    programs = dict(zip(hf.program_id, hf.program))
    for pid, messages, pre in zip(chat.program_id, chat.messages, chat.preamble):
        system, user, assistant = messages
        style = "function" if assistant["content"].startswith("def solution") else "script"
        tail = CHAT_PREAMBLE + fenced(pre, "python") if isinstance(pre, str) else ""
        assert system["content"] == CHAT_SYSTEMS[style] + tail
        assert assistant["content"] == programs[pid]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "11 of 14 rows hold a program that ran after a preamble" in card
    assert f"### `pal_math` (`{PAL_ID}`): 8 rows\n\n```python\n{PAL_MATH.read_text()}```" in card
    assert f"### `pot_aqua` (`{POT_ID}`): 3 rows\n\n```python\n{POT_AQUA.read_text()}```" in card
    assert "`preamble` (the code the program ran after" in card
    assert "the system turn shows it" in (tmp_path / "chat" / "README.md").read_text()


def test_content_hash_covers_the_preamble_and_is_unchanged_without_one(mixed):
    with Store(mixed) as st:
        for name, ds in (("plain-only", "plain"), ("late-only", "late")):
            p = CurateParams(datasets=[ds], dedup="none", validation_fraction=0, test_fraction=0)
            digest = curate(st, name, p)["content_hash"]
            rows = st.df("SELECT split, program_id, program, verdict, preamble_id FROM curated_examples "
                         "WHERE name = ? ORDER BY rowid", [name])
            bare = pa.Table.from_pandas(rows.drop(columns=["preamble_id"])).to_batches()  # the rule before v21
            assert (digest == content_hash(p, bare)) == (ds == "plain"), name
            assert digest == content_hash(p, pa.Table.from_pandas(rows).to_batches())


def test_fence_outlasts_backticks_and_shows_controls():
    assert fenced("x = '```'\n", "python") == "````python\nx = '```'\n````"
    assert fenced("a = '\x1b[31m'") == "```\na = '\\x1b[31m'\n```"


PROGRAMS = [  # PAL-style functions calling math names they never import
    ("What is twice the greatest common divisor of 84 and 36?", 24,
     "def solution():\n    a = 84\n    b = 36\n    g = gcd(a, b)\n    total = g * 2\n    return total\n"),
    ("Choose 2 of 5, then add 3 factorial.", 16,
     "def solution():\n    n = 5\n    k = 2\n    ways = comb(n, k)\n    extra = factorial(3)\n    return ways + extra\n"),
    ("A square has area 49. What is its perimeter?", 28,
     "def solution():\n    area = 49\n    side = sqrt(area)\n    perimeter = side * 4\n    return perimeter\n"),
]


def test_injected_variants_run_after_their_parents_preamble(tmp_path, db):
    """Variants of a program that needs its preamble run after it, so they fail for their injected error
    (wrong answers, their own typos), not for the preamble's names; refinement pairs and their export
    keep it."""
    src = _jsonl(tmp_path / "pal.jsonl", [{"question": q, "answer": a, "code": c} for q, a, c in PROGRAMS])
    with Store(db) as st:
        import_programs(st, src, "pal", preamble=PAL_MATH)
        import_programs(st, src, "late")  # executed with `pad execute --preamble`: not in its programs row
        execute(st, dataset="late", preamble=PAL_MATH, isolation_level="process")
        execute(st, isolation_level="process")
        r = inject_errors(st, per_program=4, kinds=["operator", "constant_changed", "wrong_return", "undefined_name"])
        assert r["sources"] == 6 and r["executed"] == r["added"] > 12
        variants = st.df("SELECT v.dataset, p.preamble_id, v.label, v.error_type, v.injection_kind, "
                         "v.preamble_id AS ran_with FROM labeled_programs v JOIN programs p USING (program_id) "
                         "WHERE v.origin = 'injected'")
    assert (variants.preamble_id == PAL_ID).all() and (variants.ran_with == PAL_ID).all()
    edits = variants[variants.injection_kind != "undefined_name"]
    assert edits.label.isin(["wrong_answer", "correct"]).all() and (edits.label == "wrong_answer").sum() >= 8
    typos = variants[variants.injection_kind == "undefined_name"]
    assert len(typos) >= 2 and (typos.error_type == "NameError").all()

    pad_cli("--db", db, "curate", "fix", "--task", "refine", "--validation", "0", "--test", "0", check=True)
    pad_cli("--db", db, "export", "fix", "--out", tmp_path / "fix", "--format", "jsonl", check=True)
    rows = [json.loads(line) for line in (tmp_path / "fix" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == len(variants[variants.label != "correct"])
    assert {r["preamble"] for r in rows} == {PAL_MATH.read_text()}
    pad_cli("--db", db, "export", "fix", "--out", tmp_path / "chat", "--format", "chat", check=True)
    turns = datasets.load_from_disk(str(tmp_path / "chat"))["train"]["messages"]
    assert len(turns) == len(rows) and {len(t) for t in turns} == {5}
    assert {t[0]["content"] for t in turns} == {CHAT_SYSTEMS["function"] + CHAT_PREAMBLE + fenced(PAL_MATH.read_text(),
                                                                                                 "python")}


def test_refine_pairs_never_mix_preambles(tmp_path, db):
    """A faulty program is paired only with a correct program that ran after the same preamble: a
    fix written for other names would not be a fix of it."""
    src = _jsonl(tmp_path / "pal.jsonl", [{"question": q, "answer": a, "code": c} for q, a, c in PROGRAMS])
    wrong = _jsonl(tmp_path / "wrong.jsonl", [{"question": q, "answer": a, "code": c.replace("return", "return 1 +")}
                                              for q, a, c in PROGRAMS])
    with Store(db) as st:
        import_programs(st, src, "pal", preamble=PAL_MATH)
        import_programs(st, wrong, "pal")  # faulty, and no preamble: NameError
        execute(st, isolation_level="process")
        with pytest.raises(ValueError, match="select no refinement pairs"):
            curate(st, "sib", CurateParams(task="refine", siblings=True, validation_fraction=0, test_fraction=0))
        import_programs(st, wrong, "pal", preamble=PAL_MATH)  # faulty after the same preamble: wrong_answer
        execute(st, isolation_level="process")
        r = curate(st, "sib2", CurateParams(task="refine", siblings=True, validation_fraction=0, test_fraction=0))
        pairs = st.df("SELECT label, preamble_id FROM refine_examples WHERE name = 'sib2'")
    assert r["programs"] == 3 and pairs.values.tolist() == [["wrong_answer", PAL_ID]] * 3


def test_snapshots_made_before_v21_get_their_preamble(mixed):
    """v21's backfill: a snapshot's rows get the preamble of their program's current execution, else
    the one it was imported with."""
    with Store(mixed) as st:
        want = st.con.execute("SELECT program_id, preamble_id FROM curated_examples ORDER BY 1").fetchall()
        st.con.execute("UPDATE curated_examples SET preamble_id = NULL")
        st.con.execute("UPDATE executions SET preamble_id = NULL WHERE program_id IN "
                       "(SELECT program_id FROM programs WHERE preamble_id IS NOT NULL)")  # the import's, then
        for stmt in MIGRATIONS[21 - 1]:
            if stmt.lstrip().startswith("UPDATE"):
                st.con.execute(stmt)
        got = st.con.execute("SELECT program_id, preamble_id FROM curated_examples ORDER BY 1").fetchall()
    assert got == want and len({p for _, p in got}) == 3


def test_a_snapshot_keeps_its_preambles_after_its_datasets_are_deleted(mixed, tmp_path):
    pad_cli("--db", mixed, "delete", "--dataset", "pot", "--yes", check=True)
    pad_cli("--db", mixed, "export", "snap", "--out", tmp_path / "out", "--format", "jsonl", check=True)
    rows = pd.read_json(tmp_path / "out" / "train.jsonl", lines=True)
    assert (rows[rows.dataset == "pot"].preamble == POT_AQUA.read_text()).sum() == 3
