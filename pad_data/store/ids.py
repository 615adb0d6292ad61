"""Content ids: every problem and program is named by a hash of what it is, so storing it
twice is storing it once."""

from __future__ import annotations

import hashlib


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
               origin: str = "import") -> str:
    """A program's id: its problem, origin, teacher, sample and source text."""
    return content_id("program", problem, origin, teacher, sample_idx, program)
