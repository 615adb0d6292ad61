"""Data access for the review app (:mod:`pad_data.review.app`): paginated reads, verdicts, fixes.

Every call opens a short-lived connection, so the app never holds the store: reads use a
read-only connection, writes a read-write one inside a transaction. While another ``pad``
command commits, DuckDB's file lock refuses the connection; the open waits and retries (a
running stage holds the store only while it commits, see :mod:`pad_data.store.writer`), and only
a store held for longer than ``$PAD_BUSY_TIMEOUT`` makes these functions raise
:class:`~pad_data.store.StoreError` ("the store is busy"), which the app shows instead of
crashing. Nothing here loads a whole table: lists are paginated in SQL (the page's ids by a
top-N over the order programs were stored, then a lookup of those few by id), label counts
read ``program_labels`` (one row per executed program) rather than the joined view, and
verdicts, one or a whole filter's worth, are stored set-based by :meth:`Store.add_verdicts`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd

from pad_data.stages.results import result_row, results_frame
from pad_data.sandbox.pool import SandboxPool, execute_programs
from pad_data.rules.options import memory_limit
from pad_data.store import Store, connect, program_id
from pad_data.store.sqltools import any_of, read_only_statements

VERDICTS = ("accept", "reject", "needs-fix")
UNREVIEWED = "(none)"  # the verdict filter's value for programs no reviewer has judged
FILTER_COLUMNS = ("dataset", "label", "error_type", "origin", "teacher")


@contextlib.contextmanager
def reading(path: str, memory: str | int | None = None) -> Iterator[Store]:
    """The store read-only; ``memory``: its budget (:func:`pad_data.rules.options.memory_limit`:
    None is ``$PAD_MEMORY_LIMIT``, which ``pad review --memory-limit`` sets for the app, or half the RAM)."""
    with Store(path, read_only=True, memory=memory) as store:
        yield store


@contextlib.contextmanager
def writing(path: str, memory: str | int | None = None) -> Iterator[Store]:
    """The store to write, within ``memory`` (as :func:`reading`)."""
    with Store(path, memory=memory) as store:
        yield store


def store_token(path: str) -> tuple:
    """What changes whenever the store does (size and modification time of the file and its
    write-ahead log), read without opening it: the key the app's caches are kept under."""
    out = []
    for f in (Path(path), Path(f"{path}.wal")):
        try:
            st = f.stat()
            out += [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out += [None, None]
    return tuple(out)


@dataclass
class Filters:
    dataset: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    error_type: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    teacher: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)  # VERDICTS and/or UNREVIEWED
    text: str = ""
    unreviewed_by: str | None = None  # a reviewer's queue: programs without a current verdict of theirs
    pattern: str | None = None  # a failure pattern's key (see PATTERNS), with pattern_by
    pattern_by: str = "message"
    conflicts: bool = False  # programs whose reviewers' current verdicts differ

    def listing(self, rows: tuple[int, int] | None = None, question_hits: str | None = None) -> tuple[str, list]:
        """``SELECT program_id, problem_id, pos FROM programs WHERE ...`` for the programs these
        filters match, ``pos`` giving the list's order (the order programs were stored: a
        problem's samples together). Filters on labels are a semi-join on ``program_labels``
        (which also carries dataset, origin and teacher), the others on small sides (the
        problems of a dataset, programs with a verdict, problems whose question matches).
        ``rows``: only ``programs``' rows first..last (DuckDB skips the row groups outside);
        ``question_hits``: a table of the ``problem_id`` whose question has the text, read
        instead of searching the questions again (:func:`search_positions`)."""
        clauses, params = [], []
        if rows is not None:
            clauses.append(f"rowid BETWEEN {int(rows[0])} AND {int(rows[1])}")

        def add(clause: str, values: list) -> None:
            clauses.append(clause)
            params.extend(values)

        if self.label or self.error_type:
            where, values = self._label_where()
            add(f"program_id IN (SELECT program_id FROM program_labels WHERE {where})", values)
        else:
            for col in ("origin", "teacher"):
                if getattr(self, col):
                    add(*any_of(col, getattr(self, col)))
            if self.dataset:
                c, v = any_of("dataset", self.dataset)
                add(f"problem_id IN (SELECT problem_id FROM problems WHERE {c})", v)
        if self.verdict:
            judged = [v for v in self.verdict if v != UNREVIEWED]
            either = []
            if judged:
                c, v = any_of("verdict", judged)
                either.append(f"program_id IN (SELECT program_id FROM program_verdicts WHERE {c})")
                params.extend(v)
            if UNREVIEWED in self.verdict:
                either.append("program_id NOT IN (SELECT program_id FROM current_reviews)")
            clauses.append("(" + " OR ".join(either) + ")")
        if self.unreviewed_by is not None:
            add("program_id NOT IN (SELECT program_id FROM current_reviews WHERE reviewer = ?)", [self.unreviewed_by])
        if self.conflicts:
            clauses.append(f"program_id IN ({CONFLICTS})")
        if self.pattern is not None:
            add(f"program_id IN (SELECT program_id FROM ({pattern_rows(self.pattern_by)}) WHERE pattern = ?)",
                [self.pattern])
        text = self.text.strip()
        if text:
            question, q_params = contains_text("question", text)
            program, p_params = contains_text("program", text)
            if question_hits is not None:
                question, q_params = f"problem_id IN (SELECT problem_id FROM {question_hits})", []
            else:
                question = f"problem_id IN (SELECT problem_id FROM problems WHERE {question})"
            add(f"({question} OR {program})", q_params + p_params)
        return (f"SELECT program_id, problem_id, rowid AS pos FROM programs WHERE {' AND '.join(clauses) or 'TRUE'}",
                params)

    def _label_where(self) -> tuple[str, list]:
        """The filters ``program_labels`` can answer alone (label, error type, dataset, origin, teacher)."""
        clauses, params = [], []
        for col in FILTER_COLUMNS:
            if getattr(self, col):
                c, v = any_of(col, getattr(self, col))
                clauses.append(c)
                params += v
        return " AND ".join(clauses) or "TRUE", params

    def labels_only(self) -> bool:
        """True when ``program_labels`` alone answers these filters (a label or error type asked for)."""
        return bool(self.label or self.error_type) and not (self.verdict or self.text.strip() or self.reviews()
                                                             or self.pattern is not None)

    def reviews(self) -> bool:
        """True when what these filters match changes with verdicts (so a verdict changes the list)."""
        return bool(self.verdict) or self.unreviewed_by is not None or self.conflicts


