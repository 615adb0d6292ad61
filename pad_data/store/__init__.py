"""The DuckDB store: one file, the single source of truth, with a versioned schema.

``Store(path)`` opens (creating or upgrading) the file. Every stage writes through
``store.transaction()`` so a batch is committed whole or not at all. IDs are content
hashes (``problem_id``, ``program_id``), and inserts skip rows that already exist, so
re-running any stage never duplicates rows.

A live store: DuckDB lets one process write a file, and no other process open it meanwhile,
not even to read. So a long stage holds the file only while it commits: it hands its rows
to a :class:`~pad_data.store.writer.GroupCommitter`, which opens the store, writes about a second
of work, commits and closes it (:meth:`Store.release`). Whoever finds the store held (a
reader, or a stage wanting to commit) waits and retries (:func:`connect`) for up to
``$PAD_BUSY_TIMEOUT`` seconds (default 10) before saying "the store is busy".

Labels: ``executions`` keeps every execution ever stored (``seq`` numbers them in the order
they were stored); ``program_labels`` holds each executed program's current one (its ``seq``,
label, status and error type, with the program's dataset, origin and teacher), written in
the same transaction by :meth:`Store.add_executions`, the one insert every engine uses. Label
counts read ``program_labels`` alone; ``labeled_programs`` joins it to the programs. A gold
answer that changes relabels the stored executions (:func:`pad_data.rules.labels.relabel`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import duckdb

if TYPE_CHECKING:  # pandas is imported where a frame is made: `pad sql` and `pad stats` start without it
    import pandas as pd
    import pyarrow as pa

from pad_data.rules.labels import MATCH_SQL
from pad_data.rules.options import memory_limit, size_bytes
from pad_data.store.paths import DEFAULT_DB, resolve_path  # noqa: F401 - where they were first

ORIGINS = ("teacher", "import", "injected", "student", "human")
BUSY_TIMEOUT_S = 10.0  # how long an open waits for another process to let go of the store


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
    # v9: each program's current execution kept materialized (no window over every execution):
    # program_labels has one row per executed program, written with its execution by
    # Store.add_executions. The index on executions.program_id served the window; it goes.
    [
        """CREATE TABLE program_labels (
            program_id VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            origin VARCHAR NOT NULL,
            teacher VARCHAR,
            seq BIGINT NOT NULL,
            label VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            error_type VARCHAR,
            duration_ms DOUBLE)""",
        """INSERT INTO program_labels
           SELECT p.program_id, p.problem_id, pr.dataset, p.origin, p.teacher, e.seq, e.label, e.status,
                  e.error_type, e.duration_ms
           FROM (SELECT * FROM executions
                 QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY seq DESC) = 1) e
           JOIN programs p USING (program_id) JOIN problems pr USING (problem_id)
           ORDER BY p.program_id""",
        "DROP INDEX IF EXISTS executions_program",
    ],
    # v10: consensus answers (pad vote) for problems without gold
    [
        """CREATE TABLE consensus (
            problem_id VARCHAR PRIMARY KEY,
            answer DOUBLE NOT NULL,
            answer_text VARCHAR NOT NULL,
            votes INTEGER NOT NULL,
            voters INTEGER NOT NULL,
            agreement DOUBLE NOT NULL,
            min_votes INTEGER NOT NULL,
            voted_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    ],
    # v11: pad synthesize: every reply of the teacher (accepted as a new problem or rejected), by cache key
    [
        """CREATE TABLE synth_requests (
            synth_key VARCHAR PRIMARY KEY,
            dataset VARCHAR NOT NULL,
            seed_dataset VARCHAR NOT NULL,
            request_idx INTEGER NOT NULL,
            model VARCHAR NOT NULL,
            prompt_id VARCHAR NOT NULL,
            seed_problem_ids VARCHAR[] NOT NULL,
            completion VARCHAR,
            question VARCHAR,
            outcome VARCHAR NOT NULL,
            similar_to VARCHAR,
            problem_id VARCHAR,
            prompt_tokens DOUBLE,
            completion_tokens DOUBLE,
            cost_usd DOUBLE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
    ],
    # v12: pad generate --batch: Batch API jobs (ids committed as soon as known) and their requests
    [
        """CREATE TABLE batch_jobs (
            job_id VARCHAR PRIMARY KEY,
            model VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            prompt_id VARCHAR NOT NULL,
            temperature DOUBLE NOT NULL,
            max_tokens INTEGER NOT NULL,
            status VARCHAR NOT NULL,
            requests INTEGER NOT NULL,
            samples INTEGER NOT NULL,
            input_file_id VARCHAR,
            batch_id VARCHAR,
            output_file_id VARCHAR,
            error_file_id VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            submitted_at TIMESTAMP,
            finished_at TIMESTAMP,
            ingested_at TIMESTAMP)""",
        """CREATE TABLE batch_requests (
            job_id VARCHAR NOT NULL,
            custom_id VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            sample_idxs INTEGER[] NOT NULL,
            gen_keys VARCHAR[] NOT NULL,
            PRIMARY KEY (job_id, custom_id))""",
    ],
    # v13: `pad-train eval` commits as it goes and resumes: one row per evaluated problem of a run
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
    # v14: one current verdict per program and reviewer: reviews stays the append-only history
    # (bulk verdicts share a batch_id); current_reviews, written in the same transaction by
    # Store.add_verdicts, the one write path, holds each reviewer's latest (reviewer '' for none).
    # Neither has an index: a bulk verdict of 100k programs is a few set-based statements, and
    # ART upkeep would be most of its time. Snapshots keep the verdict a program had.
    [
        """CREATE TABLE reviews_v14 (
            review_id VARCHAR NOT NULL,
            program_id VARCHAR NOT NULL,
            verdict VARCHAR NOT NULL,
            note VARCHAR,
            reviewer VARCHAR,
            reviewed_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            batch_id VARCHAR)""",
        """INSERT INTO reviews_v14 SELECT review_id, program_id, verdict, note, reviewer, reviewed_at, NULL
           FROM reviews ORDER BY rowid""",
        "DROP TABLE reviews",
        "ALTER TABLE reviews_v14 RENAME TO reviews",
        """CREATE TABLE current_reviews (
            program_id VARCHAR NOT NULL,
            reviewer VARCHAR NOT NULL,
            verdict VARCHAR NOT NULL,
            note VARCHAR,
            review_id VARCHAR NOT NULL,
            reviewed_at TIMESTAMP NOT NULL)""",
        """INSERT INTO current_reviews
           SELECT program_id, coalesce(reviewer, ''), verdict, note, review_id, reviewed_at FROM reviews
           QUALIFY row_number() OVER (PARTITION BY program_id, coalesce(reviewer, '')
                                      ORDER BY reviewed_at DESC, rowid DESC) = 1""",
        "ALTER TABLE curated_examples ADD COLUMN verdict VARCHAR",
        "ALTER TABLE refine_examples ADD COLUMN verdict VARCHAR",
    ],
    # v15: snapshot rows without a primary key. A snapshot is written once, as an append of rows
    # that are one per program (per faulty program for refine) by construction, under a name
    # `curations` keys. The key's index cost ~190 bytes a row held in memory by every later
    # snapshot's commit: ~1 GB at a TinyGSM-size snapshot, and growing with every snapshot kept.
    [
        """CREATE TABLE curated_examples_v15 (
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
            verdict VARCHAR)""",
        "INSERT INTO curated_examples_v15 SELECT * FROM curated_examples ORDER BY rowid",
        "DROP TABLE curated_examples",
        "ALTER TABLE curated_examples_v15 RENAME TO curated_examples",
        """CREATE TABLE refine_examples_v15 (
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
            verdict VARCHAR)""",
        "INSERT INTO refine_examples_v15 SELECT * FROM refine_examples ORDER BY rowid",
        "DROP TABLE refine_examples",
        "ALTER TABLE refine_examples_v15 RENAME TO refine_examples",
    ],
    # v16: programs without a primary key. program_id is a content hash and every insert goes
    # through the store's one rule, an anti-join (:meth:`Store.insert_rows`), as for executions
    # and program_labels. The key's index made every bulk write of programs ~2x slower (a bare
    # copy of 1M programs: 4.7-5.7 s vs 2.1-2.4 s; the 10M import's write: 95 s vs 44 s), and a
    # writer loads all of it into memory.
    # Row order (rowid) is kept; the two lookup indexes are rebuilt.
    [
        """CREATE TABLE programs_v16 (
            program_id VARCHAR NOT NULL,
            problem_id VARCHAR NOT NULL,
            origin VARCHAR NOT NULL,
            teacher VARCHAR,
            sample_idx INTEGER NOT NULL DEFAULT 0,
            program VARCHAR NOT NULL,
            completion VARCHAR,
            parent_program_id VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            prompt_id VARCHAR,
            gen_key VARCHAR,
            prompt_tokens DOUBLE,
            completion_tokens DOUBLE,
            cost_usd DOUBLE,
            eval_run_id VARCHAR,
            injection_kind VARCHAR,
            refine_round INTEGER)""",
        "INSERT INTO programs_v16 SELECT * FROM programs ORDER BY rowid",
        "DROP TABLE programs",
        "ALTER TABLE programs_v16 RENAME TO programs",
        "CREATE INDEX programs_problem ON programs (problem_id)",
        "CREATE INDEX programs_gen_key ON programs (gen_key)",
    ],
]

# A problem's gold: its real gold answer (number or text) when it has one, else the consensus
# of `pad vote` (gold_source 'consensus', with its agreement share). An execution labeled
# 'unverifiable' (no gold when it ran) is labeled against the consensus by the rule of
# labels.label_for for a numeric gold: labels.numbers_match (as MATCH_SQL), non_numeric when the result is
# not a number, wrong_answer for an int too large for a double. `pad vote` writes the same
# labels into program_labels: CONSENSUS_LABEL is the one rule for both ({e}: the execution,
# {answer}: the consensus answer).
CONSENSUS_LABEL = f"""CASE WHEN {{e}}.value_num IS NULL THEN
                 CASE WHEN {{e}}.value_type = 'int' THEN 'wrong_answer' ELSE 'non_numeric' END
             WHEN {MATCH_SQL.format(v='{e}.value_num', g='{answer}')} THEN 'correct'
             ELSE 'wrong_answer' END"""

LABELED_VIEW = f"""CREATE OR REPLACE VIEW labeled_programs AS
WITH gold AS (
    SELECT pr.problem_id,
           CASE WHEN pr.answer IS NOT NULL OR trim(coalesce(pr.answer_text, '')) <> '' THEN 'gold'
                WHEN c.problem_id IS NOT NULL THEN 'consensus' END AS gold_source,
           c.answer AS consensus, c.answer_text AS consensus_text, c.agreement
    FROM problems pr LEFT JOIN consensus c USING (problem_id))
SELECT p.program_id, p.problem_id, pr.dataset, pr.split, pr.question,
       CASE WHEN g.gold_source = 'consensus' THEN g.consensus ELSE pr.answer END AS gold,
       CASE WHEN g.gold_source = 'consensus' THEN g.consensus_text ELSE pr.answer_text END AS gold_text,
       p.origin, p.teacher, p.sample_idx, p.program, p.parent_program_id,
       CASE WHEN g.gold_source = 'consensus' AND e.label = 'unverifiable'
            THEN {CONSENSUS_LABEL.format(e='e', answer='g.consensus')}
            ELSE l.label END AS label,
       l.status, e.value, e.value_num, e.value_type, l.error_type,
       e.error_message, e.error_line, e.stdout, l.duration_ms, e.timeout_s, e.memory_mb,
       e.executor, e.executed_at, p.injection_kind, p.refine_round, l.seq AS execution_seq,
       g.gold_source, CASE WHEN g.gold_source = 'consensus' THEN g.agreement END AS agreement
FROM programs p
JOIN problems pr USING (problem_id)
JOIN gold g USING (problem_id)
LEFT JOIN program_labels l USING (program_id)
LEFT JOIN executions e ON e.seq = l.seq"""

# loud: raised, did not compile, timed out...; silent: ran to the end but the answer is wrong (or None);
# unchanged: still correct
INJECTION_VIEW = """CREATE OR REPLACE VIEW injection_outcomes AS
SELECT program_id, parent_program_id, problem_id, dataset, injection_kind, label, status, error_type,
       CASE WHEN label IS NULL THEN NULL WHEN label = 'correct' THEN 'unchanged'
            WHEN status IN ('ok', 'no_answer') THEN 'silent' ELSE 'loud' END AS outcome
FROM labeled_programs WHERE origin = 'injected'"""
# a program's verdict over its reviewers' current ones: the strictest (reject, then needs-fix, then accept)
VERDICT_VIEW = """CREATE OR REPLACE VIEW program_verdicts AS
SELECT program_id,
       CASE WHEN bool_or(verdict = 'reject') THEN 'reject' WHEN bool_or(verdict = 'needs-fix') THEN 'needs-fix'
            ELSE 'accept' END AS verdict,
       count(*) AS reviewers, max(reviewed_at) AS reviewed_at
FROM current_reviews GROUP BY program_id"""
VIEWS = (LABELED_VIEW, INJECTION_VIEW, VERDICT_VIEW)

SCHEMA_VERSION = len(MIGRATIONS)
# what an engine stores per result: the executions columns, then the program's context
RESULT_TYPES = {"program_id": "VARCHAR", "status": "VARCHAR", "label": "VARCHAR", "value": "VARCHAR",
                "value_num": "DOUBLE", "value_type": "VARCHAR", "error_type": "VARCHAR", "error_message": "VARCHAR",
                "error_line": "INTEGER", "stdout": "VARCHAR", "duration_ms": "DOUBLE", "timeout_s": "DOUBLE",
                "memory_mb": "INTEGER", "executor": "VARCHAR", "executed_at": "TIMESTAMP",
                "problem_id": "VARCHAR", "dataset": "VARCHAR", "origin": "VARCHAR", "teacher": "VARCHAR",
                "prev_seq": "BIGINT"}
RESULT_COLUMNS = list(RESULT_TYPES)
EXEC_COLUMNS = RESULT_COLUMNS[:RESULT_COLUMNS.index("problem_id")]
CONTEXT_COLUMNS = RESULT_COLUMNS[len(EXEC_COLUMNS):]
LABEL_COLUMNS = ["program_id", "problem_id", "dataset", "origin", "teacher", "seq", "label", "status",
                 "error_type", "duration_ms"]
PENDING_BATCH = 50_000  # rows per batch streamed by pending_snapshot()
# a program to execute, as pending_snapshot() copies it
PENDING_COLUMNS = ["program_id", "program", "gold", "gold_text", "problem_id", "dataset", "origin", "teacher",
                   "prev_seq"]
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


def busy_timeout() -> float:
    """Seconds an open waits for a store another process holds: ``$PAD_BUSY_TIMEOUT``, else 10."""
    raw = os.environ.get("PAD_BUSY_TIMEOUT")
    try:
        return max(0.0, float(raw)) if raw else BUSY_TIMEOUT_S
    except ValueError:
        raise StoreError(f"PAD_BUSY_TIMEOUT must be a number of seconds, got {raw!r}") from None


def connect(path: str | os.PathLike, read_only: bool = False, wait: float | None = None,
            config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying every few milliseconds while another process holds the
    file (a stage committing, or a reader), for up to ``wait`` seconds [default:
    :func:`busy_timeout`]; then a StoreError "the store is busy"."""
    wait = busy_timeout() if wait is None else wait
    deadline = time.monotonic() + wait
    pause = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            msg = str(exc).splitlines()[0]
            if "lock" not in msg.lower():
                raise StoreError(f"{path}: cannot open store: {msg}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreError(f"{path}: the store is busy (another process held it for {wait:g} s); "
                                 "try again, or wait longer with PAD_BUSY_TIMEOUT=SECONDS") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.02)
        except duckdb.Error as exc:
            raise StoreError(f"{path}: not a pad store: {str(exc).splitlines()[0]}") from None


