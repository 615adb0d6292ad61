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

Everything runs in a scratch DuckDB file beside the store, as program snapshots do
(:mod:`.programs`): the faulty and the correct candidates and the questions are copied in range
by range, the store is let go, programs are analyzed :data:`~.candidates.SCAN_ROWS` at a time,
and pairing, selection and ordering are SQL statements of at most one join each, so memory stays
within the budget at any size (they spill beside the store).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from duckdb.sqltypes import DOUBLE, INTEGER, VARCHAR

from pad_data.stages.curate.candidates import SCAN_ROWS, candidates_query, nothing_selected, ranged
from pad_data.stages.curate.choose import choose
from pad_data.stages.curate.dedup import analyze_into
from pad_data.stages.curate.params import CurateParams
from pad_data.stages.curate.snapshots import HASHED, TASK_COLUMNS, append_snapshot, content_hash
from pad_data.stages.curate.split import copy_questions
from pad_data.stages.feedback import feedback
from pad_data.store import ORIGINS, Store, copy_into, scratch_db

# the faulty side, with what running it said (its teacher is not the pair's: the target's is)
FAULTY_COLUMNS = ("program_id AS faulty_program_id, problem_id, dataset, question, program AS faulty_program, "
                  "gold AS answer, gold_text AS answer_text, gold_source, agreement, label, origin, v.verdict, "
                  "parent_program_id, preamble_id, status, value, error_type, error_message, error_line, timeout_s, "
                  "injection_kind")
TARGET_COLUMNS = "program_id, problem_id, program, parent_program_id, teacher, preamble_id"
# feedback's arguments, the executions columns it reads
FEEDBACK_ARGS = (("status", VARCHAR), ("value", VARCHAR), ("error_type", VARCHAR), ("error_message", VARCHAR),
                 ("error_line", INTEGER), ("timeout_s", DOUBLE))
FEEDBACK_FUNCTION = "pad_feedback"


def curate_refine(store: Store, name: str, p: CurateParams) -> dict:
    """Create refine snapshot ``name`` for ``p`` (checked); returns its counts and hash."""
    with scratch_db(store, "refine") as (scratch, path):
        _copy_candidates(store, scratch, p)
        store.release()  # analysis takes a while: other processes may use the store meanwhile
        scratch.execute(f"SET memory_limit = '{store.share(1)}'")
        deep = analyze_into(scratch, "good_size", "SELECT program_id, program FROM good", "none",
                            ("program_id", "_key", "_size"), store.memory)
        _pairs(scratch, p.siblings)
        deep += analyze_into(scratch, "faulty_key", "SELECT faulty_program_id, faulty_program FROM pairs", p.dedup,
                             ("faulty_program_id", "_key", "_size"), store.memory)
        # each faulty program ranked by a seeded hash of its id (int of 15 hex digits of
        # sha256(f"{seed}:{id}")): every kind of error is represented, as the module docstring says
        scratch.execute(f"""CREATE TABLE ranked AS SELECT faulty_program_id, problem_id, _key,
                                CAST('0x' || left(sha256('{int(p.seed)}:' || faulty_program_id), 15) AS BIGINT) AS _order
                            FROM pairs JOIN faulty_key USING (faulty_program_id)""")
        choose(scratch, "ranked", "q", p, "faulty_program_id")
        _assemble(scratch)
        counts = _counts(scratch, deep)
        if not counts["programs"]:
            raise nothing_selected(store, p)
        hashed = scratch.cursor().sql(f"SELECT {', '.join(HASHED['refine'])} FROM snap")
        digest = content_hash(p, hashed.to_arrow_reader(SCAN_ROWS))
        scratch.close()
        return append_snapshot(store, name, p, digest, counts, path)


def _copy_candidates(store: Store, scratch: duckdb.DuckDBPyConnection, p: CurateParams) -> None:
    """Tables ``faulty`` (the candidates ``p`` selects), ``good`` (every correct program of its
    datasets, of any origin: the targets) and ``q`` (:func:`~.split.copy_questions`)."""
    targets = CurateParams(labels=["correct"], datasets=p.datasets, origins=list(ORIGINS), review=p.review)
    for table, params, columns in (("faulty", p, FAULTY_COLUMNS), ("good", targets, TARGET_COLUMNS)):
        query, values = candidates_query(params, columns)
        for i, reader in enumerate(ranged(store, query, values)):
            copy_into(scratch, table, reader, append=i > 0)
    copy_questions(store, scratch, p)


