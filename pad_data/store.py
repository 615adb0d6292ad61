"""The DuckDB store: one file, the single source of truth, with a versioned schema.

``Store(path)`` opens (creating or upgrading) the file. Every stage writes through
``store.transaction()`` so a batch is committed whole or not at all. IDs are content
hashes (``problem_id``, ``program_id``), and inserts skip rows that already exist, so
re-running any stage never duplicates rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

DEFAULT_DB = "pad.duckdb"
ORIGINS = ("teacher", "import", "injected", "student", "human")


class StoreError(Exception):
    """A store that cannot be used: newer schema, locked by another process, not DuckDB."""


# Each migration brings the schema from version i to i + 1. Never edit a released one:
# append a new migration instead.
MIGRATIONS: list[list[str]] = [
    # v1: problems, programs, executions, and the labeled view
    [
        """CREATE TABLE problems (
            problem_id VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            question VARCHAR NOT NULL,
            answer DOUBLE,
            answer_text VARCHAR,
            rationale VARCHAR,
            source VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE programs (
            program_id VARCHAR PRIMARY KEY,
            problem_id VARCHAR NOT NULL,
            origin VARCHAR NOT NULL,
            teacher VARCHAR,
            sample_idx INTEGER NOT NULL DEFAULT 0,
            program VARCHAR NOT NULL,
            completion VARCHAR,
            parent_program_id VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE executions (
            program_id VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            label VARCHAR NOT NULL,
            value VARCHAR,
            value_num DOUBLE,
            value_type VARCHAR,
            error_type VARCHAR,
            error_message VARCHAR,
            error_line INTEGER,
            stdout VARCHAR,
            duration_ms DOUBLE,
            timeout_s DOUBLE,
            memory_mb INTEGER,
            executor VARCHAR NOT NULL,
            executed_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        "CREATE INDEX executions_program ON executions (program_id)",
        "CREATE INDEX programs_problem ON programs (problem_id)",
    ],
    # v2: teacher generation: prompts, the response cache key, usage and cost, failures
    [
        """CREATE TABLE prompts (
            prompt_id VARCHAR PRIMARY KEY,
            name VARCHAR,
            text VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        "ALTER TABLE programs ADD COLUMN prompt_id VARCHAR",
        "ALTER TABLE programs ADD COLUMN gen_key VARCHAR",
        "ALTER TABLE programs ADD COLUMN prompt_tokens DOUBLE",
        "ALTER TABLE programs ADD COLUMN completion_tokens DOUBLE",
        "ALTER TABLE programs ADD COLUMN cost_usd DOUBLE",
        "CREATE INDEX programs_gen_key ON programs (gen_key)",
        """CREATE TABLE generation_failures (
            gen_key VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            sample_idx INTEGER NOT NULL,
            model VARCHAR NOT NULL,
            error VARCHAR,
            attempts INTEGER,
            failed_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    ],
    # v3: quality checks, curated snapshots
    [
        """CREATE TABLE check_runs (
            run_id VARCHAR PRIMARY KEY,
            success BOOLEAN NOT NULL,
            critical_failures INTEGER NOT NULL,
            checks INTEGER NOT NULL,
            reference VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE check_results (
            run_id VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            expectation VARCHAR NOT NULL,
            column_name VARCHAR,
            kwargs VARCHAR,
            observed VARCHAR,
            success BOOLEAN NOT NULL,
            critical BOOLEAN NOT NULL)""",
        """CREATE TABLE curations (
            name VARCHAR PRIMARY KEY,
            params VARCHAR NOT NULL,
            content_hash VARCHAR NOT NULL,
            counts VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        """CREATE TABLE curated_examples (
            name VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            program_id VARCHAR NOT NULL,
            dataset VARCHAR,
            question VARCHAR,
            program VARCHAR,
            answer DOUBLE,
            answer_text VARCHAR,
            label VARCHAR,
            teacher VARCHAR,
            origin VARCHAR,
            PRIMARY KEY (name, program_id))""",
    ],
    # v4: reviewer verdicts from the review app
    [
        """CREATE TABLE reviews (
            review_id VARCHAR PRIMARY KEY,
            program_id VARCHAR NOT NULL,
            verdict VARCHAR NOT NULL,
            note VARCHAR,
            reviewer VARCHAR,
            reviewed_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    ],
    # v5: student evaluation runs
    [
        """CREATE TABLE eval_runs (
            run_id VARCHAR PRIMARY KEY,
            model VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            questions INTEGER NOT NULL,
            correct INTEGER NOT NULL,
            accuracy DOUBLE NOT NULL,
            settings VARCHAR NOT NULL,
            programs_per_s DOUBLE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        "ALTER TABLE programs ADD COLUMN eval_run_id VARCHAR",
    ],
    # v6: error injection, refinement pairs, self-refinement rounds
    [
        "ALTER TABLE programs ADD COLUMN injection_kind VARCHAR",
        "ALTER TABLE programs ADD COLUMN refine_round INTEGER",
        "ALTER TABLE eval_runs ADD COLUMN accuracy_by_round VARCHAR",
        """CREATE TABLE refine_examples (
            name VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            faulty_program_id VARCHAR NOT NULL,
            program_id VARCHAR NOT NULL,
            dataset VARCHAR,
            question VARCHAR,
            faulty_program VARCHAR,
            feedback VARCHAR,
            program VARCHAR,
            answer DOUBLE,
            answer_text VARCHAR,
            label VARCHAR,
            injection_kind VARCHAR,
            teacher VARCHAR,
            origin VARCHAR,
            PRIMARY KEY (name, faulty_program_id, program_id))""",
    ],
    # v7: Parquet shards of distributed (Ray) runs: the store stays the catalog
    [
        """CREATE TABLE shards (
            shard_id VARCHAR PRIMARY KEY,
            stage VARCHAR NOT NULL,
            input_path VARCHAR NOT NULL,
            output_path VARCHAR NOT NULL,
            rows_in INTEGER NOT NULL,
            rows_out INTEGER,
            settings VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            ingested_at TIMESTAMP)""",
    ],
    # v8: an unambiguous "latest execution": every executions row gets a number from a sequence
    # when it is stored (executed_at is one timestamp per batch, so it ties). Rows already stored
    # are numbered by executed_at, ties broken by the order they were inserted (rowid).
    [
        "CREATE SEQUENCE executions_seq",
        "ALTER TABLE executions ADD COLUMN seq BIGINT DEFAULT nextval('executions_seq')",
        """UPDATE executions SET seq = r.n FROM (
               SELECT rowid AS rid, row_number() OVER (ORDER BY executed_at, rowid) AS n FROM executions) r
           WHERE executions.rowid = r.rid""",
    ],
    # v9: `pad-train eval` commits as it goes and resumes: one row per evaluated problem of a run
    # (a run is finished when its eval_runs row exists); run_key identifies a run's model,
    # data and settings, so a rerun after a kill finds the unfinished run and continues it.
    [
        """CREATE TABLE eval_items (
            run_id VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            run_key VARCHAR NOT NULL,
            correct_by_round VARCHAR NOT NULL,
            labels VARCHAR NOT NULL,
            programs INTEGER NOT NULL,
            seconds DOUBLE NOT NULL,
            done_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (run_id, problem_id))""",
        "ALTER TABLE eval_runs ADD COLUMN run_key VARCHAR",
    ],
]

LABELED_VIEW = """CREATE OR REPLACE VIEW labeled_programs AS
WITH latest AS (
    SELECT * FROM executions
    QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY seq DESC) = 1)
SELECT p.program_id, p.problem_id, pr.dataset, pr.split, pr.question, pr.answer AS gold,
       pr.answer_text AS gold_text, p.origin, p.teacher, p.sample_idx, p.program,
       p.parent_program_id, e.label, e.status, e.value, e.value_num, e.value_type, e.error_type,
       e.error_message, e.error_line, e.stdout, e.duration_ms, e.timeout_s, e.memory_mb,
       e.executor, e.executed_at, p.injection_kind, p.refine_round, e.seq AS execution_seq
FROM programs p
JOIN problems pr USING (problem_id)
LEFT JOIN latest e USING (program_id)"""

# loud: raised, did not compile, timed out...; silent: ran to the end but the answer is wrong (or None);
# unchanged: still correct
INJECTION_VIEW = """CREATE OR REPLACE VIEW injection_outcomes AS
SELECT program_id, parent_program_id, problem_id, dataset, injection_kind, label, status, error_type,
       CASE WHEN label IS NULL THEN NULL WHEN label = 'correct' THEN 'unchanged'
            WHEN status IN ('ok', 'no_answer') THEN 'silent' ELSE 'loud' END AS outcome
FROM labeled_programs WHERE origin = 'injected'"""
VIEWS = (LABELED_VIEW, INJECTION_VIEW)

SCHEMA_VERSION = len(MIGRATIONS)
# statement kinds `pad sql` runs (SELECT covers WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE)
READ_STATEMENTS = ("SELECT", "EXPLAIN")
READ_STATEMENT_WORDS = ("SELECT", "WITH", "VALUES", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN")


def content_id(*parts: object) -> str:
    """A stable 16-hex-digit id from the given parts (sha256 of their \\x1f-joined text)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def normalize_question(question: str) -> str:
    """Whitespace-collapsed question text (what problem ids hash)."""
    return " ".join(question.split())


def problem_id(dataset: str, question: str) -> str:
    return content_id("problem", dataset, normalize_question(question))


def program_id(problem: str, program: str, teacher: str | None = None, sample_idx: int = 0,
               origin: str = "import") -> str:
    return content_id("program", problem, origin, teacher, sample_idx, program)


def resolve_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$PAD_DB``, else ``./pad.duckdb``."""
    return Path(path or os.environ.get("PAD_DB") or DEFAULT_DB)


class Store:
    """An open pad store. Use as a context manager, or call ``close()``."""

    def __init__(self, path: str | os.PathLike | None = None, read_only: bool = False,
                 migrate_to: int | None = None):
        self.path = resolve_path(path)
        self.read_only = read_only
        self._locked = False
        if read_only and not self.path.exists():
            raise StoreError(f"{self.path}: no such store (run `pad ingest` or `pad run` first)")
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            msg = str(exc).splitlines()[0]
            if "lock" in msg.lower():
                raise StoreError(f"{self.path}: the store is busy (another process is writing it); "
                                 "try again when it finishes") from None
            raise StoreError(f"{self.path}: cannot open store: {msg}") from None
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: not a pad store: {str(exc).splitlines()[0]}") from None
        self.recovered = 0  # programs stored from the generation journal when this store was opened
        try:
            self._migrate(migrate_to if migrate_to is not None else SCHEMA_VERSION)
            if not read_only and self.version == SCHEMA_VERSION:
                self.recovered = self.replay_journal()
        except BaseException:
            self.con.close()
            raise

    # ------------------------------------------------------------------ schema
    @property
    def version(self) -> int:
        return _current_version(self.con)

    def _migrate(self, target: int) -> None:
        current = _current_version(self.con)
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {current} is newer than this pad "
                             f"supports ({SCHEMA_VERSION}); upgrade pad")
        if current >= target:
            return
        if self.read_only:
            raise StoreError(f"{self.path}: schema version {current} needs an upgrade to "
                             f"{SCHEMA_VERSION}; open it once without read-only")
        with self.transaction():
            self.con.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                             "version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
            for version in range(current + 1, target + 1):
                for stmt in MIGRATIONS[version - 1]:
                    self.con.execute(stmt)
                self.con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
            if target == SCHEMA_VERSION:  # views describe the current schema
                for view in VIEWS:
                    self.con.execute(view)

    # ------------------------------------------------------------------ access
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Commit everything done inside, or nothing (also on Ctrl-C)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed statement can end the transaction itself: the first error is the one to see
            raise
        else:
            self.con.execute("COMMIT")

    def sql(self, query: str, params: list | None = None) -> duckdb.DuckDBPyRelation | None:
        return self.con.sql(query, params=params) if params else self.con.sql(query)

    def scalar(self, query: str, params: list | None = None):
        """The single value a query returns (fully fetched, as DuckDB 2 requires)."""
        rows = self.con.execute(query, params or []).fetchall()
        return rows[0][0] if rows else None

    def df(self, query: str, params: list | None = None) -> pd.DataFrame:
        return self.con.execute(query, params or []).df()

    def insert_new(self, table: str, df: pd.DataFrame, key: str) -> int:
        """Insert rows of ``df`` whose ``key`` (the primary key) is not in ``table`` yet; returns rows added."""
        if df.empty:
            return 0
        df = df.drop_duplicates(subset=[key])
        cols = ", ".join(df.columns)
        self.con.register("_pad_new_rows", df)
        try:
            return self.con.execute(f"INSERT OR IGNORE INTO {table} ({cols}) "
                                    f"SELECT {cols} FROM _pad_new_rows").fetchall()[0][0]
        finally:
            self.con.unregister("_pad_new_rows")

    def update_gold(self, df: pd.DataFrame, apply: bool = True) -> list[str]:
        """Problems of ``df`` (rows of ``problems``) already stored with another gold answer or
        answer text; with ``apply``, their answer, answer_text (and rationale, when ``df`` has
        one) are replaced. A row of ``df`` with no gold at all never replaces a stored one.
        Returns the problem_ids that differ. The caller owns the transaction."""
        if df.empty:
            return []
        new = df[["problem_id", "answer", "answer_text", "rationale"]]
        self.con.register("_pad_gold", new)
        try:
            ids = [r[0] for r in self.con.execute(
                "SELECT p.problem_id FROM problems p JOIN _pad_gold n USING (problem_id) "
                "WHERE (n.answer IS NOT NULL OR n.answer_text IS NOT NULL) "
                "AND (p.answer IS DISTINCT FROM n.answer OR p.answer_text IS DISTINCT FROM n.answer_text) "
                "ORDER BY 1").fetchall()]
            if apply and ids:
                self.con.execute(
                    "UPDATE problems SET answer = n.answer, answer_text = n.answer_text, "
                    "rationale = coalesce(n.rationale, problems.rationale) FROM _pad_gold n "
                    "WHERE problems.problem_id = n.problem_id AND (n.answer IS NOT NULL OR n.answer_text IS NOT NULL) "
                    "AND (problems.answer IS DISTINCT FROM n.answer OR problems.answer_text IS DISTINCT FROM n.answer_text)")
        finally:
            self.con.unregister("_pad_gold")
        return ids

    # ------------------------------------------------------------------ generation
    def add_generated(self, programs: list[dict], failures: list[dict], healed: list[str] | None = None,
                      replay: bool = False) -> int:
        """Store a teacher's responses: ``programs`` rows (skipping program_ids already stored) and
        ``generation_failures`` rows. The failures of gen_keys in ``healed`` [default: every
        program's gen_key] are removed. ``replay``: rows from the journal, which may have been
        stored already, so failures already recorded (same gen_key and error) or since answered
        are skipped. The caller owns the transaction. Returns the programs added."""
        added = self.insert_new("programs", pd.DataFrame(programs), "program_id") if programs else 0
        healed = [r["gen_key"] for r in programs] if healed is None else healed
        if healed:
            self.con.register("_pad_healed", pd.DataFrame({"gen_key": healed}))
            try:
                self.con.execute("DELETE FROM generation_failures WHERE gen_key IN (SELECT gen_key FROM _pad_healed)")
            finally:
                self.con.unregister("_pad_healed")
        if failures:
            skip = ("WHERE NOT EXISTS (SELECT 1 FROM generation_failures g WHERE g.gen_key = f.gen_key "
                    "AND g.error IS NOT DISTINCT FROM f.error) "
                    "AND NOT EXISTS (SELECT 1 FROM programs p WHERE p.gen_key = f.gen_key)") if replay else ""
            self.con.register("_pad_fail", pd.DataFrame(failures))
            try:
                self.con.execute("INSERT INTO generation_failures (gen_key, problem_id, sample_idx, model, error, "
                                 "attempts) SELECT gen_key, problem_id, sample_idx, model, error, attempts "
                                 f"FROM _pad_fail f {skip}")
            finally:
                self.con.unregister("_pad_fail")
        return added

    @property
    def journal_path(self) -> Path:
        """Where responses that could not be committed wait for the next run: ``<store>.journal.jsonl``."""
        return self.path.with_name(self.path.name + ".journal.jsonl")

    def append_journal(self, items: list[tuple[str, list[dict]]]) -> int:
        """Append ``(kind, rows)`` items (kind ``ok``: programs rows, ``fail``: generation_failures
        rows) to the journal, one JSON line each, in one write, and fsync it (and, when it is
        new, its folder). Returns the rows written."""
        path = self.journal_path
        new = not path.exists()
        data = "".join(json.dumps({"kind": kind, "rows": rows}, default=str) + "\n" for kind, rows in items)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data.encode("utf-8"))
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(path.parent)
        return sum(len(rows) for _, rows in items)

    def replay_journal(self) -> int:
        """Store the responses waiting in the journal (in one transaction) and then remove it.

        A last line cut short by a crash while it was written is ignored (it was never fsync'd
        whole); any other unreadable line is an error that leaves the journal in place. Rows
        stored already are skipped, so a journal replayed twice adds nothing. Returns the
        programs added."""
        path = self.journal_path
        if not path.exists():
            return 0
        lines = path.read_text(encoding="utf-8").split("\n")
        programs, failures = [], []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                kind, rows = entry["kind"], entry["rows"]
                if kind not in ("ok", "fail") or not isinstance(rows, list):
                    raise ValueError(f"unknown entry kind {kind!r}")
            except (ValueError, KeyError, TypeError) as exc:
                if n == len(lines):  # no newline after it: torn by a crash mid-write
                    break
                raise StoreError(f"{path}:{n}: unreadable journal entry ({exc}); "
                                 "fix or move the file to open the store") from None
            (programs if kind == "ok" else failures).extend(rows)
        try:
            with self.transaction():
                added = self.add_generated(programs, failures, replay=True)
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: could not store the {len(programs) + len(failures)} responses "
                             f"waiting in {path}: {str(exc).strip().splitlines()[0]} (they stay there)") from None
        path.unlink()
        _fsync_dir(path.parent)
        return added

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

    def add_eval_items(self, items: list[dict], programs: list[dict], executions: list[dict]) -> None:
        """Store a batch of evaluated problems with their programs and executions, in one
        transaction (a problem is evaluated whole or not at all)."""
        from .execute import insert_executions

        with self.transaction():
            if programs:
                self.insert_new("programs", pd.DataFrame(programs), "program_id")
            if executions:
                insert_executions(self, executions)
            if items:
                df = pd.DataFrame(items)
                cols = ", ".join(df.columns)
                self.con.register("_pad_items", df)
                try:
                    self.con.execute(f"INSERT INTO eval_items ({cols}) SELECT {cols} FROM _pad_items")
                finally:
                    self.con.unregister("_pad_items")

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
        try:
            statements = self.con.extract_statements(query)
        except duckdb.Error as exc:
            raise ValueError(str(exc).strip().splitlines()[0]) from None
        if not statements:
            raise ValueError("empty query")
        for st in statements:
            kind = st.type.name
            if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: that one must read only, too
                inner = re.sub(r"^\s*explain\s+(analy[sz]e\s+)?", "", st.query, flags=re.IGNORECASE)
                kinds = {s.type.name for s in self.con.extract_statements(inner)} if inner != st.query else {"?"}
                kind = "SELECT" if kinds == {"SELECT"} else "EXPLAIN " + "/".join(sorted(kinds - {"SELECT"}))
            if kind not in READ_STATEMENTS:
                raise ValueError(f"pad sql is read-only: {kind} statements are not allowed "
                                 f"(only {', '.join(READ_STATEMENT_WORDS)})")
        if self.read_only and not self._locked:
            self.con.execute("SET autoinstall_known_extensions = false")
            if not read_files:
                self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
            self._locked = True
        try:
            return self.con.execute(query).df()
        except duckdb.Error as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "disabled by configuration" in msg:
                raise ValueError(f"{msg} (pad sql reads files only with --read-files)") from None
            raise

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.close()
        except duckdb.Error:
            if exc[0] is None:
                raise  # else the error that ended the block is the one to report


def _fsync_dir(folder: Path) -> None:
    """Make a file's creation or removal in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'schema_version'").fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
