"""The schema's history: each migration brings a store from version i to i + 1.

A released migration is never edited (stores in the field were made by it): a change to the
schema is a new migration appended to :data:`MIGRATIONS`.
"""

from __future__ import annotations

import duckdb

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
    # Neither has an index: a bulk verdict is a few set-based statements, and ART upkeep would
    # be most of their time. Snapshots keep the verdict a program had.
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
    # `curations` keys. The key's index is held in memory by every later snapshot's commit,
    # growing with every snapshot kept.
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
    # and program_labels. The key's index made every bulk write of programs about twice as slow,
    # and a writer loads all of it into memory.
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
    # v17: a snapshot row says where its answer came from: gold_source ('gold': the problem's real
    # gold; 'consensus': `pad vote`'s majority, with its agreement share) as it was when the
    # snapshot was made, so an export says which answers are facts and which are votes.
    # Snapshots made before: a problem with a real gold now had it then (a gold is never erased);
    # an answer on a problem without one can only have been a consensus (its agreement kept
    # when the consensus still gives that answer).
    [
        *[stmt for table in ("curated_examples", "refine_examples") for stmt in (
            f"ALTER TABLE {table} ADD COLUMN gold_source VARCHAR",
            f"ALTER TABLE {table} ADD COLUMN agreement DOUBLE",
            f"""UPDATE {table} t SET gold_source = CASE
                    WHEN pr.answer IS NOT NULL OR trim(coalesce(pr.answer_text, '')) <> '' THEN 'gold'
                    WHEN t.answer IS NOT NULL OR trim(coalesce(t.answer_text, '')) <> '' THEN 'consensus' END,
                agreement = CASE WHEN pr.answer IS NULL AND trim(coalesce(pr.answer_text, '')) = ''
                                  AND c.answer_text = t.answer_text THEN c.agreement END
                FROM problems pr LEFT JOIN consensus c USING (problem_id)
                WHERE pr.problem_id = t.problem_id""")],
    ],
    # v18: multiple-choice golds (AQuA): a problem keeps its options (texts, lettered A, B, ... in
    # order) and, when its gold was a choice letter, that letter; answer/answer_text are then the
    # gold option's value, and a program naming the letter is correct too (labels.label_for).
    [
        "ALTER TABLE problems ADD COLUMN choice VARCHAR",
        "ALTER TABLE problems ADD COLUMN options VARCHAR[]",
    ],
    # v19: reinforcement-learning rollouts (origin 'rollout', written by pad_train.rewards): the
    # training run that sampled the program, its step, and the reward the program earned there.
    [
        "ALTER TABLE programs ADD COLUMN train_run_id VARCHAR",
        "ALTER TABLE programs ADD COLUMN train_step INTEGER",
        "ALTER TABLE programs ADD COLUMN reward DOUBLE",
    ],
    # v20: preambles (`--preamble FILE`): code run before each program in its namespace (imports,
    # helpers its source pipeline provided), stored once under its content hash like prompts. A
    # program records the preamble it was imported with (part of its id), an execution the one
    # it ran with, so a label says what it ran with.
    [
        """CREATE TABLE preambles (
            preamble_id VARCHAR PRIMARY KEY,
            name VARCHAR,
            text VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp)""",
        "ALTER TABLE programs ADD COLUMN preamble_id VARCHAR",
        "ALTER TABLE executions ADD COLUMN preamble_id VARCHAR",
    ],
    # v21: a snapshot row keeps the preamble its program's label ran after (a refinement pair's two
    # programs share it), so an export can ship the code the program needs. Snapshots made before:
    # the preamble of the program's current execution, else the one it was imported with.
    [
        *[stmt for table in ("curated_examples", "refine_examples") for stmt in (
            f"ALTER TABLE {table} ADD COLUMN preamble_id VARCHAR",
            f"""UPDATE {table} t SET preamble_id = s.preamble_id
                FROM (SELECT p.program_id, coalesce(e.preamble_id, p.preamble_id) AS preamble_id
                      FROM programs p LEFT JOIN program_labels l USING (program_id)
                      LEFT JOIN executions e ON e.seq = l.seq) s
                WHERE s.program_id = t.program_id AND s.preamble_id IS NOT NULL""")],
    ],
    # v22: an undone verdict stays in the history: undo (Store.undo_verdicts) marks its reviews
    # rows with undone_at instead of deleting them, and current_reviews, which curation and the
    # review queue read, holds only verdicts that are not undone.
    [
        "ALTER TABLE reviews ADD COLUMN undone_at TIMESTAMP",
    ],
]


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version of the store ``con`` holds (0: an empty file)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'schema_version'").fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]


def apply_migrations(con: duckdb.DuckDBPyConnection, current: int, target: int) -> None:
    """Run the migrations from version ``current`` to ``target``, recording each (the caller owns
    the transaction)."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)")
    for version in range(current + 1, target + 1):
        for stmt in MIGRATIONS[version - 1]:
            con.execute(stmt)
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
