"""Data access for the review app (``apps/review.py``): paginated reads, reviews, fixes.

Every call opens a short-lived connection, so the app never holds the store: reads use a
read-only connection, writes a read-write one inside a transaction. While another ``pad``
command commits, DuckDB's file lock refuses the connection; the open waits and retries (a
running stage holds the store only while it commits, see :mod:`pad_data.writer`), and only
a store held for longer than ``$PAD_BUSY_TIMEOUT`` makes these functions raise
:class:`~pad_data.store.StoreError` ("the store is busy"), which the app shows instead of
crashing. Nothing here loads a whole table: lists are paginated in SQL, and label counts
read ``program_labels`` (one row per executed program) rather than the joined view.
"""

from __future__ import annotations

import contextlib
import difflib
import uuid
from dataclasses import dataclass, field
from typing import Iterator

import pandas as pd

from .results import result_row, results_frame
from .sandbox.pool import SandboxPool, execute_programs
from .store import Store, connect, program_id

VERDICTS = ("accept", "reject", "needs-fix")
FILTER_COLUMNS = ("dataset", "label", "error_type", "origin", "teacher")


@contextlib.contextmanager
def reading(path: str) -> Iterator[Store]:
    with Store(path, read_only=True) as store:
        yield store


@contextlib.contextmanager
def writing(path: str) -> Iterator[Store]:
    with Store(path) as store:
        yield store


@dataclass
class Filters:
    dataset: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    error_type: list[str] = field(default_factory=list)
    origin: list[str] = field(default_factory=list)
    teacher: list[str] = field(default_factory=list)
    text: str = ""

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        for col in FILTER_COLUMNS:
            values = getattr(self, col)
            if values:
                clauses.append(f"{col} IN ({', '.join('?' * len(values))})")
                params += list(values)
        if self.text.strip():
            clauses.append("(question ILIKE ? OR program ILIKE ?)")
            params += [f"%{self.text.strip()}%"] * 2
        return (" AND ".join(clauses) or "TRUE"), params


