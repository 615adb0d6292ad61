"""The generate stage: programs from a teacher, stored with their raw completions.

This module holds what every teacher shares (turning completions into ``programs`` rows);
the teachers themselves live in :mod:`pad_data.teachers`.
"""

from __future__ import annotations

import pandas as pd

from .embedded import embedded_problems
from .extract import extract_program
from .store import Store, problem_id, program_id
from .teachers import offline


def program_rows(pid: str, teacher: str, completions: list[tuple[int, str]],
                 origin: str = "teacher") -> list[dict]:
    """``programs`` rows for ``(sample_idx, completion)`` pairs of one problem."""
    rows = []
    for idx, completion in completions:
        code = extract_program(completion)
        rows.append({"program_id": program_id(pid, code, teacher, idx, origin), "problem_id": pid,
                     "origin": origin, "teacher": teacher, "sample_idx": idx, "program": code,
                     "completion": completion})
    return rows


def generate_offline(store: Store, samples: int = 4, seed: int = 0) -> dict:
    """Programs from the offline template teacher for the embedded problems in the store.

    Only samples that are missing are written, so rerunning adds nothing.
    """
    known = {problem_id(p.dataset, p.question): p for p in embedded_problems(seed)}
    have = set(map(tuple, store.con.execute(
        "SELECT problem_id, sample_idx FROM programs WHERE teacher = ?", [offline.NAME]).fetchall()))
    in_store = {r[0] for r in store.con.execute(
        "SELECT problem_id FROM problems WHERE dataset LIKE 'pad-%'").fetchall()}
    rows = []
    for pid in sorted(in_store & set(known)):
        todo = [i for i in range(samples) if (pid, i) not in have]
        if todo:
            rows += program_rows(pid, offline.NAME,
                                 [(i, offline.write_program(known[pid], pid, i, seed)[0]) for i in todo])
    with store.transaction():
        added = store.insert_new("programs", pd.DataFrame(rows), "program_id") if rows else 0
    return {"teacher": offline.NAME, "problems": len(in_store & set(known)), "added": added}


def ingest_embedded(store: Store, seed: int = 0) -> dict:
    """Add pad's embedded problems (``pad-arith``, ``pad-coin``, ``pad-letters``) to the store."""
    rows = [{"problem_id": problem_id(p.dataset, p.question), "dataset": p.dataset, "split": "train",
             "question": p.question, "answer": p.answer, "answer_text": p.answer_text,
             "rationale": None, "source": f"pad-embedded(seed={seed})"}
            for p in embedded_problems(seed)]
    with store.transaction():
        added = store.insert_new("problems", pd.DataFrame(rows), "problem_id")
    return {"read": len(rows), "added": added}