def contains_text(column: str, text: str) -> tuple[str, list]:
    """``(condition, params)``: ``column`` contains ``text`` literally, ignoring case. Without
    ``%`` or ``_`` in ``text`` that is ``ILIKE '%text%'`` (no escape character: ``\\`` is
    literal); with them ``contains(lower(..), lower(..))``, so they never act as wildcards.
    ``ILIKE ... ESCAPE`` would be one rule for both, but DuckDB runs it several times slower
    (bench/README.md, the review app)."""
    if "%" in text or "_" in text:
        return f"contains(lower({column}), lower(?))", [text]
    return f"{column} ILIKE ?", [f"%{text}%"]


# programs whose reviewers' current verdicts differ
CONFLICTS = "SELECT program_id FROM current_reviews GROUP BY program_id HAVING count(DISTINCT verdict) > 1"

# A failure pattern: the error message with quoted names, numbers and addresses masked ("message"),
# or the failing line with numbers and string literals masked ("line"), so one mistake made in
# many programs is one group.
_MASK_NUMBERS = r"regexp_replace({x}, '(0x[0-9a-fA-F]+|[0-9]+(\.[0-9]+)?)', 'N', 'g')"
_MASK_QUOTED = r"""regexp_replace({x}, '(''[^'']*''|"[^"]*")', '{to}', 'g')"""
PATTERNS = {
    "message": _MASK_NUMBERS.format(x=_MASK_QUOTED.format(x="coalesce(e.error_message, '')", to="''…''")),
    "line": _MASK_NUMBERS.format(x=_MASK_QUOTED.format(
        x="trim(coalesce(string_split(p.program, chr(10))[e.error_line], ''))", to="S")),
}


def pattern_rows(by: str) -> str:
    """``SELECT program_id, error_type, pattern`` for every failing program (executed, not
    correct), its pattern by ``by`` (a key of :data:`PATTERNS`)."""
    if by not in PATTERNS:
        raise ValueError(f"pattern_by must be one of {', '.join(PATTERNS)}")
    programs = "JOIN programs p ON p.program_id = l.program_id " if by == "line" else ""
    return (f"SELECT l.program_id, l.error_type, l.label, coalesce(l.error_type, l.label) || ': ' || {PATTERNS[by]} "
            f"AS pattern FROM program_labels l JOIN executions e USING (seq) {programs}"
            "WHERE l.label NOT IN ('correct', 'unverifiable')")


