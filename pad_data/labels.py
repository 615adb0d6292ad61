"""The fixed label vocabulary and how an execution result becomes a label.

Numeric answers match with PAL's absolute rule: ``correct`` iff ``|value - gold| < 1e-3``
(strictly less; no relative tolerance, so 1001 for a gold of 1000 is a wrong answer).
Values are compared as doubles: from ``|gold| >= 2**43`` (about 8.8e12) neighbouring doubles
are more than 1e-3 apart, so there the rule means "rounds to the same double"; an int beyond
``2**53`` is compared as its nearest double.
Deliberate choices (documented in the README):
- a ``bool`` returned for a numeric question is ``non_numeric`` (True == 1 would be luck);
- a ``str`` that parses as a number ("1,234", "$12.50", "75%", "3/4") is compared as that
  number; any other string is ``non_numeric``;
- NaN and infinities are ``non_numeric``; a huge int compares as its float value;
- text gold answers (coin flip "yes"/"no", last letters "ab") compare case-insensitively
  after trimming whitespace; ``True``/``False`` count as "yes"/"no".
"""

from __future__ import annotations

import math
import re
from typing import Any

LABELS: dict[str, str] = {
    "correct": "ran and returned the gold answer",
    "wrong_answer": "ran and returned a different answer",
    "no_answer": "no solution() defined and no ans variable set, or the answer is None",
    "non_numeric": "returned something that is not a number where the gold answer is one",
    "syntax_error": "does not compile",
    "runtime_error": "raised an exception (see error_type, e.g. NameError)",
    "timeout": "still running at the time limit (killed)",
    "memory_limit": "exceeded the memory limit",
    "forbidden": "tried something outside the sandbox policy (files, network, processes, imports...)",
    "crashed": "the interpreter died (segfault, abort)",
    "unverifiable": "ran and returned a value, but the problem has no gold answer",
}
ERROR_STATUSES = ("no_answer", "syntax_error", "runtime_error", "timeout", "memory_limit",
                  "forbidden", "crashed")
ABS_TOL = 1e-3  # PAL: abs(value - gold) < 1e-3

_NUM_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def parse_number(text: Any) -> float | None:
    """A float from numeric text such as ``"1,234"``, ``"$12.50"``, ``"75%"``, ``"3/4"``; else None
    (also for anything that is not finite as a double, such as an int of 400 digits)."""
    if isinstance(text, bool) or text is None:
        return None
    try:
        value = _parse_number(text)
    except (OverflowError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _parse_number(text: Any) -> float | None:
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().replace(",", "").replace("$", "").replace(" ", "")
    s = s.rstrip(".").removesuffix("%")
    if _NUM_RE.match(s):
        return float(s)
    if s.count("/") == 1:
        num, den = s.split("/")
        if _NUM_RE.match(num) and _NUM_RE.match(den) and float(den) != 0:
            return float(num) / float(den)
    return None


def numbers_match(value: float, gold: float) -> bool:
    """PAL's rule: ``abs(value - gold) < 1e-3``, absolute and strict (see the module docstring)."""
    return abs(value - gold) < ABS_TOL


def _normalize_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return " ".join(str(value).split()).lower()


def label_for(status: str, value_type: str | None, value: Any, gold: float | None,
              gold_text: str | None) -> tuple[str, float | None]:
    """``(label, numeric value or None)`` for one execution against its problem's gold answer."""
    if status != "ok":
        return (status if status in ERROR_STATUSES else "crashed"), None
    num = None if value_type == "bool" else parse_number(value)
    if gold is not None:
        if value_type == "int" and value is None:  # an int too large for a float: a number, and wrong
            return "wrong_answer", None
        if num is None:
            return "non_numeric", None
        return ("correct" if numbers_match(num, gold) else "wrong_answer"), num
    if gold_text is not None and gold_text.strip() != "":
        if value is None:
            return "non_numeric", num
        return ("correct" if _normalize_text(value) == _normalize_text(gold_text) else "wrong_answer"), num
    return "unverifiable", num


def stored_label(status: str, value_type: str | None, value: str | None, gold: float | None,
                 gold_text: str | None) -> tuple[str, float | None]:
    """:func:`label_for` from a stored ``executions`` row (whose ``value`` is text: a ``repr`` for
    numbers, ``True``/``False`` for bools, the value_repr of an int too large for a float)."""
    if status == "ok" and value_type == "bool" and value in ("True", "False"):
        return label_for(status, value_type, value == "True", gold, gold_text)
    if status == "ok" and value_type == "int" and value is not None and parse_number(value) is None:
        return label_for(status, value_type, None, gold, gold_text)  # an int too large for a float
    return label_for(status, value_type, value, gold, gold_text)


def relabel(store, problem_ids: list[str]) -> int:
    """Label again, against their problems' current gold answers, every stored execution of
    the programs of ``problem_ids`` (no program runs), and the current labels in
    ``program_labels`` with them; returns how many labels changed. The caller owns the
    transaction."""
    import pandas as pd

    if not problem_ids:
        return 0
    ids = pd.DataFrame({"problem_id": list(problem_ids)})
    store.con.register("_pad_relabel_ids", ids)
    try:
        rows = store.con.execute(
            "SELECT e.seq, e.status, e.value_type, e.value, e.label, e.value_num, pr.answer, pr.answer_text "
            "FROM executions e JOIN programs p USING (program_id) JOIN problems pr USING (problem_id) "
            "WHERE pr.problem_id IN (SELECT problem_id FROM _pad_relabel_ids)").fetchall()
    finally:
        store.con.unregister("_pad_relabel_ids")
    changed, labels_changed = [], 0
    for seq, status, value_type, value, old_label, old_num, gold, gold_text in rows:
        label, num = stored_label(status, value_type, value, gold, gold_text)
        if label != old_label or not _same_num(num, old_num):
            changed.append((seq, label, num))
            labels_changed += label != old_label
    if changed:
        df = pd.DataFrame(changed, columns=["seq", "label", "value_num"])
        store.con.register("_pad_relabel", df)
        try:
            store.con.execute("UPDATE executions SET label = r.label, value_num = r.value_num "
                              "FROM _pad_relabel r WHERE executions.seq = r.seq")
            store.con.execute("UPDATE program_labels SET label = r.label FROM _pad_relabel r "
                              "WHERE program_labels.seq = r.seq AND program_labels.label <> r.label")
        finally:
            store.con.unregister("_pad_relabel")
    return labels_changed


def _same_num(a: float | None, b: float | None) -> bool:
    a_missing = a is None or a != a
    b_missing = b is None or b != b
    return a_missing == b_missing and (a_missing or a == b)
