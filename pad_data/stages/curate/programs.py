"""Program snapshots, streamed through a scratch DuckDB file so the snapshot's text never sits in memory.

The candidates (with their program text, gold and verdict as read at this moment) and the
questions of their problems are copied in range by range (:func:`~.candidates.ranged`), and
the store is let go; programs are analyzed :data:`~.candidates.SCAN_ROWS` at a time, each
ranked shortest first (fewest statements, then fewest characters, then program_id: shorter
correct programs are easier to learn and less likely to be right by accident); the selection
(:func:`~.choose.choose`) runs in SQL.

Memory stays within the store's budget at any size: the scratch database (in a folder beside
the store, where it spills) has half of it while the store is open, all of it after; every
statement there has at most one join, with the narrow side hashed, so each spills on its own.
The store appends the snapshot by attaching the file (:func:`~.snapshots.append_snapshot`).
"""

from __future__ import annotations

import duckdb

from pad_data.stages.curate.candidates import SCAN_ROWS, candidates_query, nothing_selected, ranged
from pad_data.stages.curate.choose import choose
from pad_data.stages.curate.dedup import TOO_DEEP, analyze_into
from pad_data.stages.curate.params import CurateParams
from pad_data.stages.curate.snapshots import HASHED, TASK_COLUMNS, append_snapshot, content_hash
from pad_data.stages.curate.split import copy_questions
from pad_data.store import Store, copy_into, scratch_db

CANDIDATE_COLUMNS = ("program_id, problem_id, label, program, dataset, gold AS answer, "
                     "gold_text AS answer_text, gold_source, agreement, teacher, origin, v.verdict, preamble_id")


def curate_programs(store: Store, name: str, p: CurateParams) -> dict:
    """Create program snapshot ``name`` for ``p`` (checked); returns its counts and hash."""
    with scratch_db(store, "curate") as (scratch, path):
        _copy_candidates(store, scratch, p)
        store.release()  # deduplication takes a while: other processes may use the store meanwhile
        scratch.execute(f"SET memory_limit = '{store.share(1)}'")
        _rank(scratch, p, store.memory)
        choose(scratch, "ranked", "q", p, "program_id")
        removed = _removed(scratch, p)
        _assemble(scratch)
        counts = _counts(scratch)
        if not counts["programs"]:
            raise nothing_selected(store, p)
        hashed = scratch.cursor().sql(f"SELECT {', '.join(HASHED['program'])} FROM snap")
        digest = content_hash(p, hashed.to_arrow_reader(SCAN_ROWS))
        scratch.close()
        return append_snapshot(store, name, p, digest, counts, path) | {"removed": removed}


def _copy_candidates(store: Store, scratch: duckdb.DuckDBPyConnection, p: CurateParams) -> None:
    """Tables ``cand`` (the candidates) and ``q`` (every problem of the candidates' datasets, as
    the split rule reads them: :func:`~.split.copy_questions`; the snapshot's join keeps those it needs)."""
    query, params = candidates_query(p, CANDIDATE_COLUMNS)
    for i, reader in enumerate(ranged(store, query, params)):
        copy_into(scratch, "cand", reader, append=i > 0)
    copy_questions(store, scratch, p)


def _rank(scratch: duckdb.DuckDBPyConnection, p: CurateParams, memory: int) -> None:
    """Tables ``info`` (each candidate's dedup key and size, analyzed within ``memory``) and
    ``ranked`` (the candidates as :func:`~.choose.choose` reads them, shortest first)."""
    analyze_into(scratch, "info", "SELECT program_id, program FROM cand", p.dedup, ("program_id", "_key", "_order"),
                 memory)
    scratch.execute("""CREATE TABLE ranked AS SELECT program_id, problem_id, _key, _order
                       FROM cand JOIN info USING (program_id)""")


def _removed(scratch: duckdb.DuckDBPyConnection, p: CurateParams) -> dict:
    """The candidates deduplication left out, and then the per-problem cap (after :func:`~.choose.choose`)."""
    def n(table: str) -> int:
        return scratch.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    candidates, chosen = n("ranked"), n("chosen")
    kept = n("kept") if p.dedup != "none" else candidates
    return {"dedup": candidates - kept, "max_per_problem": kept - chosen}


def _assemble(scratch: duckdb.DuckDBPyConnection) -> None:
    """Table ``snap``: the ``chosen`` candidates with their questions, in the snapshot's columns
    (:data:`~.snapshots.TASK_COLUMNS`) and stored order (split, program_id)."""
    columns = ", ".join(c if c != "question" else "q.question" for c in TASK_COLUMNS["program"])
    scratch.execute("""CREATE TABLE rows AS SELECT cand.*, chosen.split FROM cand JOIN chosen
                       USING (program_id, problem_id)""")
    scratch.execute(f"CREATE TABLE asked AS SELECT {columns} FROM rows JOIN q USING (problem_id)")
    scratch.execute("DROP TABLE rows")
    scratch.execute("SET preserve_insertion_order = true")  # snap's order is the snapshot's
    scratch.execute("CREATE TABLE snap AS SELECT * FROM asked ORDER BY split, program_id")
    scratch.execute("DROP TABLE asked")


def _counts(scratch: duckdb.DuckDBPyConnection) -> dict:
    """What ``snap`` holds: rows per split and label, problems, programs, and ``too_deep`` (when
    any): candidates too deeply nested to analyze (kept by :func:`~.dedup.analyze`'s rule)."""
    def by(col: str) -> dict:
        return dict(scratch.execute(f"SELECT {col}, count(*) FROM snap GROUP BY 1 ORDER BY 1").fetchall())
    problems, programs = scratch.execute("SELECT count(DISTINCT problem_id), count(*) FROM snap").fetchall()[0]
    counts = {"splits": by("split"), "problems": problems, "programs": programs, "labels": by("label")}
    deep = scratch.execute(f"SELECT count(*) FROM info WHERE _order >= {TOO_DEEP * 10**9}").fetchall()[0][0]
    return counts | ({"too_deep": deep} if deep else {})
