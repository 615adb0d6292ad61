"""Exports describe the data as it is: where each answer came from (gold or a vote), the programs'
style (PAL functions or PoT scripts), and folders and files with the modes the umask gives."""

import json
import os
import stat

import datasets
import pytest

from pad_data.stages.curate import CurateParams, curate
from pad_data.stages.execute import execute
from pad_data.stages.export import CHAT_SYSTEMS, export
from pad_data.stages.ingest import import_programs
from pad_data.stages.vote import vote
from pad_data.store import Store
from pad_data.store.migrations import MIGRATIONS

N = 8


@pytest.fixture
def mixed(db, tmp_path, shared_data):
    """A snapshot of 8 PoT zero-shot scripts with gold (MultiArith), 8 PAL-style functions with gold
    (PAL's SVAMP questions), and 16 PoT SVAMP scripts on 8 problems whose gold is hidden: three samples
    each (two the authors', one wrong), voted on."""
    def records(path: str) -> list[dict]:
        return [json.loads(line) for line in (shared_data / path).read_text().splitlines()]

    # the hidden gold's programs are right (and not the wrong sample's 0); of MultiArith's, pad finds one
    # wrong (it returns -7 where PoT recorded 7), and the snapshot leaves it out
    pot_gold = records("pot/multiarith_zs.jsonl")[:N]
    pal = records("pal/svamp.jsonl")[:N]
    pot_hidden = [r for r in records("pot/svamp.jsonl") if r.get("executed") == r.get("answer", 0) != 0][:N]
    files = {
        "multiarith": [{"question": r["question"], "program": r["generated"], "answer": r["answer"]} for r in pot_gold],
        "pal-svamp": [{"question": r["input"], "program": f"def solution():\n    return {r['target']}\n",
                       "answer": r["target"]} for r in pal],
        "svamp-nogold": [{"question": f"{r['passage']} {r['question']}", "program": r["generated"] * 2 + ["ans = 0"]}
                         for r in pot_hidden],
    }
    with Store(db) as st:
        for name, records in files.items():
            path = tmp_path / f"{name}.jsonl"
            path.write_text("\n".join(json.dumps(r) for r in records))
            import_programs(st, path, name)
        execute(st, workers=2)
        assert vote(st, dataset="svamp-nogold", min_votes=2)["voted"] == N
        curate(st, "mixed", CurateParams(dedup="none", validation_fraction=0, test_fraction=0))
    return db


def test_export_says_which_answers_are_gold_and_which_a_consensus(mixed, tmp_path):
    with Store(mixed) as st:
        export(st, "mixed", tmp_path / "hf")
        export(st, "mixed", tmp_path / "chat", fmt="chat")
    rows = datasets.load_from_disk(str(tmp_path / "hf"))["train"].to_pandas()
    assert rows.groupby("dataset").size().to_dict() == {"multiarith": N - 1, "pal-svamp": N, "svamp-nogold": 2 * N}
    gold, voted = rows[rows.dataset != "svamp-nogold"], rows[rows.dataset == "svamp-nogold"]
    assert (gold.gold_source == "gold").all() and gold.agreement.isna().all()
    assert (voted.gold_source == "consensus").all() and (voted.agreement.round(4) == round(2 / 3, 4)).all()

    card = (tmp_path / "hf" / "README.md").read_text()
    assert f"| the dataset's gold answer | {2 * N - 1} | {2 * N - 1} | - |" in card
    assert f"| a consensus (`pad vote`: the majority answer of the problem's programs; not a verified gold) | " \
           f"{2 * N} | {N} | 0.67 / 0.67 |" in card
    assert f"{2 * N} rows are labeled against a consensus answer" in card
    # the program style, counted from the programs: PAL functions and PoT scripts (`ans = solver()` too)
    assert f"| `def solution(): ... return result` functions (PAL style) | {N} |" in card
    assert f"| scripts that assign the answer to `ans` (PoT style) | {3 * N - 1} |" in card
    assert f"{N} `def solution(): ... return result` functions (PAL style), {3 * N - 1} scripts" in card

    chat = datasets.load_from_disk(str(tmp_path / "chat"))["train"]
    assert {"gold_source", "agreement"} <= set(chat.column_names)
    for row in chat:
        system, _, program = row["messages"]
        style = "function" if program["content"].startswith("def solution():") else "script"
        assert system["content"] == CHAT_SYSTEMS[style]
        if style == "script":
            assert "solution()" not in system["content"] and "ans" in system["content"]
    chat_card = (tmp_path / "chat" / "README.md").read_text()
    assert "The system turn asks for the style of the program in the last turn" in chat_card
    assert CHAT_SYSTEMS["script"] in chat_card and CHAT_SYSTEMS["function"] in chat_card

    # a store upgraded from schema 16: a snapshot's rows get their gold source from the problems
    with Store(mixed) as st:
        st.con.execute("UPDATE curated_examples SET gold_source = NULL, agreement = NULL")
        for stmt in MIGRATIONS[17 - 1]:  # v17's backfill
            if stmt.lstrip().startswith("UPDATE"):
                st.con.execute(stmt)
        got = st.con.execute("SELECT dataset, gold_source, round(agreement, 4), count(*) FROM curated_examples "
                             "GROUP BY ALL ORDER BY 1").fetchall()
    assert got == [("multiarith", "gold", None, N - 1), ("pal-svamp", "gold", None, N),
                   ("svamp-nogold", "consensus", round(2 / 3, 4), 2 * N)]


def test_export_folders_and_files_get_the_modes_the_umask_gives(mixed, tmp_path):
    for umask in (0o022, 0o077):
        for fmt in ("hf", "jsonl"):
            out = tmp_path / f"out-{umask:o}-{fmt}"
            old = os.umask(umask)
            try:
                with Store(mixed) as st:
                    export(st, "mixed", out, fmt=fmt)
            finally:
                os.umask(old)
            modes = {p.relative_to(out).as_posix(): (p.is_dir(), stat.S_IMODE(p.stat().st_mode))
                     for p in [out, *out.rglob("*")]}
            assert len(modes) > 3 and ".pad-export" in modes and "README.md" in modes
            wrong = {path: oct(mode) for path, (is_dir, mode) in modes.items()
                     if mode != (0o777 if is_dir else 0o666) & ~umask}
            assert wrong == {}, (oct(umask), fmt)