def overview(store: Store) -> dict[str, pd.DataFrame]:
    """The Overview tab's tables. Programs not executed yet are counted apart (a difference of
    two counts), and broken down by dataset and teacher only when there are any."""
    programs = store.scalar("SELECT count(*) FROM programs")
    executed = store.scalar("SELECT count(*) FROM program_labels")
    pending = ""
    if programs > executed:
        pending = """UNION ALL SELECT pr.dataset, p.teacher, '(not executed)', count(*) FROM programs p
                     JOIN problems pr USING (problem_id) ANTI JOIN program_labels l USING (program_id) GROUP BY ALL"""
    return {
        "labels": store.df("""SELECT label, programs FROM (
                                  SELECT label, count(*) AS programs FROM program_labels GROUP BY 1
                                  UNION ALL SELECT '(not executed)', ?)
                              WHERE programs > 0 ORDER BY 2 DESC, 1""", [programs - executed]),
        "by_dataset": store.df(f"""SELECT dataset, teacher, label, n AS programs FROM (
                                       SELECT dataset, teacher, label, count(*) AS n FROM program_labels GROUP BY ALL
                                       {pending})
                                   ORDER BY 1, 2, 4 DESC, 3"""),
        "error_types": store.df("""
            WITH t AS (SELECT error_type, count(*) AS programs, min(seq) AS seq FROM program_labels
                       WHERE error_type IS NOT NULL GROUP BY 1)
            SELECT t.error_type, t.programs, e.error_message AS example FROM t JOIN executions e USING (seq)
            ORDER BY 2 DESC, 1"""),
        "durations": store.df("""
            SELECT CASE WHEN duration_ms < 0.1 THEN 'a < 0.1 ms' WHEN duration_ms < 1 THEN 'b 0.1-1 ms'
                        WHEN duration_ms < 10 THEN 'c 1-10 ms' WHEN duration_ms < 100 THEN 'd 10-100 ms'
                        WHEN duration_ms < 1000 THEN 'e 0.1-1 s' ELSE 'f >= 1 s' END AS duration,
                   count(*) AS programs
            FROM program_labels WHERE duration_ms IS NOT NULL GROUP BY 1 ORDER BY 1"""),
        "totals": store.df("SELECT (SELECT count(*) FROM problems) AS problems, ? AS programs, "
                           "(SELECT count(*) FROM current_reviews) AS reviews", [programs]),
    }


# where each filter's values are listed: small tables or single columns, never the joined view
CHOICES = {"dataset": "problems", "label": "program_labels", "error_type": "program_labels", "origin": "programs",
           "teacher": "programs"}


def choices(store: Store) -> dict[str, list[str]]:
    """Distinct values for each filter (small: these columns have few values)."""
    out = {}
    for col in FILTER_COLUMNS:
        rows = store.con.execute(f"SELECT DISTINCT {col} FROM {CHOICES[col]} WHERE {col} IS NOT NULL "
                                 f"ORDER BY 1 LIMIT 500").fetchall()
        out[col] = [r[0] for r in rows]
    out["verdict"] = [*VERDICTS, UNREVIEWED]
    return out


def count(store: Store, f: Filters, cap: int | None = None) -> int:
    """How many programs ``f`` matches; with ``cap``, at most ``cap + 1`` are counted (a text
    search then stops reading once it has found that many)."""
    if f.labels_only():
        where, params = f._label_where()
        return store.scalar(f"SELECT count(*) FROM program_labels WHERE {where}", params)
    query, params = f.listing()
    limit = f" LIMIT {int(cap) + 1}" if cap is not None else ""
    return store.scalar(f"SELECT count(*) FROM ({query}{limit})", params)


# server-side sorts: the column a list is ordered by (then the order programs were stored)
SORTS = {"stored": None, "duration": "l.duration_ms", "error type": "l.error_type", "label": "l.label",
         "teacher": "l.teacher", "dataset": "l.dataset", "agreement": "c.agreement"}


def page_positions(store: Store, f: Filters, offset: int = 0, limit: int = 50, sort: str = "stored",
                   descending: bool = False) -> list[tuple[str, int]]:
    """``(program_id, position)`` of rows ``offset``.. of the filtered list, the position being the
    program's row in ``programs`` (what :func:`rows` looks programs up by: a lookup by id scans the
    table). In the stored order the scan stops once it has the page (DuckDB keeps insertion
    order), so a search's first page does not read the whole store; a sort orders every match
    (NULLs last)."""
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    query, params = f.listing()
    if SORTS[sort] is None:
        sql = f"SELECT program_id, pos FROM ({query}) LIMIT {int(limit)} OFFSET {int(offset)}"
        if descending:
            sql = f"SELECT program_id, pos FROM ({query}) ORDER BY pos DESC LIMIT {int(limit)} OFFSET {int(offset)}"
    else:
        sql = (f"SELECT q.program_id, q.pos FROM ({query}) q LEFT JOIN program_labels l USING (program_id) "
               f"LEFT JOIN consensus c ON c.problem_id = q.problem_id "
               f"ORDER BY {SORTS[sort]} {'DESC' if descending else 'ASC'} NULLS LAST, q.pos "
               f"LIMIT {int(limit)} OFFSET {int(offset)}")
    return [(r[0], r[1]) for r in store.con.execute(sql, params).fetchall()]


