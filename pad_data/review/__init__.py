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

    def listing(self) -> tuple[str, list]:
        """``SELECT program_id, problem_id, pos FROM programs WHERE ...`` for the programs these
        filters match, ``pos`` giving the list's order (the order programs were stored: a
        problem's samples together). Filters on labels are a semi-join on ``program_labels``
        (which also carries dataset, origin and teacher), the others on small sides (the
        problems of a dataset, programs with a verdict, problems whose question matches)."""
        clauses, params = [], []

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
        text = self.text.strip()
        if text:
            add("(problem_id IN (SELECT problem_id FROM problems WHERE question ILIKE ?) OR program ILIKE ?)",
                [f"%{text}%"] * 2)
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
        return bool(self.label or self.error_type) and not self.verdict and not self.text.strip()


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


def count(store: Store, f: Filters) -> int:
    if f.labels_only():
        where, params = f._label_where()
        return store.scalar(f"SELECT count(*) FROM program_labels WHERE {where}", params)
    query, params = f.listing()
    return store.scalar(f"SELECT count(*) FROM ({query})", params)


def page(store: Store, f: Filters, offset: int, limit: int = 50) -> pd.DataFrame:
    """Rows ``offset``.. of the filtered list: their ids first (one top-N over the list's
    order), then what is shown of those few, looked up by id."""
    query, params = f.listing()
    rows = store.con.execute(f"SELECT program_id, problem_id FROM ({query}) ORDER BY pos "
                             f"LIMIT {int(limit)} OFFSET {int(offset)}", params).fetchall()
    ids = [r[0] for r in rows]
    if not ids:
        return store.df("SELECT NULL::VARCHAR AS program_id, NULL::VARCHAR AS dataset, NULL::VARCHAR AS label, "
                        "NULL::VARCHAR AS error_type, NULL::VARCHAR AS verdict, NULL::VARCHAR AS origin, "
                        "NULL::VARCHAR AS teacher, NULL::VARCHAR AS question LIMIT 0")
    # each table filtered by the page's ids before the joins ($ids: the page's order)
    return store.df("""
        WITH p AS (SELECT program_id, problem_id, origin, teacher FROM programs WHERE program_id = ANY($ids))
        SELECT p.program_id, pr.dataset, l.label, l.error_type, v.verdict, p.origin, p.teacher,
               left(pr.question, 120) AS question
        FROM p JOIN (SELECT problem_id, dataset, question FROM problems WHERE problem_id = ANY($problems)) pr
            USING (problem_id)
        LEFT JOIN (SELECT program_id, label, error_type FROM program_labels WHERE program_id = ANY($ids)) l
            USING (program_id)
        LEFT JOIN (SELECT program_id, verdict FROM program_verdicts WHERE program_id = ANY($ids)) v
            USING (program_id)
        ORDER BY list_position($ids, p.program_id)""", {"ids": ids, "problems": sorted({r[1] for r in rows})})


def add_verdicts(path: str, verdict: str, note: str | None, reviewer: str | None,
                 filters: Filters | None = None, program_ids: list[str] | None = None,
                 memory: str | int | None = None) -> int:
    """Give ``verdict`` (and ``note``) of ``reviewer`` to every program ``filters`` match, or
    to ``program_ids`` (each must exist), in one transaction, within ``memory`` (as
    :func:`reading`); returns how many programs. The history keeps every verdict; each reviewer
    has one current verdict per program."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    if (filters is None) == (program_ids is None):
        raise ValueError("give filters or program_ids")
    with writing(path, memory) as st, st.transaction():
        if program_ids is not None:
            ids = list(dict.fromkeys(program_ids))
            missing = st.con.execute("SELECT id FROM unnest(?::VARCHAR[]) t(id) ANTI JOIN programs p "
                                     "ON p.program_id = t.id LIMIT 1", [ids]).fetchall()
            if missing:
                raise ValueError(f"no program {missing[0][0]}")
            query, params = "SELECT unnest(?::VARCHAR[]) AS program_id", [ids]
        else:
            query, params = filters.listing()
        return st.add_verdicts(query, params, verdict, note or None, reviewer or None)


def program_detail(store: Store, pid: str) -> dict | None:
    rows = store.df("SELECT lp.*, p.completion, p.parent_program_id AS parent FROM labeled_programs lp "
                    "JOIN programs p USING (program_id) WHERE program_id = ?", [pid])
    if rows.empty:
        return None
    d = rows.iloc[0].to_dict()
    d["siblings"] = store.df("SELECT program_id, teacher, origin, sample_idx, label, error_type, value "
                             "FROM labeled_programs WHERE problem_id = ? ORDER BY teacher, sample_idx",
                             [d["problem_id"]])
    d["verdict"] = store.scalar("SELECT verdict FROM program_verdicts WHERE program_id = ?", [pid])
    d["reviews"] = store.df("SELECT r.verdict, r.note, r.reviewer, r.reviewed_at, "
                            "c.review_id IS NOT NULL AS current FROM reviews r LEFT JOIN current_reviews c "
                            "USING (review_id) WHERE r.program_id = ? ORDER BY r.reviewed_at DESC, r.rowid DESC",
                            [pid])
    d["parent_program"] = None
    if d.get("parent"):
        d["parent_program"] = store.scalar("SELECT program FROM programs WHERE program_id = ?", [d["parent"]])
    return d


def diff(parent: str, child: str) -> str:
    return "".join(difflib.unified_diff(parent.splitlines(True), child.splitlines(True), "parent", "this"))


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
