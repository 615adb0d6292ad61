"""Refinement pairs (``task="refine"``): input = question + a faulty program + its execution
feedback (:mod:`pad_data.stages.feedback`), target = a correct program for the same problem.

Pairs come from parent links in either direction (an injected variant and its correct parent;
a faulty program and the correct fix a reviewer or a student's refinement round made of it)
and, with ``siblings``, from a faulty program and the shortest correct program of its problem;
each faulty program keeps one target, a linked one first. The selection (:mod:`.choose`)
applies to the faulty side (labels default to every faulty label), with a seeded random
order instead of shortest first, so every kind of error is represented (shortest first would
always leave out programs that do not parse); splits are by near-duplicate cluster of the
question as for program snapshots (:mod:`.split`), so a problem is in the same split in both
with the same datasets and seed.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import duckdb
import pandas as pd
import pyarrow as pa

from pad_data.stages.curate.candidates import nothing_selected, read_candidates
from pad_data.stages.curate.choose import choose
from pad_data.stages.curate.dedup import analyze_all, size, too_deep
from pad_data.stages.curate.params import CurateParams
from pad_data.stages.curate.snapshots import HASHED, TASK_COLUMNS, content_hash, store_snapshot
from pad_data.stages.curate.split import copy_questions
from pad_data.stages.feedback import feedback
from pad_data.store import ORIGINS, Store, registered

CANDIDATE_COLUMNS = ("program_id, problem_id, dataset, question, program, gold AS answer, "
                     "gold_text AS answer_text, gold_source, agreement, label, teacher, origin, v.verdict, "
                     "parent_program_id, preamble_id")
# the faulty side also needs what running it said
FAULTY_COLUMNS = CANDIDATE_COLUMNS + ", status, value, error_type, error_message, error_line, timeout_s, injection_kind"


def curate_refine(store: Store, name: str, p: CurateParams) -> dict:
    """Create refine snapshot ``name`` for ``p`` (checked); returns its counts and hash."""
    rows = build_refine(store, p)
    if rows.empty:
        raise nothing_selected(store, p)
    counts = {"splits": dict(Counter(rows["split"])), "problems": int(rows["problem_id"].nunique()),
              "programs": len(rows), "labels": dict(Counter(rows["label"])),
              "injection_kinds": dict(Counter(k for k in rows["injection_kind"] if isinstance(k, str)))}
    if rows.attrs.get("too_deep"):
        counts["too_deep"] = rows.attrs["too_deep"]
    digest = content_hash(p, pa.Table.from_pandas(rows[HASHED["refine"]], preserve_index=False).to_batches())
    with registered(store.con, rows) as frame:
        return store_snapshot(store, name, p, digest, counts, f"SELECT * FROM {frame}")


def build_refine(store: Store, p: CurateParams) -> pd.DataFrame:
    """The refinement pairs for ``p`` (not stored), in their stored order; ``attrs["too_deep"]``:
    programs too deep to analyze (kept by :func:`~.dedup.analyze`'s rule) among the candidates."""
    faulty = read_candidates(store, p, FAULTY_COLUMNS)
    good = read_candidates(store, CurateParams(labels=["correct"], datasets=p.datasets, origins=list(ORIGINS),
                                               review=p.review), CANDIDATE_COLUMNS)
    cols = TASK_COLUMNS["refine"]
    if faulty.empty or good.empty:
        return pd.DataFrame(columns=cols)
    sizes = analyze_all(good["program"].tolist(), "none")
    df = _pairs(faulty, good.assign(_size=[size(i) for i in sizes]), p.siblings)
    if df.empty:
        return pd.DataFrame(columns=cols)
    df["feedback"] = [feedback(r.status, r.value, r.error_type, r.error_message, r.error_line, r.timeout_s)
                      for r in df.itertuples(index=False)]
    info = analyze_all(df["faulty_program"].tolist(), p.dedup)
    df = df.merge(_chosen(store, df, info, p), on=["faulty_program_id", "problem_id"])
    out = df[cols].sort_values(["split", "faulty_program_id"]).reset_index(drop=True)
    out.attrs["too_deep"] = too_deep(info) + too_deep(sizes)
    return out


def _pairs(faulty: pd.DataFrame, good: pd.DataFrame, siblings: bool) -> pd.DataFrame:
    """One pair per faulty program (``good`` has each correct program's ``_size``): a linked
    correct program first, then the shortest correct program of its problem; both programs ran
    after the same preamble, or none (the fix of a program is written for what it runs after)."""
    good = good[["program_id", "problem_id", "program", "parent_program_id", "teacher", "_size", "preamble_id"]]
    good = good.rename(columns={"preamble_id": "_good_preamble"})
    f = faulty.rename(columns={"program_id": "faulty_program_id", "program": "faulty_program"})
    f = f.drop(columns=["teacher"])
    parent = f.merge(good.drop(columns=["problem_id", "parent_program_id"]),
                     left_on="parent_program_id", right_on="program_id")  # injected / student variant -> its parent
    child = f.drop(columns=["parent_program_id"]).merge(  # a fix made from the faulty program
        good.drop(columns=["problem_id"]), left_on="faulty_program_id", right_on="parent_program_id")
    pairs = [parent.assign(_rank=0), child.assign(_rank=1)]
    if siblings:
        sib = f.merge(good.drop(columns=["parent_program_id"]), on="problem_id")
        pairs.append(sib.assign(_rank=2))
    df = pd.concat(pairs, ignore_index=True)
    df = df[df["preamble_id"].fillna("") == df["_good_preamble"].fillna("")].drop(columns=["_good_preamble"])
    df = df.sort_values(["faulty_program_id", "_rank", "_size", "program_id"], kind="stable")
    return df.drop_duplicates(subset=["faulty_program_id"], keep="first").reset_index(drop=True)


def _chosen(store: Store, pairs: pd.DataFrame, info: list, p: CurateParams) -> pd.DataFrame:
    """:func:`~.choose.choose` over the faulty side of ``pairs`` (``info``: its programs'
    analysis), each ranked by a seeded hash of its id: ``faulty_program_id``, ``problem_id``,
    ``split`` of the pairs kept."""
    ranked = pa.table({
        "faulty_program_id": pairs["faulty_program_id"], "problem_id": pairs["problem_id"],
        "_key": pa.array([i[2] for i in info], pa.string()),
        "_order": pa.array([int(hashlib.sha256(f"{p.seed}:{i}".encode()).hexdigest()[:15], 16)
                            for i in pairs["faulty_program_id"]], pa.int64())})
    with duckdb.connect(config={"memory_limit": store.share(0.5)}) as con, registered(con, ranked) as frame:
        copy_questions(store, con, p)
        choose(con, frame, "q", p, "faulty_program_id")
        return con.sql("SELECT * FROM chosen").df()