def search_positions(store: Store, f: Filters, limit: int, start: int = 0, budget_s: float | None = None,
                     chunk: int = 1 << 18) -> tuple[list[tuple[str, int]], int | None]:
    """A text search's first ``limit`` matches (``(program_id, position)``, as
    :func:`page_positions`) in the stored order, from row ``start`` of ``programs``: the
    questions are searched once, then the programs a range of rows at a time (from ``chunk``
    rows, doubling), so a word found nowhere can stop once ``budget_s`` seconds are spent instead
    of reading every program (a range is sized to fit what is left of it). Returns the matches
    and the first row not read (None: read to the end, or ``limit`` found)."""
    question, params = contains_text("question", f.text.strip())
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE _pad_question_hits AS SELECT problem_id FROM problems "
                      f"WHERE {question}", params)
    last = store.scalar("SELECT max(rowid) FROM programs")
    found: list[tuple[str, int]] = []
    row, started = int(start), time.perf_counter()
    while last is not None and row <= last and len(found) < limit:
        query, params = f.listing(rows=(row, row + chunk - 1), question_hits="_pad_question_hits")
        found += [(r[0], r[1]) for r in store.con.execute(
            f"SELECT program_id, pos FROM ({query}) LIMIT {int(limit) - len(found)}", params).fetchall()]
        row, chunk, spent = row + chunk, min(chunk * 2, 1 << 22), time.perf_counter() - started
        if budget_s is not None:
            if spent >= budget_s:
                break
            # the next range sized to what is left of the budget, at the pace read so far
            chunk = max(1 << 12, min(chunk, int((row - start) / max(spent, 1e-3) * (budget_s - spent))))
    return found, (row if last is not None and row <= last and len(found) < limit else None)


def page_ids(store: Store, f: Filters, offset: int = 0, limit: int = 50, sort: str = "stored",
             descending: bool = False) -> list[str]:
    """The ids of :func:`page_positions`."""
    return [pid for pid, _ in page_positions(store, f, offset, limit, sort, descending)]


def page(store: Store, f: Filters, offset: int, limit: int = 50, sort: str = "stored",
         descending: bool = False) -> pd.DataFrame:
    """Rows ``offset``.. of the filtered list (:func:`page_positions`), with what the table shows."""
    found = page_positions(store, f, offset, limit, sort, descending)
    return rows(store, [pid for pid, _ in found], positions=[pos for _, pos in found])


# How far apart a program's row in ``programs`` and its row in ``program_labels`` usually lie:
# programs are executed about in the order they were stored, and their labels written as they
# finish, so a page's labels sit in the few row groups within this window of its rows
# (bench/README.md, the review app).
NEAR_ROWS = 250_000


# More ranges than this in one condition and DuckDB tests them row by row (200: 0.8 s on 4M rows)
MAX_RANGES = 16


def _ranges(centers: list[int], radius: int, gap: int = 0) -> list[list[int]]:
    """The ranges within ``radius`` of ``centers``, those less than ``gap`` apart made one."""
    ranges: list[list[int]] = []
    for c in sorted(int(x) for x in centers):
        if ranges and c - radius <= ranges[-1][1] + gap:
            ranges[-1][1] = c + radius
        else:
            ranges.append([c - radius, c + radius])
    return ranges


def _within(column: str, centers: list[int], radius: int, gap: int = 0) -> str:
    """``column`` within ``radius`` of any of ``centers`` (:func:`_ranges`), as the few ranges
    DuckDB prunes row groups by."""
    return "(" + " OR ".join(f"{column} BETWEEN {lo} AND {hi}" for lo, hi in _ranges(centers, radius, gap)) + ")"


_SHOWN_LABELS = "program_id, label, error_type, duration_ms, seq"


def _labels_near(positions: list[int]) -> str:
    """``program_labels``' rows within :data:`NEAR_ROWS` rows of ``positions`` (rows of the
    programs in ``programs``), where their labels usually are: ``WHERE`` them and the ids
    ``$ids``; the caller looks up by id (reading all of ``program_labels``) only those not
    found there (executed far apart, or not at all)."""
    return (f"SELECT {_SHOWN_LABELS} FROM program_labels WHERE {_within('rowid', positions, NEAR_ROWS)} "
            "AND program_id = ANY($ids)")