class Store:
    """An open pad store. Use as a context manager, or call ``close()``.

    ``wait``: seconds to wait for the store when another process holds it [default:
    ``$PAD_BUSY_TIMEOUT`` or 10]. After :meth:`release` the connection is reopened (waiting
    the same way) the next time ``con`` is used.

    ``memory``: the memory budget of this store's DuckDB work (:func:`pad_data.rules.options.memory_limit`:
    ``--memory-limit``, ``$PAD_MEMORY_LIMIT``, or half the RAM), ``self.memory`` in bytes. The
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
    def share(self, fraction: float, at_most: str | None = None) -> str:
        """``fraction`` of :attr:`memory` (at most ``at_most``), as a DuckDB ``memory_limit``: what
        one of several connections a stage keeps open at once may use."""
        n = int(self.memory * fraction)
        return f"{min(n, size_bytes(at_most)) if at_most else n}B"

    @contextlib.contextmanager
    def capped(self, memory: str | None = None, ordered: bool = True) -> Iterator[None]:
        """DuckDB's memory capped at ``memory`` (never above :attr:`memory`, the budget; None: the
        budget) meanwhile; afterwards the enclosing cap, or the budget. DuckDB caches the blocks
        it reads and writes up to its cap, so a bulk copy's memory grows with the copy up to it;
        beyond it, joins, sorts and windows spill to disk (see :meth:`problem_ranges` for the
        queries that cannot). ``ordered=False``: results may come in any order (DuckDB then
        buffers less). Inside a transaction an error aborted, the settings are restored after
        its ROLLBACK, and that error is the one raised."""
        memory = f"{min(size_bytes(memory), self.memory) if memory else self.memory}B"
        self._caps.append((memory, ordered))
        try:
            self._settings(memory, ordered)
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

    def problem_ranges(self, share: float = 1 / 8) -> list[str]:
        """Conditions on ``problem_id`` that split the programs into ranges (every id in exactly
        one, in order) holding about ``share`` of the budget each, counting each program's text
        and ~200 bytes of other columns.

        Why: a query over ``labeled_programs`` is one pipeline probing several hash joins at
        once (programs with their problems and gold, then ``program_labels``, then
        ``executions``), and DuckDB's join hash tables, each sized to fit the memory it sees,
        are not aware of each other: over a 1M-program store such a query failed under 1 GB
        and 512 MB caps ("failed to pin block") yet passed under 128 MB, spilling. Run range by
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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Commit everything done inside, or nothing (also on Ctrl-C)."""
        con = self.con
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

    def scalar(self, query: str, params: list | None = None):
        """The single value a query returns (fully fetched, as DuckDB 2 requires)."""
        rows = self.con.execute(query, params or []).fetchall()
        return rows[0][0] if rows else None

    def df(self, query: str, params: list | None = None) -> pd.DataFrame:
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
            source, cols = rows, ", ".join(r[0] for r in self.con.execute(f"DESCRIBE {rows}").fetchall())
        elif len(rows) == 0:
            return 0
        else:
            names = rows.schema.names if hasattr(rows, "schema") else list(rows.columns)  # Arrow or pandas
            source, cols = "_pad_new_rows", ", ".join(map(str, names))
            self.con.register(source, rows)
        try:
            return self.con.execute(
                f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source} n "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = n.{key})").fetchall()[0][0]
        finally:
            if source == "_pad_new_rows":
                self.con.unregister(source)

    def append(self, table: str, df: pd.DataFrame) -> int:
        """Insert every row of ``df`` into ``table`` (its columns by name); returns rows added."""
        if df.empty:
            return 0
        cols = ", ".join(df.columns)
        self.con.register("_pad_append_rows", df)
        try:
            return self.con.execute(f"INSERT INTO {table} ({cols}) "
                                    f"SELECT {cols} FROM _pad_append_rows").fetchall()[0][0]
        finally:
            self.con.unregister("_pad_append_rows")

    def update_gold(self, rows: pd.DataFrame | str, apply: bool = True) -> list[str]:
        """Problems of ``rows`` (rows of ``problems``: a DataFrame, or a table this connection
        reads, as for :meth:`insert_rows`) already stored with another gold answer or answer
        text; with ``apply``, their answer, answer_text (and rationale, when ``rows`` has one) are
        replaced. A row with no gold at all never replaces a stored one. Returns the problem_ids
        that differ. The caller owns the transaction."""
        if isinstance(rows, str):
            source = rows
        elif rows.empty:
            return []
        else:
            source = "_pad_gold"
            self.con.register(source, rows[["problem_id", "answer", "answer_text", "rationale"]])
        try:
            ids = [r[0] for r in self.con.execute(
                f"SELECT p.problem_id FROM problems p JOIN {source} n USING (problem_id) "
                "WHERE (n.answer IS NOT NULL OR n.answer_text IS NOT NULL) "
                "AND (p.answer IS DISTINCT FROM n.answer OR p.answer_text IS DISTINCT FROM n.answer_text) "
                "ORDER BY 1").fetchall()]
            if apply and ids:
                self.con.execute(
                    "UPDATE problems SET answer = n.answer, answer_text = n.answer_text, "
                    f"rationale = coalesce(n.rationale, problems.rationale) FROM {source} n "
                    "WHERE problems.problem_id = n.problem_id AND (n.answer IS NOT NULL OR n.answer_text IS NOT NULL) "
                    "AND (problems.answer IS DISTINCT FROM n.answer OR problems.answer_text IS DISTINCT FROM n.answer_text)")
        finally:
            if source == "_pad_gold":
                self.con.unregister(source)
        return ids

    # ------------------------------------------------------------------ executions
    def pending_query(self, dataset: str | None = None, origin: str | None = None,
                      rerun: bool = False) -> tuple[str, list]:
        """``(SELECT, params)`` of the programs to execute (of ``dataset``/``origin`` when given):
        those with no execution yet, or with ``rerun`` all of them; columns
        :data:`PENDING_COLUMNS` (``prev_seq``: the program's current execution, which a result
        must still find to be stored, see :meth:`add_executions`)."""
        where, params = [], []
        if dataset:
            where.append("pr.dataset = ?")
            params.append(dataset)
        if origin:
            where.append("p.origin = ?")
            params.append(origin)
        if not rerun:
            where.append("l.seq IS NULL")
        return (f"SELECT p.program_id, p.program, pr.answer AS gold, pr.answer_text AS gold_text, p.problem_id, "
                f"pr.dataset, p.origin, p.teacher, l.seq AS prev_seq FROM programs p "
                f"JOIN problems pr USING (problem_id) LEFT JOIN program_labels l USING (program_id) "
                f"WHERE {' AND '.join(where) or 'TRUE'}", params)

    def pending_snapshot(self, path: str | os.PathLike, dataset: str | None = None, origin: str | None = None,
                         rerun: bool = False, limit: int | None = None) -> int:
        """Copy the programs to execute (:meth:`pending_query`'s rows; with ``limit``, the first
        ``limit`` by ``program_id``) into table ``pending`` of a new DuckDB file ``path``,
        streamed, with this store's memory capped. A stage then reads them from there without
        the store: one pass over the store whatever its size, where pages read from the store
        each joined every program (4.8 s a page at 10M programs). Returns how many."""
        query, params = self.pending_query(dataset, origin, rerun)
        if limit is not None:
            query = f"SELECT * FROM ({query}) ORDER BY program_id LIMIT {int(limit)}"
        con = duckdb.connect(str(path), config={"memory_limit": "256MB"})
        try:
            with self.capped("1GB", ordered=limit is not None):
                copy_into(con, "pending", self.con.sql(query, params=params).to_arrow_reader(PENDING_BATCH))
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
        con = self.con
        if isinstance(results, (str, list)):
            paths = [results] if isinstance(results, str) else results
            if not paths:
                return {}
            source = "read_parquet([" + ", ".join(sql_literal(str(x)) for x in paths) + "], union_by_name = true)"
        else:
            if len(results) == 0:
                return {}
            con.register("_pad_results", results)
            source = "_pad_results"
        try:
            have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            missing = [c for c in EXEC_COLUMNS if c not in have and c != "error_line"]
            if missing:
                raise ValueError(f"execution results lack column(s) {', '.join(missing)}")
            cols = ", ".join(f"CAST({'r.' + c if c in have else 'NULL'} AS {t}) AS {c}"
                             for c, t in RESULT_TYPES.items())
            # one result per program (the one executed last), then the rule
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _pad_new AS
                SELECT nextval('executions_seq') AS seq, n.* FROM (
                    SELECT {cols} FROM {source} r
                    QUALIFY row_number() OVER (PARTITION BY r.program_id ORDER BY r.executed_at DESC) = 1) n
                LEFT JOIN program_labels l USING (program_id)
                WHERE l.seq IS NOT DISTINCT FROM n.prev_seq
                ORDER BY n.program_id""")
        finally:
            if source == "_pad_results":
                con.unregister("_pad_results")
        try:
            if con.execute("SELECT count(*) FROM _pad_new WHERE dataset IS NULL OR problem_id IS NULL "
                           "OR origin IS NULL").fetchall()[0][0]:
                con.execute("""UPDATE _pad_new SET problem_id = p.problem_id, dataset = pr.dataset,
                                      origin = p.origin, teacher = p.teacher
                               FROM programs p JOIN problems pr USING (problem_id)
                               WHERE _pad_new.program_id = p.program_id""")
                orphans = con.execute("SELECT program_id FROM _pad_new WHERE dataset IS NULL LIMIT 1").fetchall()
                if orphans:
                    raise ValueError(f"execution result for program {orphans[0][0]}, which the store does not hold")
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
    # ------------------------------------------------------------------ reviews
    def add_verdicts(self, programs: str, params: list | None, verdict: str, note: str | None,
                     reviewer: str | None) -> int:
        """Give every program ``programs`` selects (a query with a ``program_id`` column) the
        verdict and note of ``reviewer``, set-based: a ``reviews`` row each (the history; one
        ``batch_id`` for the lot) and the reviewer's current verdict in ``current_reviews``
        (replaced). The one way verdicts are stored. Returns the programs given a verdict. The
        caller owns the transaction."""
        con = self.con
        values = {"batch": uuid.uuid4().hex[:16], "verdict": verdict, "note": note, "reviewer": reviewer,
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
        return self._read(query, read_files).df()

    def read_rows(self, query: str, read_files: bool = False,
                  limit: int | None = None) -> tuple[list[str], list[tuple]]:
        """:meth:`read_query` as ``(column names, rows)``, with no pandas (what `pad sql` prints);
        at most ``limit`` rows, if given."""
        cur = self._read(query, read_files)
        rows = cur.fetchall() if limit is None else cur.fetchmany(limit)
        return [d[0] for d in cur.description or []], rows

    def _read(self, query: str, read_files: bool) -> duckdb.DuckDBPyConnection:
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
            return self.con.execute(query)
        except duckdb.Error as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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


def _fsync_dir(folder: Path) -> None:
    """Make a file's creation or removal in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_into(con: duckdb.DuckDBPyConnection, table: str, reader: pa.RecordBatchReader, append: bool = False) -> None:
    """Create ``table`` in ``con`` (``append``: append to it) with the batches of ``reader`` (one
    at a time in memory): how rows stream from the store into a scratch database."""
    if not append:
        con.register("_pad_batch", reader.schema.empty_table())
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM _pad_batch")
    for batch in reader:
        con.register("_pad_batch", batch)
        con.execute(f"INSERT INTO {table} SELECT * FROM _pad_batch")
    con.unregister("_pad_batch")


def sql_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'schema_version'").fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
