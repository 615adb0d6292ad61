"""Content ids: every problem and program is named by a hash of what it is, so storing it
twice is storing it once."""

from __future__ import annotations

import hashlib

from pad_data.rules.answers_sql import PY_WHITESPACE, re2_class, ws_class
from pad_data.store.sqltools import sql_literal


def content_id(*parts: object) -> str:
    """A stable 16-hex-digit id from the given parts (sha256 of their \\x1f-joined text)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def normalize_question(question: str) -> str:
    """Whitespace-collapsed question text (what problem ids hash)."""
    return " ".join(question.split())


def problem_id(dataset: str, question: str) -> str:
    """A problem's id: its dataset and whitespace-collapsed question."""
    return content_id("problem", dataset, normalize_question(question))


def program_id(problem: str, program: str, teacher: str | None = None, sample_idx: int = 0,
               origin: str = "import", preamble: str | None = None) -> str:
    """A program's id: its problem, origin, teacher, sample and source text, and the id of the
    preamble it was imported with, if any (the same text after another preamble is another
    program; without one, the id is what it always was)."""
    return content_id("program", problem, origin, teacher, sample_idx, program, *((preamble,) if preamble else ()))


def preamble_id(text: str) -> str:
    """A preamble's id: its text (as prompts are named)."""
    return content_id("preamble", text)


def teacher_program_id(problem: str, gen_key: str, program: str) -> str:
    """A teacher's program: it hashes the sample's cache key (``generate.gen_key``) rather than
    the teacher and sample index, so another prompt or sampling setting gives another id."""
    return content_id("program", problem, "teacher", gen_key, program)


def injected_program_id(problem: str, parent: str, kind: str, program: str) -> str:
    """A faulty variant of program ``parent`` made by injection ``kind``."""
    return content_id("program", problem, "injected", parent, kind, program)


def student_program_id(problem: str, model: str, run_id: str, sample: int, round_: int, program: str) -> str:
    """A student's program in an evaluation run; ``round_`` > 0 for a refinement round."""
    return content_id("program", problem, "student", model, run_id, sample, *((round_,) if round_ else ()), program)


# SQL twins of the rules above (bulk import computes ids in DuckDB); tests/test_bulk_import.py checks they agree
def normalize_sql(expr: str) -> str:
    """``" ".join(expr.split())`` in SQL (what problem ids hash); text with single spaces between
    words, and no other whitespace, is left as it is without a replace."""
    others = re2_class(PY_WHITESPACE.replace(" ", ""))
    return (f"CASE WHEN regexp_matches({expr}, {sql_literal(others + '|  |^ | $')}) "
            f"THEN trim(regexp_replace({expr}, {sql_literal(ws_class() + '+')}, ' ', 'g')) ELSE {expr} END")


def problem_id_sql(dataset: str, question: str) -> str:
    """:func:`problem_id` in SQL."""
    return f"left(sha256({sql_literal('problem' + chr(31) + dataset + chr(31))} || {normalize_sql(question)}), 16)"


def program_id_sql(problem: str, origin: str, teacher: str, sample_idx: str, program: str,
                   preamble: str | None = None) -> str:
    """:func:`program_id` in SQL (sample_idx an integer expression; ``preamble``: a preamble id)."""
    sep = sql_literal(chr(31))
    tail = f" || {sep} || {sql_literal(preamble)}" if preamble else ""
    return (f"left(sha256('program' || {sep} || {problem} || {sep} || {origin} || {sep} || {teacher} || {sep} "
            f"|| CAST({sample_idx} AS VARCHAR) || {sep} || {program}{tail}), 16)")