def rows(store: Store, ids: list[str], verdicts: bool = True, positions: list[int] | None = None) -> pd.DataFrame:
    """What the list shows of the programs ``ids``, in that order, and each one's execution
    ``seq`` (what :func:`program_detail` finds its labels near); ``verdicts`` False leaves the
    verdict column empty (for a caller that reads it apart, with :func:`verdicts_of`, as it
    changes more often than the rest). Each table is read where DuckDB can prune, never whole:
    ``programs`` at ``positions`` (their rows there, when given), ``problems`` by the page's
    problem ids, ``program_labels`` near the programs' rows (:func:`_labels_near`)."""
    if not ids:
        return store.df("SELECT NULL::VARCHAR AS program_id, NULL::VARCHAR AS dataset, NULL::VARCHAR AS label, "
                        "NULL::VARCHAR AS error_type, NULL::VARCHAR AS verdict, NULL::VARCHAR AS origin, "
                        "NULL::VARCHAR AS teacher, NULL::DOUBLE AS duration_ms, NULL::VARCHAR AS question, "
                        "NULL::BIGINT AS seq LIMIT 0")
    where = "program_id = ANY($ids)" if positions is None else "rowid = ANY($positions) AND program_id = ANY($ids)"
    params = {"ids": list(ids), **({} if positions is None else {"positions": list(positions)})}
    shown = f"""SELECT program_id, problem_id, origin, teacher FROM programs WHERE {where}
                QUALIFY row_number() OVER (PARTITION BY program_id) = 1"""  # one row per id shown
    problems = sorted({r[0] for r in store.con.execute(f"SELECT problem_id FROM ({shown})", params).fetchall()})
    labels, label_params = f"SELECT {_SHOWN_LABELS} FROM program_labels WHERE program_id = ANY($ids)", {}
    if positions and len(_ranges(positions, NEAR_ROWS)) <= MAX_RANGES:
        labels = _labels_near(positions)
        found = {r[0] for r in store.con.execute(f"SELECT program_id FROM ({labels})", {"ids": list(ids)}).fetchall()}
        if set(ids) - found:
            labels += f" UNION ALL SELECT {_SHOWN_LABELS} FROM program_labels WHERE program_id = ANY($far_ids)"
            label_params = {"far_ids": sorted(set(ids) - found)}
    return store.df(f"""
        WITH p AS ({shown})
        SELECT p.program_id, pr.dataset, l.label, l.error_type, v.verdict, p.origin, p.teacher,
               round(l.duration_ms, 2) AS duration_ms, left(pr.question, 120) AS question, l.seq
        FROM p JOIN (SELECT problem_id, dataset, question FROM problems WHERE problem_id = ANY($problems)) pr
            USING (problem_id)
        LEFT JOIN ({labels}) l USING (program_id)
        LEFT JOIN (SELECT program_id, verdict FROM program_verdicts WHERE program_id = ANY($verdict_ids)) v
            USING (program_id)
        ORDER BY list_position($ids, p.program_id)""",
                    {**params, **label_params, "problems": problems, "verdict_ids": list(ids) if verdicts else []})


def verdicts_of(store: Store, ids: list[str]) -> dict[str, str]:
    """The verdict (``program_verdicts``) of each of ``ids`` that has one."""
    return dict(store.con.execute("SELECT program_id, verdict FROM program_verdicts WHERE program_id = ANY(?)",
                                  [list(ids)]).fetchall())


def review_state(store: Store, ids: list[str], pid: str | None) -> tuple[dict[str, str], dict]:
    """What a verdict changes on screen: the verdicts of ``ids`` (a page), and the verdict and
    reviews of ``pid`` (the open program, :func:`program_reviews`; {} for None)."""
    return verdicts_of(store, ids), (program_reviews(store, pid) if pid else {})


def add_verdicts(path: str, verdict: str, note: str | None, reviewer: str | None,
                 filters: Filters | None = None, program_ids: list[str] | None = None,
                 memory: str | int | None = None, batch: str | None = None,
                 positions: list[int] | None = None) -> int:
    """Give ``verdict`` (and ``note``) of ``reviewer`` to every program ``filters`` match, or
    to ``program_ids`` (each must exist; ``positions``: their rows in ``programs``, as
    :func:`page_positions` gives them, found without scanning for the ids), in one
    transaction, within ``memory`` (as :func:`reading`); returns how many programs. The
    history keeps every verdict, under ``batch`` (:func:`new_batch`; what :func:`undo` takes
    back) or a new batch id; each reviewer has one current verdict per program."""
    with writing(path, memory) as st, st.transaction():
        return judge(st, verdict, note, reviewer, filters, program_ids, batch, positions)