def overview(store: Store) -> dict[str, pd.DataFrame]:
    not_executed = ("(SELECT count(*) FROM programs WHERE problem_id IN (SELECT problem_id FROM problems)) "
                    "- (SELECT count(*) FROM program_labels)")
    return {
        "labels": store.df(f"""
            SELECT label, programs FROM (
                SELECT label, count(*) AS programs FROM program_labels GROUP BY 1
                UNION ALL SELECT '(not executed)', {not_executed})
            WHERE programs > 0 ORDER BY 2 DESC, 1"""),
        "by_dataset": store.df("""
            WITH everything AS (SELECT pr.dataset, p.teacher, count(*) AS n FROM programs p
                                JOIN problems pr USING (problem_id) GROUP BY ALL),
                 executed AS (SELECT dataset, teacher, label, count(*) AS n FROM program_labels GROUP BY ALL)
            SELECT dataset, teacher, label, n AS programs FROM executed
            UNION ALL
            SELECT a.dataset, a.teacher, '(not executed)', a.n - coalesce(sum(x.n), 0) FROM everything a
            LEFT JOIN executed x ON x.dataset = a.dataset AND x.teacher IS NOT DISTINCT FROM a.teacher
            GROUP BY a.dataset, a.teacher, a.n HAVING a.n - coalesce(sum(x.n), 0) > 0
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
        "totals": store.df("SELECT (SELECT count(*) FROM problems) AS problems, (SELECT count(*) FROM programs) "
                           "AS programs, (SELECT count(*) FROM reviews) AS reviews"),
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
    return out


def _listing(f: Filters) -> str:
    """The narrowest rows the filters need, with the columns they test and the list's order:
    executed programs alone for a label or error type, all programs otherwise, and the joined
    view only to search the question and program text."""
    if f.text.strip():
        return "labeled_programs"
    if f.label or f.error_type:
        return "program_labels"
    return ("(SELECT p.program_id, p.problem_id, pr.dataset, p.origin, p.teacher, p.sample_idx "
            "FROM programs p JOIN problems pr USING (problem_id))")


def count(store: Store, f: Filters) -> int:
    where, params = f.where()
    return store.scalar(f"SELECT count(*) FROM {_listing(f)} WHERE {where}", params)


def page(store: Store, f: Filters, offset: int, limit: int = 50) -> pd.DataFrame:
    """Rows ``offset``.. of the filtered list: its ids first, then what is shown of them."""
    where, params = f.where()
    return store.df(f"""
        WITH ids AS (SELECT program_id, dataset, problem_id, sample_idx FROM {_listing(f)} WHERE {where}
                     ORDER BY dataset, problem_id, sample_idx, program_id LIMIT {int(limit)} OFFSET {int(offset)})
        SELECT ids.program_id, ids.dataset, l.label, l.error_type, p.origin, p.teacher,
               left(pr.question, 120) AS question
        FROM ids JOIN programs p USING (program_id) JOIN problems pr ON pr.problem_id = ids.problem_id
        LEFT JOIN program_labels l USING (program_id)
        ORDER BY ids.dataset, ids.problem_id, ids.sample_idx, ids.program_id""", params)


def program_detail(store: Store, pid: str) -> dict | None:
    rows = store.df("SELECT lp.*, p.completion, p.parent_program_id AS parent FROM labeled_programs lp "
                    "JOIN programs p USING (program_id) WHERE program_id = ?", [pid])
    if rows.empty:
        return None
    d = rows.iloc[0].to_dict()
    d["siblings"] = store.df("SELECT program_id, teacher, origin, sample_idx, label, error_type, value "
                             "FROM labeled_programs WHERE problem_id = ? ORDER BY teacher, sample_idx",
                             [d["problem_id"]])
    d["reviews"] = store.df("SELECT verdict, note, reviewer, reviewed_at FROM reviews WHERE program_id = ? "
                            "ORDER BY reviewed_at DESC", [pid])
    d["parent_program"] = None
    if d.get("parent"):
        d["parent_program"] = store.scalar("SELECT program FROM programs WHERE program_id = ?", [d["parent"]])
    return d


def diff(parent: str, child: str) -> str:
    return "".join(difflib.unified_diff(parent.splitlines(True), child.splitlines(True), "parent", "this"))


def add_review(path: str, pid: str, verdict: str, note: str, reviewer: str) -> str:
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    rid = uuid.uuid4().hex[:16]
    with writing(path) as st, st.transaction():
        st.con.execute("INSERT INTO reviews (review_id, program_id, verdict, note, reviewer) VALUES (?, ?, ?, ?, ?)",
                       [rid, pid, verdict, note or None, reviewer or None])
    return rid


def try_program(source: str, timeout: float = 2.0, memory_mb: int = 512):
    """Run an edited program in the sandbox without storing it."""
    return execute_programs([source], timeout=timeout, memory_mb=memory_mb, workers=1)[0]


def save_fix(path: str, parent_id: str, source: str, reviewer: str, timeout: float = 2.0,
             memory_mb: int = 512) -> dict:
    """Store an edited program (origin ``human``, linked to its parent) with its own execution."""
    with writing(path) as st:
        parent = st.df("SELECT p.problem_id, pr.answer, pr.answer_text FROM programs p "
                       "JOIN problems pr USING (problem_id) WHERE program_id = ?", [parent_id])
        if parent.empty:
            raise ValueError(f"no program {parent_id}")
        problem, gold, gold_text = parent.iloc[0]
        gold = None if pd.isna(gold) else float(gold)
        st.release()  # not held while the program runs
        new_id = program_id(problem, source, reviewer or "human", 0, "human")
        with SandboxPool(workers=1, timeout=timeout, memory_mb=memory_mb) as pool:
            (_, res), = list(pool.map([(new_id, source)]))
            executor = pool.executor_version
        row = result_row(new_id, res, gold, gold_text, timeout, memory_mb, executor, pd.Timestamp.now())
        with st.transaction():
            added = st.insert_new("programs", pd.DataFrame([{
                "program_id": new_id, "problem_id": problem, "origin": "human", "teacher": reviewer or "human",
                "sample_idx": 0, "program": source, "completion": source, "parent_program_id": parent_id}]),
                "program_id")
            if added:
                st.add_executions(results_frame([row]))
    return {"program_id": new_id, "label": row["label"], "added": bool(added), "result": res}


def run_sql(path: str, query: str, limit: int = 1000) -> pd.DataFrame:
    """A read-only query for the SQL tab: no writes, no files, at most ``limit`` rows."""
    con = connect(path, read_only=True, config={"enable_external_access": False})
    try:
        return con.execute(f"SELECT * FROM ({query.strip().rstrip(';')}) LIMIT {int(limit)}").df()
    finally:
        con.close()
