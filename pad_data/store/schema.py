"""The current schema: its version, the views over its tables, and the columns stages exchange.

The tables are made by :mod:`pad_data.store.migrations`; the views here describe the newest
version and are created again whenever a store is upgraded to it.
"""

from __future__ import annotations

from pad_data.rules.labels import MATCH_SQL
from pad_data.store.migrations import MIGRATIONS

SCHEMA_VERSION = len(MIGRATIONS)
ORIGINS = ("teacher", "import", "injected", "student", "human", "rollout")

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
       g.gold_source, CASE WHEN g.gold_source = 'consensus' THEN g.agreement END AS agreement,
       CASE WHEN g.gold_source = 'gold' THEN pr.choice END AS gold_choice,
       coalesce(e.preamble_id, p.preamble_id) AS preamble_id
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

# what an engine stores per result: the executions columns, then the program's context
RESULT_TYPES = {"program_id": "VARCHAR", "status": "VARCHAR", "label": "VARCHAR", "value": "VARCHAR",
                "value_num": "DOUBLE", "value_type": "VARCHAR", "error_type": "VARCHAR", "error_message": "VARCHAR",
                "error_line": "INTEGER", "stdout": "VARCHAR", "duration_ms": "DOUBLE", "timeout_s": "DOUBLE",
                "memory_mb": "INTEGER", "executor": "VARCHAR", "executed_at": "TIMESTAMP", "preamble_id": "VARCHAR",
                "problem_id": "VARCHAR", "dataset": "VARCHAR", "origin": "VARCHAR", "teacher": "VARCHAR",
                "prev_seq": "BIGINT"}
RESULT_COLUMNS = list(RESULT_TYPES)
EXEC_COLUMNS = RESULT_COLUMNS[:RESULT_COLUMNS.index("problem_id")]
CONTEXT_COLUMNS = RESULT_COLUMNS[len(EXEC_COLUMNS):]
LABEL_COLUMNS = ["program_id", "problem_id", "dataset", "origin", "teacher", "seq", "label", "status",
                 "error_type", "duration_ms"]
# a sample the teacher did not answer (a generation_failures row)
FAILURE_COLUMNS = ["gen_key", "problem_id", "sample_idx", "model", "error", "attempts"]
# a program to execute, as pending_snapshot() copies it
PENDING_COLUMNS = ["program_id", "program", "gold", "gold_text", "problem_id", "dataset", "origin", "teacher",
                   "prev_seq", "gold_choice", "preamble_id", "preamble"]
