"""The :class:`Store`: the connection to the file, its settings, and every write to a store table."""


from __future__ import annotations

import contextlib
import os
import uuid
from typing import TYPE_CHECKING, Iterable, Iterator

import duckdb

if TYPE_CHECKING:  # pandas is imported where a frame is made: `pad sql` and `pad stats` start without it
    from pathlib import Path

    import pandas as pd
    import pyarrow as pa

from pad_data.rules.options import memory_limit, size_bytes
from pad_data.store import journal
from pad_data.store.connection import StoreError, busy_timeout, connect, duckdb_config, threads_for
from pad_data.store.migrations import apply_migrations, current_version
from pad_data.store.paths import resolve_path
from pad_data.store.schema import (CONSENSUS_LABEL, EXEC_COLUMNS, FAILURE_COLUMNS, LABEL_COLUMNS, RESULT_TYPES, SCHEMA_VERSION,
                                   VIEWS)
from pad_data.store.sqltools import any_of, copy_into, first_line, read_only_statements, registered, sql_literal

PENDING_BATCH = 50_000  # rows per batch streamed by pending_snapshot()
AS_WRITTEN = "join_order,build_side_probe_side"  # DuckDB's optimizers that choose which side of a join is built


class Store:
    """An open pad store. Use as a context manager, or call ``close()``.

    ``wait``: seconds to wait for the store when another process holds it [default:
    ``$PAD_BUSY_TIMEOUT`` or 10]. After :meth:`release` the connection is reopened (waiting
    the same way) the next time ``con`` is used.

    ``memory``: the memory budget of this store's DuckDB work (:func:`pad_data.rules.options.memory_limit`:
    ``--memory-limit``, ``$PAD_MEMORY_LIMIT``, or an eighth of the RAM), ``self.memory`` in bytes. The
    connection is capped at it and spills to ``<store>.tmp`` beside the store beyond it;
    :meth:`capped` caps lower, never higher, and a stage's scratch databases share it
    (:meth:`share`).
    """

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool = False,
                 migrate_to: int | None = None, wait: float | None = None, memory: str | int | None = None):
        self.path = resolve_path(path)
        self.read_only = read_only
        self.wait = busy_timeout() if wait is None else wait
        self.memory = memory_limit(memory)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._locked = False
        self._in_transaction = False
        self._caps: list[tuple[str, bool]] = []  # the caps of :meth:`capped` in force, innermost last
        self._restore = False  # settings :meth:`capped` could not restore yet (see there)
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no such store (run `pad ingest` or `pad run` first)")
        self._open()
        self.recovered = 0  # programs stored from the generation journal when this store was opened
        try:
            self._migrate(migrate_to if migrate_to is not None else SCHEMA_VERSION)
            if not read_only and self.version == SCHEMA_VERSION:
                self.recovered = self.replay_journal()
        except BaseException:
            self.release()
            raise

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, opened again (waiting while another process holds the store) after :meth:`release`."""
        if self._con is None:
            self._open()
        return self._con

    def _open(self) -> None:
        self._con = connect(self.path, read_only=self.read_only, wait=self.wait)
        self._locked = False
        # SET, not connect()'s config: another connection to the file in this process (which
        # shares its database instance) must not need the same configuration
        self._con.execute(f"SET temp_directory = {sql_literal(f'{self.path}.tmp')}")
        self._apply_caps()  # the budget, or inside :meth:`capped` its cap

    def release(self) -> None:
        """Close the connection, so other processes can open the store, until ``con`` is next used.
        Nothing on the connection outlives it (temporary tables, registered frames) but the caps
        of :meth:`capped` blocks still open; inside a transaction it is an error."""
        if self._in_transaction:
            raise RuntimeError("release() inside a transaction")
        if self._con is not None:
            con, self._con = self._con, None
            con.close()

    # ------------------------------------------------------------------ schema
    @property
    def version(self) -> int:
        return current_version(self.con)

    def _migrate(self, target: int) -> None:
        current = current_version(self.con)
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {current} is newer than this pad "
                             f"supports ({SCHEMA_VERSION}); upgrade pad")
        if current >= target:
            return
        if self.read_only:
            raise StoreError(f"{self.path}: schema version {current} needs an upgrade to "
                             f"{SCHEMA_VERSION}; open it once without read-only")
        with self.transaction():
            apply_migrations(self.con, current, target)
            if target == SCHEMA_VERSION:  # views describe the current schema
                for view in VIEWS:
                    self.con.execute(view)

    # ------------------------------------------------------------------ access
    def share(self, fraction: float, at_most: str | None = None) -> str:
        """``fraction`` of :attr:`memory` (at most ``at_most``), as a DuckDB ``memory_limit``: what
        one of several connections a stage keeps open at once may use."""
        n = int(self.memory * fraction)
        return f"{min(n, size_bytes(at_most)) if at_most else n}B"

    @contextlib.contextmanager
    def capped(self, memory: str | None = None, ordered: bool = True) -> Iterator[None]:
        """DuckDB's memory capped at ``memory`` (never above :attr:`memory`, the budget; None: the
        budget) meanwhile, also on every reopening of a released store (a stage's committer
        reopens it); afterwards the enclosing cap, or the budget. DuckDB caches the blocks
        it reads and writes up to its cap, so a bulk copy's memory grows with the copy up to it;
        beyond it, joins, sorts and windows spill to disk (see :meth:`problem_ranges` for the
        queries that cannot). ``ordered=False``: results may come in any order (DuckDB then
        buffers less). Inside a transaction an error aborted, the settings are restored after
        its ROLLBACK, and that error is the one raised."""
        memory = f"{min(size_bytes(memory), self.memory) if memory else self.memory}B"
        self._caps.append((memory, ordered))
        try:
            self._apply_caps()  # a released store takes them when it is next opened
            yield
        except BaseException:
            self._caps.pop()
            try:
                self._apply_caps()
            except duckdb.Error:  # an aborted transaction takes no SET: restore after its ROLLBACK
                self._restore = True
            raise
        self._caps.pop()
        self._apply_caps()

    def lower_budget(self, memory: int) -> None:
        """Lower :attr:`memory` to ``memory`` bytes (never raise it), for the rest of this store's
        life: a connection kept open beside another that shares the same budget."""
        self.memory = min(self.memory, int(memory))
        self._apply_caps()

    def problem_ranges(self, share: float = 1 / 8) -> list[str]:
        """Conditions on ``problem_id`` that split the programs into ranges (every id in exactly
        one, in order) holding about ``share`` of the budget each, counting each program's text
        and ~200 bytes of other columns.

        Why: a query over ``labeled_programs`` is one pipeline probing several hash joins at
        once (programs with their problems and gold, then ``program_labels``, then
        ``executions``), and DuckDB's join hash tables, each sized to fit the memory it sees,
        are not aware of each other: together they can need more than the cap, which fails
        ("failed to pin block") where a smaller cap would have made them spill. Run range by
        range (filters on ``problem_id`` reach programs and problems), every hash table holds one
        range, so the query fits any budget. Bounds come from a seeded sample of the ids, so
        any id scheme splits evenly."""
        rows, text = self.con.execute("SELECT count(*), coalesce(sum(strlen(program)), 0) FROM programs").fetchall()[0]
        k = max(1, -(-(rows * 200 + text) // max(1, int(self.memory * share))))
        if k == 1:
            return ["TRUE"]
        ids = sorted(r[0] for r in self.con.execute(
            f"SELECT problem_id FROM programs USING SAMPLE {min(rows, 100 * k)} ROWS (reservoir, 0)").fetchall())
        bounds = sorted({ids[len(ids) * i // k] for i in range(1, k)})
        conds = [f"problem_id < {sql_literal(bounds[0])}"]
        conds += [f"problem_id >= {sql_literal(lo)} AND problem_id < {sql_literal(hi)}"
                  for lo, hi in zip(bounds, bounds[1:])]
        return conds + [f"problem_id >= {sql_literal(bounds[-1])}"]

    def _apply_caps(self) -> None:
        """The innermost :meth:`capped` cap in force, or the budget and DuckDB's default order. A
        released store is not reopened for it: settings end with their connection, and
        :meth:`_open` applies the caps in force."""
        if self._con is None:
            return
        self._settings(*(self._caps[-1] if self._caps else (None, None)))

    def _settings(self, memory: str | None, ordered: bool | None) -> None:
        """Cap DuckDB's memory and set insertion order, or (None) the budget and DuckDB's default order."""
        if memory is None:
            self.con.execute(f"SET memory_limit = '{self.memory}B'")
            self.con.execute("RESET preserve_insertion_order")
        else:
            self.con.execute(f"SET memory_limit = {sql_literal(memory)}")
            self.con.execute(f"SET preserve_insertion_order = {str(ordered).lower()}")
        self.con.execute(f"SET threads = {threads_for(self.memory if memory is None else memory)}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Commit everything done inside, or nothing (also on Ctrl-C). Inside another transaction
        it joins that one, so a method that writes may be called within a caller's transaction."""
        con = self.con
        if self._in_transaction:
            yield con
            return
        con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield con
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed statement can end the transaction itself: the first error is the one to see
            if self._restore:
                self._restore = False
                self._apply_caps()
            raise
        else:
            con.execute("COMMIT")
        finally:
            self._in_transaction = False

    def sql(self, query: str, params: list | None = None) -> duckdb.DuckDBPyRelation | None:
        return self.con.sql(query, params=params) if params else self.con.sql(query)

    def scalar(self, query: str, params: list | dict | None = None):
        """The single value a query returns (fully fetched, as DuckDB 2 requires)."""
        rows = self.con.execute(query, params or []).fetchall()
        return rows[0][0] if rows else None

    def df(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        return self.con.execute(query, params or []).df()

    def insert_new(self, table: str, df: pd.DataFrame, key: str) -> int:
        """Insert rows of ``df`` whose ``key`` is not in ``table`` yet (of rows alike in ``df``, the
        first); returns rows added. (``executions`` rows go in through :meth:`add_executions`.)"""
        if table == "executions":
            raise ValueError("executions are stored with Store.add_executions")
        return self.insert_rows(table, df.drop_duplicates(subset=[key]), key)

    def insert_rows(self, table: str, rows: pa.Table | pa.RecordBatch | pd.DataFrame | str, key: str) -> int:
        """The one insert rule for keyed rows: rows whose ``key`` is already in ``table`` are
        skipped (an anti-join, then a plain insert; ``programs`` has no key index to do it, see
        schema v16). ``rows``: Arrow rows (a table, or one record batch of a stream), a
        DataFrame, or a table this connection reads (an attached database's: ``"db.table"``),
        with distinct ``key`` values. Returns rows added."""
        if isinstance(rows, str):
            names = [r[0] for r in self.con.execute(f"DESCRIBE {rows}").fetchall()]
        elif len(rows) == 0:
            return 0
        else:
            names = rows.schema.names if hasattr(rows, "schema") else list(rows.columns)  # Arrow or pandas
        cols = ", ".join(map(str, names))
        with self._source(rows) as source:
            return self.con.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source} n "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = n.{key})").fetchall()[0][0]

    def append(self, table: str, df: pd.DataFrame) -> int:
        """Insert every row of ``df`` into ``table`` (its columns by name); returns rows added."""
        if df.empty:
            return 0
        cols = ", ".join(df.columns)
        with registered(self.con, df) as rows:
            return self.con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {rows}").fetchall()[0][0]

    @contextlib.contextmanager
    def _source(self, rows: pa.Table | pa.RecordBatch | pd.DataFrame | str) -> Iterator[str]:
        """What a query reads ``rows`` as: a table's name as it is, a frame registered meanwhile."""
        if isinstance(rows, str):
            yield rows
        else:
            with registered(self.con, rows) as name:
                yield name

    def update_gold(self, rows: pd.DataFrame | str, apply: bool = True) -> list[str]:
        """Problems of ``rows`` (rows of ``problems``: a DataFrame, or a table this connection
        reads, as for :meth:`insert_rows`) already stored with another gold answer, answer
        text or choice letter (when ``rows`` has a ``choice`` column); with ``apply``, their
        answer, answer_text (and rationale, choice and options, when ``rows`` has them) are
        replaced. A row with no gold at all never replaces a stored one. Returns the problem_ids
        that differ. The caller owns the transaction."""
        if isinstance(rows, str):
            names = {r[0] for r in self.con.execute(f"DESCRIBE {rows}").fetchall()}
        else:
            if rows.empty:
                return []
            rows = rows[[c for c in ("problem_id", "answer", "answer_text", "rationale", "choice", "options")
                         if c in rows.columns]]
            names = set(rows.columns)
        differs = "(problems.answer IS DISTINCT FROM n.answer OR problems.answer_text IS DISTINCT FROM n.answer_text" \
                  + (" OR problems.choice IS DISTINCT FROM n.choice)" if "choice" in names else ")")
        sets = "answer = n.answer, answer_text = n.answer_text, rationale = coalesce(n.rationale, problems.rationale)" \
            + (", choice = n.choice" if "choice" in names else "") \
            + (", options = coalesce(n.options, problems.options)" if "options" in names else "")
        with self._source(rows) as source:
            ids = [r[0] for r in self.con.execute(
                f"SELECT problems.problem_id FROM problems JOIN {source} n USING (problem_id) "
                f"WHERE (n.answer IS NOT NULL OR n.answer_text IS NOT NULL) AND {differs} ORDER BY 1").fetchall()]
            if apply and ids:
                self.con.execute(
                    f"UPDATE problems SET {sets} FROM {source} n "
                    "WHERE problems.problem_id = n.problem_id AND (n.answer IS NOT NULL OR n.answer_text IS NOT NULL) "
                    f"AND {differs}")
        return ids

    # ------------------------------------------------------------------ executions
    def pending_query(self, dataset: str | None = None, origin: str | None = None,
                      rerun: bool = False, preamble_id: str | None = None) -> tuple[str, list]:
        """``(SELECT, params)`` of the programs to execute (of ``dataset``/``origin`` when given):
        those with no execution yet, or with ``rerun`` all of them; columns
        :data:`PENDING_COLUMNS` (``prev_seq``: the program's current execution, which a result
        must still find to be stored, see :meth:`add_executions`; ``preamble_id`` and ``preamble``:
        what runs before it, the program's own preamble, else ``preamble_id``, a stored one)."""
        where, params = [], [preamble_id, preamble_id]
        if dataset:
            where.append("pr.dataset = ?")
            params.append(dataset)
        if origin:
            where.append("p.origin = ?")
            params.append(origin)
        if not rerun:
            where.append("l.seq IS NULL")
        return (f"SELECT p.program_id, p.program, pr.answer AS gold, pr.answer_text AS gold_text, p.problem_id, "
                f"pr.dataset, p.origin, p.teacher, l.seq AS prev_seq, pr.choice AS gold_choice, "
                f"coalesce(p.preamble_id, ?::VARCHAR) AS preamble_id, pa.text AS preamble FROM programs p "
                f"JOIN problems pr USING (problem_id) LEFT JOIN program_labels l USING (program_id) "
                f"LEFT JOIN preambles pa ON pa.preamble_id = coalesce(p.preamble_id, ?::VARCHAR) "
                f"WHERE {' AND '.join(where) or 'TRUE'}", params)

    def pending_snapshot(self, path: str | os.PathLike, dataset: str | None = None, origin: str | None = None,
                         rerun: bool = False, limit: int | None = None, preamble_id: str | None = None) -> int:
        """Copy the programs to execute (:meth:`pending_query`'s rows; with ``limit``, the first
        ``limit`` by ``program_id``) into table ``pending`` of a new DuckDB file ``path``,
        streamed, in any order, the store and the new file each with half the budget
        (:meth:`share`). A stage then reads them from there without the store: one pass over the
        store whatever its size, where pages read from the store would each join every program.
        Returns how many.

        No program text is ever held in a hash table or a sort, which would need the text of
        every pending program in memory at once (DuckDB fails, rather than spills, when such
        rows outgrow the cap): the joins are run as written, programs probing problems and
        labels (left to itself, DuckDB may build on the programs' side), and ``limit`` takes the
        first ids alone before their rows."""
        query, params = self.pending_query(dataset, origin, rerun, preamble_id)
        if limit is not None:
            query, params = (f"SELECT * FROM ({query}) SEMI JOIN (SELECT program_id FROM ({query}) "
                             f"ORDER BY program_id LIMIT {int(limit)}) USING (program_id)", params + params)
        con = duckdb.connect(str(path), config=duckdb_config(self.share(0.5)))
        try:
            with self.capped(self.share(0.5), ordered=False):
                self.con.execute(f"SET disabled_optimizers = '{AS_WRITTEN}'")
                try:
                    copy_into(con, "pending", self.con.sql(query, params=params).to_arrow_reader(PENDING_BATCH))
                finally:
                    self.con.execute("RESET disabled_optimizers")
            return con.execute("SELECT count(*) FROM pending").fetchall()[0][0]
        finally:
            con.close()

    def add_executions(self, results: pd.DataFrame | pa.Table | str | list[str]) -> dict[str, int]:
        """Store execution results and make each its program's current execution; returns
        ``{label: results stored}``. The one way executions are stored, for every engine.

        ``results``: a frame, an Arrow table or Parquet files, of :data:`RESULT_COLUMNS`: the ``executions``
        columns, then the program's context (``problem_id``, ``dataset``, ``origin``, ``teacher``;
        missing ones are looked up) and ``prev_seq``, the ``seq`` of the program's current
        execution when the engine picked it (NULL: none). The rule: a result is stored only if
        that is still its program's current execution, so a program another run executed in
        the meantime is not stored twice (its result is dropped), and ``--rerun`` adds a newer
        execution. Each stored result gets the next ``seq``; ``executions`` keeps them all and
        ``program_labels`` points at the newest. The caller owns the transaction.
        """
        if isinstance(results, (str, list)):
            paths = [results] if isinstance(results, str) else results
            if not paths:
                return {}
            results = "read_parquet([" + ", ".join(sql_literal(str(x)) for x in paths) + "], union_by_name = true)"
        elif len(results) == 0:
            return {}
        with self._source(results) as source:
            self._stage_results(source)
        con = self.con
        try:
            self._fill_context()
            ecols = ", ".join(EXEC_COLUMNS)
            con.execute(f"INSERT INTO executions (seq, {ecols}) SELECT seq, {ecols} FROM _pad_new ORDER BY seq")
            if con.execute("SELECT count(*) FROM _pad_new WHERE prev_seq IS NOT NULL").fetchall()[0][0]:
                con.execute("DELETE FROM program_labels WHERE program_id IN "
                            "(SELECT program_id FROM _pad_new WHERE prev_seq IS NOT NULL)")
            lcols = ", ".join(LABEL_COLUMNS)
            con.execute(f"INSERT INTO program_labels ({lcols}) SELECT {lcols} FROM _pad_new ORDER BY program_id")
            return dict(con.execute("SELECT label, count(*) FROM _pad_new GROUP BY 1").fetchall())
        finally:
            con.execute("DROP TABLE IF EXISTS _pad_new")

    def _stage_results(self, source: str) -> None:
        """Temporary table ``_pad_new``: of the results ``source`` reads, one per program (the one
        executed last) that :meth:`add_executions`'s rule keeps, each numbered with its ``seq``."""
        have = {r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        missing = [c for c in EXEC_COLUMNS if c not in have and c not in ("error_line", "preamble_id")]
        if missing:
            raise ValueError(f"execution results lack column(s) {', '.join(missing)}")
        cols = ", ".join(f"CAST({'r.' + c if c in have else 'NULL'} AS {t}) AS {c}" for c, t in RESULT_TYPES.items())
        self.con.execute(f"""CREATE OR REPLACE TEMP TABLE _pad_new AS
            SELECT nextval('executions_seq') AS seq, n.* FROM (
                SELECT {cols} FROM {source} r
                QUALIFY row_number() OVER (PARTITION BY r.program_id ORDER BY r.executed_at DESC) = 1) n
            LEFT JOIN program_labels l USING (program_id)
            WHERE l.seq IS NOT DISTINCT FROM n.prev_seq
            ORDER BY n.program_id""")

    def _fill_context(self) -> None:
        """Look up the program context (problem, dataset, origin, teacher) that staged results lack;
        a result for a program the store does not hold is a ValueError."""
        con = self.con
        if not con.execute("SELECT count(*) FROM _pad_new WHERE dataset IS NULL OR problem_id IS NULL "
                           "OR origin IS NULL").fetchall()[0][0]:
            return
        con.execute("""UPDATE _pad_new SET problem_id = p.problem_id, dataset = pr.dataset,
                              origin = p.origin, teacher = p.teacher
                       FROM programs p JOIN problems pr USING (problem_id)
                       WHERE _pad_new.program_id = p.program_id""")
        orphans = con.execute("SELECT program_id FROM _pad_new WHERE dataset IS NULL LIMIT 1").fetchall()
        if orphans:
            raise ValueError(f"execution result for program {orphans[0][0]}, which the store does not hold")

    def set_labels(self, labels: pd.DataFrame | str, params: list | None = None) -> None:
        """Give current executions new labels in ``program_labels``: ``labels`` (a frame, or a
        query with ``params``) has columns ``seq`` (the execution) and ``label``; rows whose label
        is already that are left alone. The caller owns the transaction."""
        update = ("UPDATE program_labels SET label = s.label FROM {} s "
                  "WHERE program_labels.seq = s.seq AND program_labels.label <> s.label")
        if isinstance(labels, str):
            self.con.execute(update.format(f"({labels})"), params or [])
        else:
            with registered(self.con, labels[["seq", "label"]]) as rows:
                self.con.execute(update.format(rows))

    def relabel_executions(self, changed: pd.DataFrame) -> None:
        """Store new labels of stored executions: ``changed`` has columns ``seq``, ``label`` and
        ``value_num`` (a number read again with them); the current labels follow. The caller
        owns the transaction."""
        if changed.empty:
            return
        with registered(self.con, changed[["seq", "label", "value_num"]]) as rows:
            self.con.execute(f"UPDATE executions SET label = r.label, value_num = r.value_num "
                             f"FROM {rows} r WHERE executions.seq = r.seq")
        self.set_labels(changed)

    def set_consensus(self, problems: str, params: list, rows: pd.DataFrame) -> None:
        """Replace the consensus answers of the problems ``problems`` selects (a query of
        ``problem_id`` with ``params``) by ``rows``, and relabel those problems' unverifiable
        executions against them, as ``labeled_programs`` does, in one transaction."""
        with self.transaction():
            self.con.execute(f"DELETE FROM consensus WHERE problem_id IN ({problems})", params)
            if len(rows):
                self.insert_new("consensus", rows, "problem_id")
            self.set_labels(f"""
                SELECT l.seq, CASE WHEN c.problem_id IS NULL THEN e.label
                                   ELSE {CONSENSUS_LABEL.format(e='e', answer='c.answer')} END AS label
                FROM program_labels l JOIN executions e ON e.seq = l.seq
                LEFT JOIN consensus c ON c.problem_id = l.problem_id
                WHERE e.label = 'unverifiable' AND l.problem_id IN ({problems})""", params)

    # ------------------------------------------------------------------ reviews
    def add_verdicts(self, programs: str, params: list | None, verdict: str, note: str | None,
                     reviewer: str | None, batch: str | None = None) -> int:
        """Give every program ``programs`` selects (a query with a ``program_id`` column) the
        verdict and note of ``reviewer``, set-based: a ``reviews`` row each (the history; one
        ``batch_id`` for the lot, ``batch`` or a new one) and the reviewer's current verdict in
        ``current_reviews`` (replaced). The one way verdicts are stored. Returns the programs
        given a verdict. The caller owns the transaction."""
        con = self.con
        values = {"batch": batch or uuid.uuid4().hex[:16], "verdict": verdict, "note": note, "reviewer": reviewer,
                  "when": con.execute("SELECT current_timestamp::TIMESTAMP").fetchall()[0][0]}
        con.execute(f"CREATE OR REPLACE TEMP TABLE _pad_verdicts AS SELECT DISTINCT program_id FROM ({programs})",
                    params or [])
        try:
            n = con.execute("SELECT count(*) FROM _pad_verdicts").fetchall()[0][0]
            if n:
                con.execute("""INSERT INTO reviews (review_id, program_id, verdict, note, reviewer, reviewed_at, batch_id)
                               SELECT $batch || program_id, program_id, $verdict, $note, $reviewer, $when, $batch
                               FROM _pad_verdicts""", values)
                con.execute("DELETE FROM current_reviews WHERE reviewer = coalesce(?, '') AND program_id IN "
                            "(SELECT program_id FROM _pad_verdicts)", [reviewer])
                con.execute("""INSERT INTO current_reviews (program_id, reviewer, verdict, note, review_id, reviewed_at)
                               SELECT program_id, coalesce($reviewer, ''), $verdict, $note, $batch || program_id,
                                      $when FROM _pad_verdicts""", values)
            return n
        finally:
            con.execute("DROP TABLE IF EXISTS _pad_verdicts")

    def undo_verdicts(self, batch: str) -> int:
        """Take back the verdicts of ``batch`` (one :meth:`add_verdicts` call): its ``reviews`` rows
        stay in the history, marked ``undone_at``, and each of its reviewer's programs gets back
        the verdict it had before (the latest not undone), or none. Returns the programs whose
        verdict was taken back (0 for a batch already undone). The caller owns the transaction."""
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE _pad_undo AS SELECT DISTINCT program_id, "
                    "coalesce(reviewer, '') AS reviewer FROM reviews WHERE batch_id = ? AND undone_at IS NULL",
                    [batch])
        try:
            n = con.execute("SELECT count(*) FROM _pad_undo").fetchall()[0][0]
            if not n:
                return 0
            con.execute("UPDATE reviews SET undone_at = current_timestamp::TIMESTAMP "
                        "WHERE batch_id = ? AND undone_at IS NULL", [batch])
            con.execute("DELETE FROM current_reviews c USING _pad_undo u "
                        "WHERE c.program_id = u.program_id AND c.reviewer = u.reviewer")
            con.execute("""INSERT INTO current_reviews (program_id, reviewer, verdict, note, review_id, reviewed_at)
                           SELECT r.program_id, coalesce(r.reviewer, ''), r.verdict, r.note, r.review_id, r.reviewed_at
                           FROM reviews r JOIN _pad_undo u
                               ON r.program_id = u.program_id AND coalesce(r.reviewer, '') = u.reviewer
                           WHERE r.undone_at IS NULL
                           QUALIFY row_number() OVER (PARTITION BY r.program_id, coalesce(r.reviewer, '')
                                                      ORDER BY r.reviewed_at DESC, r.rowid DESC) = 1""")
            return n
        finally:
            con.execute("DROP TABLE IF EXISTS _pad_undo")

    # ------------------------------------------------------------------ Ray shards
    def add_shards(self, stage: str, shards: list[tuple[str, str, str, int]], settings: str | None) -> None:
        """Catalog planned shards ``(shard_id, input_path, output_path, rows_in)`` of ``stage``."""
        with self.transaction():
            for shard_id, inp, outp, n in shards:
                self.con.execute("INSERT INTO shards (shard_id, stage, input_path, output_path, rows_in, settings) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", [shard_id, stage, inp, outp, n, settings])

    def shard_ingested(self, shard_id: str, rows_out: int) -> None:
        """Mark a shard's results stored (in the caller's transaction, with the rows themselves)."""
        self.con.execute("UPDATE shards SET rows_out = ?, ingested_at = current_timestamp WHERE shard_id = ?",
                         [rows_out, shard_id])

    # ------------------------------------------------------------------ generation
    def add_generated(self, programs: list[dict], failures: list[dict], healed: list[str] | None = None,
                      replay: bool = False) -> int:
        """Store a teacher's responses: ``programs`` rows (skipping program_ids already stored) and
        ``generation_failures`` rows. The failures of gen_keys in ``healed`` [default: every
        program's gen_key] are removed. ``replay``: rows from the journal, which may have been
        stored already, so failures already recorded (same gen_key and error) or since answered
        are skipped. The caller owns the transaction. Returns the programs added."""
        import pandas as pd

        added = self.insert_new("programs", pd.DataFrame(programs), "program_id") if programs else 0
        self.drop_failures([r["gen_key"] for r in programs] if healed is None else healed)
        self.add_failures(failures, replay=replay)
        return added

    def drop_failures(self, gen_keys: Iterable[str]) -> None:
        """Remove the ``generation_failures`` rows of ``gen_keys`` (samples answered since). The
        caller owns the transaction."""
        keys = list(gen_keys)
        if keys:
            where, params = any_of("gen_key", keys)
            self.con.execute(f"DELETE FROM generation_failures WHERE {where}", params)

    def add_failures(self, failures: list[dict] | pd.DataFrame, replay: bool = False) -> None:
        """Record samples the teacher did not answer (rows of :data:`FAILURE_COLUMNS`).
        ``replay``: rows that may have been stored already, so a failure already recorded (same
        gen_key and error) or since answered is skipped. The caller owns the transaction."""
        import pandas as pd

        if len(failures) == 0:
            return
        skip = ("WHERE NOT EXISTS (SELECT 1 FROM generation_failures g WHERE g.gen_key = f.gen_key "
                "AND g.error IS NOT DISTINCT FROM f.error) "
                "AND NOT EXISTS (SELECT 1 FROM programs p WHERE p.gen_key = f.gen_key)") if replay else ""
        cols = ", ".join(FAILURE_COLUMNS)
        with registered(self.con, pd.DataFrame(failures)) as rows:
            self.con.execute(f"INSERT INTO generation_failures ({cols}) SELECT {cols} FROM {rows} f {skip}")

    @property
    def journal_path(self) -> Path:
        """Where responses that could not be committed wait for the next run (:mod:`pad_data.store.journal`)."""
        return journal.journal_path(self.path)

    def append_journal(self, items: list[tuple[str, list[dict]]]) -> int:
        """Append ``(kind, rows)`` items (kind ``ok``: programs rows, ``fail``: generation_failures
        rows) to the journal, fsync'd; returns the rows written."""
        return journal.append(self.journal_path, items)

    def replay_journal(self) -> int:
        """Store the responses waiting in the journal (in one transaction) and then remove it.

        A last line cut short by a crash while it was written is ignored (it was never fsync'd
        whole); any other unreadable line is an error that leaves the journal in place. Rows
        stored already are skipped, so a journal replayed twice adds nothing. Returns the
        programs added."""
        path = self.journal_path
        if not path.exists():
            return 0
        programs, failures = journal.read(path)
        try:
            with self.transaction():
                added = self.add_generated(programs, failures, replay=True)
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: could not store the {len(programs) + len(failures)} responses "
                             f"waiting in {path}: {first_line(exc)} (they stay there)") from None
        journal.remove(path)
        return added

    def add_batch_job(self, job: dict, requests: pd.DataFrame) -> None:
        """Commit a Batch API job (status ``new``: nothing sent yet) with its requests."""
        with self.transaction() as con:
            con.execute(f"INSERT OR IGNORE INTO batch_jobs ({', '.join(job)}, status) "
                        f"VALUES ({', '.join('?' * len(job))}, 'new')", list(job.values()))
            self.append("batch_requests", requests)

    def set_batch_job(self, job_id: str, ingested: bool = False, **cols: object) -> None:
        """Update a Batch API job's columns; ``ingested``: its results were stored (call it in the
        transaction that stores them), which also dates its end if the API did not."""
        sets = [f"{c} = ?" for c in cols]
        if ingested:
            sets += ["finished_at = coalesce(finished_at, current_timestamp)", "ingested_at = current_timestamp"]
        with self.transaction() as con:
            con.execute(f"UPDATE batch_jobs SET {', '.join(sets)} WHERE job_id = ?", list(cols.values()) + [job_id])

    def shrink_batch_job(self, job_id: str, requests: pd.DataFrame) -> None:
        """Replace the requests of Batch API job ``job_id``, not yet submitted, by ``requests``
        (custom_id, problem_id, sample_idxs, gen_keys: those still missing from the cache), and
        forget its input file (it asks for the others). With none left the job is closed unsent:
        status ``cached``, ingested."""
        with self.transaction() as con:
            con.execute("DELETE FROM batch_requests WHERE job_id = ?", [job_id])
            self.append("batch_requests", requests.assign(job_id=job_id))
            samples = int(requests["gen_keys"].map(len).sum()) if len(requests) else 0
            self.set_batch_job(job_id, ingested=not samples, status="new" if samples else "cached",
                               input_file_id=None, requests=len(requests), samples=samples)

    def delete_batch_job(self, job_id: str) -> None:
        """Remove Batch API job ``job_id`` and its requests: a job the server created nothing for."""
        with self.transaction() as con:
            con.execute("DELETE FROM batch_requests WHERE job_id = ?", [job_id])
            con.execute("DELETE FROM batch_jobs WHERE job_id = ?", [job_id])

    def add_synth_request(self, row: dict, problem: dict | None) -> None:
        """Store a synthesis request's outcome and, if accepted, the new problem (``problem_id``,
        ``dataset``, ``question``, ``source``; split ``train``), in one transaction."""
        with self.transaction() as con:
            con.execute(f"INSERT OR IGNORE INTO synth_requests ({', '.join(row)}) "
                        f"VALUES ({', '.join('?' * len(row))})", list(row.values()))
            if problem:
                con.execute("INSERT OR IGNORE INTO problems (problem_id, dataset, split, question, source) "
                            "VALUES (?, ?, 'train', ?, ?)",
                            [problem["problem_id"], problem["dataset"], problem["question"], problem["source"]])

    # ------------------------------------------------------------------ curated snapshots
    def add_snapshot(self, name: str, params: str, content_hash: str, counts: str, table: str, columns: list[str],
                     rows_sql: str) -> None:
        """Store snapshot ``name``: its ``curations`` row and its rows (``rows_sql``, a query this
        connection can run, with ``columns``) in ``table``, in one transaction."""
        cols = ", ".join(columns)
        with self.transaction() as con:
            con.execute("INSERT INTO curations (name, params, content_hash, counts) VALUES (?, ?, ?, ?)",
                        [name, params, content_hash, counts])
            con.execute(f"INSERT INTO {table} (name, {cols}) SELECT ?, {cols} FROM ({rows_sql})", [name])

    # ------------------------------------------------------------------ datasets
    # what a dataset's rows are, table by table (every one keyed by its problems, directly or not);
    # snapshots copy their rows, so they stay
    DATASET_TABLES = {
        "executions": "program_id IN (SELECT program_id FROM programs WHERE {problems})",
        "program_labels": "dataset = $dataset",
        "current_reviews": "program_id IN (SELECT program_id FROM programs WHERE {problems})",
        "reviews": "program_id IN (SELECT program_id FROM programs WHERE {problems})",
        "consensus": "{problems}",
        "generation_failures": "{problems}",
        "synth_requests": "dataset = $dataset",
        "programs": "{problems}",
        "problems": "dataset = $dataset",
    }

    _DATASET_PROBLEMS = "problem_id IN (SELECT problem_id FROM problems WHERE dataset = $dataset)"

    def dataset_rows(self, dataset: str) -> dict[str, int]:
        """The rows of dataset ``dataset`` per table of :attr:`DATASET_TABLES` (what
        :meth:`delete_dataset` deletes)."""
        return {table: self.con.execute(f"SELECT count(*) FROM {table} WHERE "
                                        f"{where.format(problems=self._DATASET_PROBLEMS)}",
                                        {"dataset": dataset}).fetchall()[0][0]
                for table, where in self.DATASET_TABLES.items()}

    def delete_dataset(self, dataset: str) -> dict[str, int]:
        """Delete dataset ``dataset``: its rows in every table of :attr:`DATASET_TABLES`, in one
        transaction (all or nothing). Returns the rows deleted per table."""
        deleted = {}
        with self.transaction() as con:
            for table, where in self.DATASET_TABLES.items():
                deleted[table] = con.execute(f"DELETE FROM {table} WHERE {where.format(problems=self._DATASET_PROBLEMS)}",
                                             {"dataset": dataset}).fetchall()[0][0]
        return deleted

    # ------------------------------------------------------------------ student evaluation
    def eval_resume_point(self, run_key: str) -> tuple[str | None, set[str]]:
        """The unfinished evaluation run with ``run_key`` (no eval_runs row yet) and the
        problems it has already evaluated; ``(None, set())`` when there is none."""
        rows = self.con.execute(
            "SELECT run_id, problem_id FROM eval_items WHERE run_key = ? AND run_id NOT IN "
            "(SELECT run_id FROM eval_runs) ORDER BY done_at DESC", [run_key]).fetchall()
        if not rows:
            return None, set()
        run_id = rows[0][0]
        return run_id, {pid for rid, pid in rows if rid == run_id}

    def add_eval_items(self, items: list[dict], programs: list[dict],
                       executions: pd.DataFrame | pa.Table | None) -> None:
        """Store a batch of evaluated problems with their programs and executions (result rows,
        :data:`RESULT_COLUMNS`), in one transaction (a problem is evaluated whole or not at all)."""
        import pandas as pd

        with self.transaction():
            if programs:
                self.insert_new("programs", pd.DataFrame(programs), "program_id")
            if executions is not None and len(executions):
                self.add_executions(executions)
            if items:
                self.append("eval_items", pd.DataFrame(items))

    def eval_items(self, run_id: str) -> pd.DataFrame:
        """The problems evaluated by run ``run_id``, in problem_id order."""
        return self.df("SELECT problem_id, correct_by_round, labels, programs, seconds FROM eval_items "
                       "WHERE run_id = ? ORDER BY problem_id", [run_id])

    def add_eval_run(self, row: dict) -> None:
        """Record a finished evaluation run (an ``eval_runs`` row)."""
        cols = ", ".join(row)
        with self.transaction():
            self.con.execute(f"INSERT INTO eval_runs ({cols}) VALUES ({', '.join('?' * len(row))})", list(row.values()))

    def read_query(self, query: str, read_files: bool = False) -> pd.DataFrame:
        """A read-only query's result (see :data:`READ_STATEMENTS`); any other statement is a
        ValueError. On a store opened ``read_only`` the connection is first locked down for good:
        no file access at all (``enable_external_access = false``) unless ``read_files``, no
        extension downloads, and no further configuration changes."""
        return self._read(query, read_files).df()

    def read_rows(self, query: str, read_files: bool = False,
                  limit: int | None = None) -> tuple[list[str], list[tuple]]:
        """:meth:`read_query` as ``(column names, rows)``, with no pandas (what `pad sql` prints);
        at most ``limit`` rows, if given."""
        cur = self._read(query, read_files)
        rows = cur.fetchall() if limit is None else cur.fetchmany(limit)
        return [d[0] for d in cur.description or []], rows

    def _read(self, query: str, read_files: bool) -> duckdb.DuckDBPyConnection:
        read_only_statements(self.con, query)
        if self.read_only and not self._locked:
            self.con.execute("SET autoinstall_known_extensions = false")
            if not read_files:
                self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
            self._locked = True
        try:
            return self.con.execute(query)
        except duckdb.Error as exc:
            msg = first_line(exc)
            if "disabled by configuration" in msg:
                raise ValueError(f"{msg} (pad sql reads files only with --read-files)") from None
            raise

    def close(self) -> None:
        self.release()

    def interrupt(self) -> None:
        """Stop the query running on this store's connection (from another thread), if any."""
        con = self._con
        if con is not None:
            con.interrupt()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        except duckdb.Error:
            if exc[0] is None:
                raise  # else the error that ended the block is the one to report