def judge(st: Store, verdict: str, note: str | None, reviewer: str | None, filters: Filters | None = None,
          program_ids: list[str] | None = None, batch: str | None = None, positions: list[int] | None = None) -> int:
    """:func:`add_verdicts` on a store open to write, in the caller's transaction (a caller that
    reads afterwards, :func:`review_state`, needs no second connection)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    if (filters is None) == (program_ids is None):
        raise ValueError("give filters or program_ids")
    if program_ids is None:
        query, params = filters.listing()
        return st.add_verdicts(query, params, verdict, note or None, reviewer or None, batch=batch)
    ids = list(dict.fromkeys(program_ids))
    # the programs found are the ones judged: one scan checks and selects (raising rolls back)
    select, params = "SELECT program_id FROM programs WHERE program_id = ANY(?)", [ids]
    if positions is not None:
        by_row = ("SELECT program_id FROM programs WHERE rowid = ANY(?::BIGINT[]) AND program_id = ANY(?)",
                  [list(positions), ids])
        if st.con.execute(f"SELECT count(DISTINCT program_id) FROM ({by_row[0]})", by_row[1]).fetchall()[0][0] \
                == len(ids):  # else a row moved: found by id
            select, params = by_row
    n = st.add_verdicts(select, params, verdict, note or None, reviewer or None, batch=batch)
    if n < len(ids):
        missing = st.con.execute("SELECT id FROM unnest(?::VARCHAR[]) t(id) ANTI JOIN programs p "
                                 "ON p.program_id = t.id LIMIT 1", [ids]).fetchall()
        raise ValueError(f"no program {missing[0][0]}")
    return n


def new_batch() -> str:
    """A batch id for :func:`add_verdicts`, kept by the caller to :func:`undo` the batch."""
    return uuid.uuid4().hex[:16]


def undo(path: str, batch: str, memory: str | int | None = None) -> int:
    """Take back the verdicts of ``batch`` (one verdict, or a whole bulk verdict): each program
    gets back its reviewer's verdict from before, or none; the history keeps the batch's rows,
    marked ``undone_at``. Returns how many programs."""
    with writing(path, memory) as st, st.transaction():
        return st.undo_verdicts(batch)


def program_detail(store: Store, pid: str, reviews: bool = True, position: int | None = None,
                   seq: int | None = None) -> dict | None:
    """Everything the app shows of one program; ``reviews`` False leaves out its verdict and
    reviews (:func:`program_reviews`), which change more often than the rest. ``position``: its
    row in ``programs`` (:func:`page_positions`), read instead of scanning for the id; ``seq``:
    its execution's (:func:`rows`), so its problem's labels are read near it (:func:`problem_family`).
    The program, its siblings, its parent (an injected or fixed program's is of the same problem)
    and a correct sibling come from one read of its problem's programs."""
    where, params = ("rowid = ? AND program_id = ?", [position, pid]) if position is not None else \
        ("program_id = ?", [pid])
    found = store.con.execute(f"SELECT problem_id, completion, parent_program_id FROM programs WHERE {where} "
                              "LIMIT 1", params).fetchall()
    if not found:
        return None
    problem, completion, parent = found[0]
    family = problem_family(store, problem, seq)
    if not (family.program_id == pid).any():
        return None
    programs = dict(zip(family.program_id, family.program))
    d = family[family.program_id == pid].iloc[0].to_dict()
    d.update(completion=completion, parent=parent)
    d["siblings"] = family[["program_id", "teacher", "origin", "sample_idx", "label", "error_type", "value"]] \
        .reset_index(drop=True)
    if reviews:
        d.update(program_reviews(store, pid))
    d["parent_program"] = None
    if parent:
        d["parent_program"] = programs.get(parent) or store.scalar("SELECT program FROM programs WHERE program_id = ?",
                                                                   [parent])
    d["correct_sibling"] = None  # a correct program for the same problem, to show beside a faulty one
    if d["label"] != "correct":
        correct = family[(family.label == "correct") & (family.program_id != pid)]
        if len(correct):
            d["correct_sibling"] = {"program_id": correct.iloc[0].program_id, "program": correct.iloc[0].program}
    return d


# How far apart (in executions.seq) a problem's programs' current executions usually lie: they
# are executed together, so their program_labels rows sit in the few row groups whose seq
# zonemaps overlap this window around one of them (bench/README.md, the review app).
NEAR_SEQ = 250_000


def problem_family(store: Store, problem: str, seq: int | None = None) -> pd.DataFrame:
    """``labeled_programs`` rows of every program of ``problem``, by teacher and sample. The
    programs come from ``programs``' problem index; ``program_labels`` has none, so their labels
    are read where DuckDB can prune: executions within :data:`NEAR_SEQ` of ``seq`` (one of
    theirs), then, for programs executed apart from it (an injected variant, a fix), their
    labels near their own rows (:func:`_labels_near`). Only programs found in neither (executed
    far apart, or not at all) are looked up by id, which reads all of ``program_labels``; so is
    every program without ``seq``."""
    order = "ORDER BY teacher, sample_idx, program_id"
    if seq is None:
        return store.df(f"SELECT * FROM labeled_programs WHERE problem_id = ? {order}", [problem])
    near = [int(seq) - NEAR_SEQ, int(seq) + NEAR_SEQ]
    found = {r[0] for r in store.con.execute("SELECT program_id FROM program_labels WHERE problem_id = ? AND seq "
                                             "BETWEEN ? AND ?", [problem, *near]).fetchall()}
    rows_of = dict(store.con.execute("SELECT program_id, rowid FROM programs WHERE problem_id = ?",
                                     [problem]).fetchall())
    apart = sorted(set(rows_of) - found)  # executed apart from it (an injected variant, a fix), or not at all
    where = f"execution_seq BETWEEN {near[0]} AND {near[1]}"
    if apart and len(_ranges([rows_of[i] for i in apart], NEAR_ROWS)) <= MAX_RANGES:
        seqs = dict(store.con.execute(f"SELECT program_id, seq FROM ({_labels_near([rows_of[i] for i in apart])})",
                                      {"ids": apart}).fetchall())
        if len(_ranges(list(seqs.values()), 0, NEAR_SEQ)) > MAX_RANGES:
            seqs = {}  # executed all over: one lookup by id costs less
        if seqs:
            where = f"({where} OR {_within('execution_seq', list(seqs.values()), 0, NEAR_SEQ)})"
        apart = sorted(set(apart) - set(seqs))
    query = f"SELECT * FROM labeled_programs WHERE problem_id = ? AND {where}"
    params = [problem]
    if apart:  # not executed: their rows have no label to be near
        query += " UNION ALL SELECT * FROM labeled_programs WHERE problem_id = ? AND program_id = ANY(?)"
        params += [problem, apart]
    return store.df(f"SELECT * FROM ({query}) {order}", params)


def program_reviews(store: Store, pid: str) -> dict:
    """``{"verdict": ..., "reviews": DataFrame}`` of one program: its verdict now and its history
    (undone verdicts too, with when they were undone)."""
    return {"verdict": store.scalar("SELECT verdict FROM program_verdicts WHERE program_id = ?", [pid]),
            "reviews": store.df("SELECT r.verdict, r.note, r.reviewer, r.reviewed_at, "
                                "c.review_id IS NOT NULL AS current, r.undone_at FROM reviews r "
                                "LEFT JOIN current_reviews c "
                                "USING (review_id) WHERE r.program_id = ? "
                                "ORDER BY r.reviewed_at DESC, r.rowid DESC", [pid])}


def diff(before: str, after: str, names: tuple[str, str] = ("parent", "this")) -> str:
    """A unified diff of two programs' lines. Lines are compared without their line ends, so a
    last line with a newline and the same line without one are equal (a program rebuilt from
    its AST ends in a newline its parent may lack)."""
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), *names, lineterm=""))


