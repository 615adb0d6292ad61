"""The fixed label vocabulary and how an execution result becomes a label.

Numbers match by one rule, :func:`numbers_match` (and :data:`MATCH_SQL`, the same rule for
DuckDB): ``|value - gold| < max(1e-9, min(1e-3, 1e-3 * m), 1e-12 * m)`` with
``m = max(|value|, |gold|)``. So:

- from 1 to 1e9, PAL's absolute rule, ``|value - gold| < 1e-3`` (1001 for 1000 is wrong, 18.0004
  for 18 is right): golds a dataset rounded to 3 decimals are accepted;
- below 1, three significant digits (a relative 1e-3): ``0`` is wrong for a gold of
  ``2.0107e-06``, ``2.01071e-06`` is right; ``0.3333`` is right for 1/3;
- above 1e9, a relative 1e-12: the floating-point noise of a long computation is accepted
  (``3.0000000000000004e13`` for 3e13), an answer off by one below 1e12 is not;
- at 0, an absolute 1e-9 (``0.1 + 0.2 - 0.3`` is 0).

Values and gold answers are read by the same parser (:func:`pad_data.rules.answers.parse_number`):
a ``str`` value such as ``"1,234"``, ``"$12.50"``, ``"75%"``, ``"3/4"`` or ``"15 minutes"``
compares as that number; any other string is ``non_numeric``. Deliberate choices (documented
in the README):

- a ``bool`` returned for a numeric question is ``non_numeric`` (True == 1 would be luck);
- NaN and infinities are ``non_numeric``; an int too large for a double is ``wrong_answer``;
- text gold answers (coin flip "yes"/"no", last letters "ab") compare case-insensitively
  after trimming whitespace and one final period (``"Yes."`` is "yes", as ``"12."`` is 12);
  ``True``/``False``, as bools or as text (``"True"``, ``"false"``) on either side, count as
  "yes"/"no";
- against a text gold, a value that is neither a number nor text (a list, a tuple, ``inf``, an
  object) is ``wrong_answer``: ``non_numeric`` says the gold is a number. It is not compared by
  its ``repr``, which ``label_for`` is not given on a fresh run;
- a multiple-choice gold (``choice``, its letter; gold and gold text are its option's value) is
  also met by a string naming that letter (``"C"``, ``"(c)"``, ``"c)"``); a string naming
  another letter is ``wrong_answer``.
"""

from __future__ import annotations

from typing import Any

from pad_data.rules.answers import choice_letter, parse_number

LABELS: dict[str, str] = {
    "correct": "ran and returned the gold answer",
    "wrong_answer": "ran and returned a different answer",
    "no_answer": "ran and returned nothing: no solution() defined and no ans variable set, or the answer is None",
    "non_numeric": "returned something that is not a number where the gold answer is one",
    "syntax_error": "does not compile",
    "runtime_error": "raised an exception (see error_type, e.g. NameError)",
    "timeout": "used more than its time limit of its own time (CPU, or asleep), not counting waits for a core",
    "memory_limit": "exceeded the memory limit",
    "forbidden": "tried something outside the sandbox policy (files, network, processes, imports...)",
    "crashed": "the interpreter died (segfault, abort)",
    "unverifiable": "ran and returned a value, but the problem has no gold answer",
}
ERROR_STATUSES = ("no_answer", "syntax_error", "runtime_error", "timeout", "memory_limit",
                  "forbidden", "crashed")
ABS_TOL = 1e-3  # PAL's absolute tolerance, for answers from 1 to 1e9
REL_TOL = 1e-3  # below 1: three significant digits
NOISE_TOL = 1e-12  # above 1e9: floating-point noise
ZERO_TOL = 1e-9  # at 0
# numbers_match as SQL over two DOUBLE expressions {v} and {g}
MATCH_SQL = (f"(abs({{v}} - {{g}}) < greatest({ZERO_TOL!r}, least({ABS_TOL!r}, {REL_TOL!r} * greatest(abs({{v}}), abs({{g}}))),"
             f" {NOISE_TOL!r} * greatest(abs({{v}}), abs({{g}}))))")


def numbers_match(value: float, gold: float) -> bool:
    """The one rule for numeric answers (see the module docstring)."""
    m = max(abs(value), abs(gold))
    return abs(value - gold) < max(ZERO_TOL, min(ABS_TOL, REL_TOL * m), NOISE_TOL * m)


