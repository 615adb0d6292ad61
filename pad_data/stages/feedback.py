"""Execution feedback: the one line a program's execution tells whoever must fix it.

Used by refinement pairs (``pad curate --task refine``) and by the student's own
self-refinement rounds (``pad-train eval --refine-rounds``), so both see the same text:

- an error: ``NameError: name 'totl' is not defined (line 4)``;
- ran to the end: ``returned 12.5`` / ``returned None``;
- stopped: ``timeout: still running after 2 s``.
The gold answer is never part of it (it is unknown when a student refines at test time).
"""

from __future__ import annotations

import math


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def feedback(status: str, value: object = None, error_type: str | None = None, error_message: str | None = None,
             error_line: int | None = None, timeout_s: float | None = None) -> str:
    """Feedback for one execution (the columns of ``executions``)."""
    if status == "ok":
        return f"returned {value}"
    if status == "no_answer":
        return "no solution() defined" if "no solution" in (error_message or "") else "returned None"
    if status == "timeout":
        return "timeout: still running after " + (f"{timeout_s:g} s" if not _missing(timeout_s) else "the time limit")
    head = error_type if not _missing(error_type) else status
    msg = "" if _missing(error_message) else f": {str(error_message).splitlines()[0][:300]}"
    line = "" if _missing(error_line) else f" (line {int(error_line)})"
    return f"{head}{msg}{line}"