def _pairs(scratch: duckdb.DuckDBPyConnection, siblings: bool) -> None:
    """Table ``pairs``: each faulty program with one correct target (``program_id``, ``program``,
    ``teacher``): a linked correct program first (its parent, then a fix made from it), then with
    ``siblings`` the shortest correct program of its problem; the shorter first within each
    (``good_size``), then by id. Both programs ran after the same preamble, or none (the fix of
    a program is written for what it runs after)."""
    scratch.execute("""CREATE TABLE sized AS SELECT program_id, problem_id, program, parent_program_id, teacher,
                           coalesce(preamble_id, '') AS _preamble, _size FROM good JOIN good_size USING (program_id)""")
    scratch.execute("""CREATE TABLE links (faulty_program_id VARCHAR, program_id VARCHAR, program VARCHAR,
                           teacher VARCHAR, _rank INTEGER, _size BIGINT)""")
    joins = [(0, "sized", "g.program_id = f.parent_program_id"),  # injected / student variant -> its parent
             (1, "sized", "g.parent_program_id = f.faulty_program_id")]  # a fix made from the faulty program
    if siblings:
        scratch.execute("""CREATE TABLE shortest AS SELECT * FROM sized
                           QUALIFY row_number() OVER (PARTITION BY problem_id, _preamble ORDER BY _size, program_id) = 1""")
        joins.append((2, "shortest", "g.problem_id = f.problem_id"))
    for rank, targets, on in joins:
        scratch.execute(f"""INSERT INTO links SELECT f.faulty_program_id, g.program_id, g.program, g.teacher, {rank},
                                g._size FROM faulty f JOIN {targets} g
                                ON {on} AND g._preamble = coalesce(f.preamble_id, '')""")
    scratch.execute("""CREATE TABLE target AS SELECT * FROM links QUALIFY row_number() OVER (
                           PARTITION BY faulty_program_id ORDER BY _rank, _size, program_id) = 1""")
    scratch.execute("""CREATE TABLE pairs AS SELECT f.*, t.program_id, t.program, t.teacher
                       FROM faulty f JOIN target t USING (faulty_program_id)""")
    for table in ("links", "target", "sized"):
        scratch.execute(f"DROP TABLE {table}")


def _assemble(scratch: duckdb.DuckDBPyConnection) -> None:
    """Table ``snap``: the ``chosen`` pairs with their execution feedback, in the snapshot's
    columns (:data:`~.snapshots.TASK_COLUMNS`) and stored order (split, faulty_program_id)."""
    scratch.execute("""CREATE TABLE rows AS SELECT pairs.*, chosen.split FROM pairs JOIN chosen
                       USING (faulty_program_id, problem_id)""")
    said = f"{FEEDBACK_FUNCTION}({', '.join(c for c, _ in FEEDBACK_ARGS)}) AS feedback"
    columns = ", ".join(said if c == "feedback" else c for c in TASK_COLUMNS["refine"])
    scratch.execute("SET preserve_insertion_order = true")  # snap's order is the snapshot's
    scratch.create_function(FEEDBACK_FUNCTION, _feedback, [t for _, t in FEEDBACK_ARGS], VARCHAR, type="arrow",
                            null_handling="special", side_effects=False)
    try:
        scratch.execute(f"CREATE TABLE snap AS SELECT {columns} FROM rows ORDER BY split, faulty_program_id")
    finally:
        scratch.remove_function(FEEDBACK_FUNCTION)
    scratch.execute("DROP TABLE rows")


def _feedback(status: pa.Array, value: pa.Array, error_type: pa.Array, error_message: pa.Array,
              error_line: pa.Array, timeout_s: pa.Array) -> pa.Array:
    """:func:`~pad_data.stages.feedback.feedback` over DuckDB's vectors of its arguments
    (:data:`FEEDBACK_ARGS`)."""
    columns = (status, value, error_type, error_message, error_line, timeout_s)
    return pa.array([feedback(*row) for row in zip(*(c.to_pylist() for c in columns))], pa.string())


def _counts(scratch: duckdb.DuckDBPyConnection, deep: int) -> dict:
    """What ``snap`` holds: rows per split, problems, programs, rows per label and per injection kind
    (each in the order it first appears in the snapshot), and ``too_deep`` (when any): programs
    too deeply nested to analyze among the pairs and the targets (``deep``)."""
    def by(col: str) -> dict:
        return dict(scratch.execute(f"SELECT {col}, count(*) FROM snap WHERE {col} IS NOT NULL GROUP BY 1 "
                                    "ORDER BY min([split, faulty_program_id])").fetchall())
    problems, programs = scratch.execute("SELECT count(DISTINCT problem_id), count(*) FROM snap").fetchall()[0]
    counts = {"splits": by("split"), "problems": problems, "programs": programs, "labels": by("label"),
              "injection_kinds": by("injection_kind")}
    return counts | ({"too_deep": deep} if deep else {})