_TRUTH_TEXTS = {"true": "yes", "false": "no"}  # a truth value written as text


def normalize_text(value: Any) -> str:
    """A text answer as compared: trimmed, whitespace collapsed, lower case, one final period
    dropped (``"Yes."``: ``"yes"``); a bool, and the text true/false, is yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = " ".join(str(value).split()).lower()
    if len(text) > 1 and text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    return _TRUTH_TEXTS.get(text, text)


def label_for(status: str, value_type: str | None, value: Any, gold: float | None,
              gold_text: str | None, choice: str | None = None) -> tuple[str, float | None]:
    """``(label, numeric value or None)`` for one execution against its problem's gold answer
    (``choice``: the gold's choice letter, when it is a multiple-choice gold)."""
    if status != "ok":
        return (status if status in ERROR_STATUSES else "crashed"), None
    num = None if value_type == "bool" else parse_number(value)
    letter = choice_letter(value) if isinstance(choice, str) and choice else None
    if letter is not None:
        return ("correct" if letter == choice.upper() else "wrong_answer"), num
    if gold is not None:
        if value_type == "int" and value is None:  # an int too large for a float: a number, and wrong
            return "wrong_answer", None
        if num is None:
            return "non_numeric", None
        return ("correct" if numbers_match(num, gold) else "wrong_answer"), num
    if gold_text is not None and gold_text.strip() != "":
        if value is None:  # neither number nor text (a list, inf, an object): another answer
            return "wrong_answer", num
        return ("correct" if normalize_text(value) == normalize_text(gold_text) else "wrong_answer"), num
    return "unverifiable", num


def stored_label(status: str, value_type: str | None, value: str | None, value_num: float | None,
                 gold: float | None, gold_text: str | None, choice: str | None = None) -> tuple[str, float | None]:
    """:func:`label_for` from a stored ``executions`` row, given what the worker gave it: the row's
    ``value`` is text (the value itself for a ``str``, ``repr`` of a number, ``True``/``False``
    for a bool, or the ``repr`` of anything else), and ``value_num`` is NULL exactly when the
    worker gave no number. So a non-string with no number was not a value :func:`label_for`
    compared (a list, ``inf``, a sympy symbol: ``non_numeric`` for a numeric gold,
    ``wrong_answer`` for a text one), however its repr reads."""
    if status != "ok" or value_type == "str":
        return label_for(status, value_type, value, gold, gold_text, choice)
    if value_num is not None and value_num == value_num:
        return label_for(status, value_type, value, gold, gold_text, choice)
    if value in ("True", "False") and value_type in ("bool", "bool_", "ndarray"):  # numpy's bools too
        return label_for(status, "bool", value == "True", gold, gold_text, choice)
    return label_for(status, value_type, None, gold, gold_text, choice)  # (an int too large for a float too)


def relabel(store, problem_ids: list[str]) -> int:
    """Label again, against their problems' current gold answers, every stored execution of
    the programs of ``problem_ids`` (no program runs), and the current labels in
    ``program_labels`` with them; returns how many labels changed. The caller owns the
    transaction."""
    import pandas as pd

    if not problem_ids:
        return 0
    rows = store.con.execute(
        "SELECT e.seq, e.status, e.value_type, e.value, e.label, e.value_num, pr.answer, pr.answer_text, pr.choice "
        "FROM executions e JOIN programs p USING (program_id) JOIN problems pr USING (problem_id) "
        "WHERE pr.problem_id = ANY(?)", [list(problem_ids)]).fetchall()
    changed, labels_changed = [], 0
    for seq, status, value_type, value, old_label, old_num, gold, gold_text, choice in rows:
        label, num = stored_label(status, value_type, value, old_num, gold, gold_text, choice)
        if label != old_label or not _same_num(num, old_num):
            changed.append((seq, label, num))
            labels_changed += label != old_label
    if changed:
        store.relabel_executions(pd.DataFrame(changed, columns=["seq", "label", "value_num"]))
    return labels_changed


def _same_num(a: float | None, b: float | None) -> bool:
    a_missing = a is None or a != a
    b_missing = b is None or b != b
    return a_missing == b_missing and (a_missing or a == b)