def fold(lines: int, focus: int | None, head: int = 8, context: int = 12, whole: int = 120) -> list[tuple[int, int]]:
    """The 1-based line ranges ``(first, last)`` to show of a program of ``lines`` lines: all of
    it up to ``whole`` lines; else its first ``head`` lines and ``context`` lines each side of
    ``focus`` (the failing line), or the first ``whole`` lines when there is none. The lines
    between ranges are folded."""
    if lines <= whole:
        return [(1, lines)] if lines else []
    if not focus or not 1 <= focus <= lines:
        return [(1, whole)]
    lo, hi = max(1, focus - context), min(lines, focus + context)
    return [(1, hi)] if lo <= head + 1 else [(1, head), (lo, hi)]


def patterns(store: Store, f: Filters, by: str = "message", limit: int = 200) -> pd.DataFrame:
    """Failing programs ``f`` matches, grouped by their pattern (:data:`PATTERNS`): pattern,
    error type, label, programs, an example program id; the largest groups first."""
    query, params = f.listing()
    return store.df(f"""
        SELECT g.pattern, any_value(g.error_type) AS error_type, any_value(g.label) AS label,
               count(DISTINCT g.program_id) AS programs, min(g.program_id) AS example
        FROM ({pattern_rows(by)}) g SEMI JOIN ({query}) q USING (program_id)
        GROUP BY g.pattern ORDER BY programs DESC, g.pattern LIMIT {int(limit)}""", params)


def reviewer_counts(store: Store) -> pd.DataFrame:
    """Per reviewer: current verdicts of each kind, and programs where another reviewer differs."""
    return store.df(f"""
        SELECT nullif(reviewer, '') AS reviewer, count(*) AS programs,
               count(*) FILTER (verdict = 'accept') AS accept, count(*) FILTER (verdict = 'reject') AS reject,
               count(*) FILTER (verdict = 'needs-fix') AS "needs-fix",
               count(*) FILTER (program_id IN ({CONFLICTS})) AS conflicts
        FROM current_reviews GROUP BY reviewer ORDER BY programs DESC, reviewer""")


def conflicts(store: Store, limit: int = 200) -> pd.DataFrame:
    """Programs whose reviewers' current verdicts differ, with each reviewer's verdict."""
    return store.df(f"""
        SELECT program_id, string_agg(coalesce(nullif(reviewer, ''), '(none)') || ': ' || verdict, ', '
                                      ORDER BY reviewer) AS verdicts, max(reviewed_at) AS latest
        FROM current_reviews WHERE program_id IN ({CONFLICTS})
        GROUP BY program_id ORDER BY latest DESC, program_id LIMIT {int(limit)}""")


def add_review(path: str, pid: str, verdict: str, note: str | None, reviewer: str | None,
               memory: str | int | None = None) -> int:
    """One program's verdict (see :func:`add_verdicts`)."""
    return add_verdicts(path, verdict, note, reviewer, program_ids=[pid], memory=memory)


def try_program(source: str, timeout: float = 2.0, memory_mb: int = 512):
    """Run an edited program in the sandbox without storing it."""
    return execute_programs([source], timeout=timeout, memory_mb=memory_mb, workers=1)[0]


def save_fix(path: str, parent_id: str, source: str, reviewer: str, timeout: float = 2.0,
             memory_mb: int = 512, memory: str | int | None = None) -> dict:
    """Store an edited program (origin ``human``, linked to its parent) with its own execution;
    ``memory``: the store's budget (as :func:`reading`)."""
    with writing(path, memory) as st:
        parent = st.df("SELECT p.problem_id, pr.answer, pr.answer_text, pr.choice FROM programs p "
                       "JOIN problems pr USING (problem_id) WHERE program_id = ?", [parent_id])
        if parent.empty:
            raise ValueError(f"no program {parent_id}")
        problem, gold, gold_text, choice = parent.iloc[0]
        gold = None if pd.isna(gold) else float(gold)
        st.release()  # not held while the program runs
        new_id = program_id(problem, source, reviewer or "human", 0, "human")
        with SandboxPool(workers=1, timeout=timeout, memory_mb=memory_mb) as pool:
            (_, res), = list(pool.map([(new_id, source)]))
            executor = pool.executor_version
        row = result_row(new_id, res, gold, gold_text, timeout, memory_mb, executor, pd.Timestamp.now(),
                         gold_choice=choice)
        with st.transaction():
            added = st.insert_new("programs", pd.DataFrame([{
                "program_id": new_id, "problem_id": problem, "origin": "human", "teacher": reviewer or "human",
                "sample_idx": 0, "program": source, "completion": source, "parent_program_id": parent_id}]),
                "program_id")
            if added:
                st.add_executions(results_frame([row]))
    return {"program_id": new_id, "label": row["label"], "added": bool(added), "result": res}


def run_sql(path: str, query: str, limit: int = 1000, memory: str | int | None = None) -> pd.DataFrame:
    """A read-only query for the SQL tab: one SELECT (WITH, VALUES, FROM-first...) as DuckDB's
    parser classifies it, with no file access, at most ``limit`` rows, within ``memory`` (as
    :func:`reading`). Anything else is a ValueError "only SELECT is allowed"."""
    con = connect(path, read_only=True, config={"enable_external_access": False,
                                                "memory_limit": f"{memory_limit(memory)}B"})
    try:
        statements = read_only_statements(con, query, one_select=True)
        return con.execute(f"SELECT * FROM ({statements[0].query.strip().rstrip(';')}) LIMIT {int(limit)}").df()
    finally:
        con.close()


def views_path(path: str) -> Path:
    """Where the review app keeps named views of the store at ``path``: a JSON object beside it."""
    return Path(f"{path}.views.json")


def load_views(path: str) -> dict[str, str]:
    """The named views of the store at ``path``: name -> query string (filters, sort, tab)."""
    f = views_path(path)
    if not f.exists():
        return {}
    try:
        views = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{f}: not a views file ({exc})") from None
    if not isinstance(views, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in views.items()):
        raise ValueError(f"{f}: not a views file (an object of name: query string)")
    return views


def save_view(path: str, name: str, query: str) -> None:
    """Keep ``query`` (a query string, without ``?``) as the view ``name`` (replacing one of that
    name); the file is replaced whole, so a reader never sees half of it."""
    if not name.strip():
        raise ValueError("a view needs a name")
    views = load_views(path)
    views[name] = query
    f = views_path(path)
    tmp = f.with_name(f".{f.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(views, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, f)
