"""The one reader of answers: gold answers (:func:`parse_answer`, what ``pad ingest``,
``pad import-programs`` and ``--update`` call), a program's value as a number
(:func:`parse_number`, what labels compare), the final answer of a written rationale
(:func:`cot_answer`), and a number as answer text (:func:`format_number`). The same parser in
DuckDB SQL, for reading in bulk, is :mod:`pad_data.rules.answers_sql`.

A raw gold answer becomes ``Gold(number, text, rationale)``:

- a number (int/float) is itself (NaN/inf: an error); a bool is the text ``yes``/``no``;
- a string is read as a number when it is one: ``"1,234"``, ``"$12.50"``, ``"75%"``, ``"3/4"``,
  ``"-2.5"``, or a number followed by a unit (``"12 cm"``, ``"150 dollars"``, ``"5 apples"``);
- GSM8K's ``"<rationale> #### <answer>"``: the text after the last ``####`` is the answer, the
  text before it the rationale;
- any other string is a text gold (coin flip ``yes``, last letters ``ab``): number None.

A value's number is a gold's number read the same way, without the GSM8K mark (a program's
answer has no rationale): :func:`parse_answer` is :func:`parse_number` of the text after the mark.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


GSM8K_MARK = "####"
# commas only as thousands groups: "2,3" or "1,23" is not a number
_NUM = r"(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# a number (or a fraction a/b, or a mixed number "3 1/2") with an optional sign and currency sign
# before it, and an optional currency sign, "%" or unit (no digits: "12 cm", "150 dollars",
# "3 m/s") after it
_GOLD_RE = re.compile(
    rf"^\s*(?P<sign>[-+\u2212])?\s*[$€£¥₹]?\s*(?P<sign2>[-+\u2212])?"
    rf"(?:(?P<whole>\d+)\s+(?=\d+\s*/))?(?P<num>{_NUM})(?:\s*/\s*(?P<den>{_NUM}))?\s*[$€£¥₹]?"
    r"\s*(?P<unit>%|[^\W\d_°][^\d=+*^<>]*|°[^\d=+*^<>]*)?\s*\.?\s*$")
# a "unit" that changes the number is not a unit: "1.2 million", "$2.5k", "5 dozen", "3π", "3½"
SCALE_WORDS = r"(?:thousand|million|billion|trillion|dozen|k|bn)s?\b"
_SCALE_RE = re.compile(SCALE_WORDS, re.IGNORECASE)
# a rationale's final answer: "The answer is $1,250." (its number, else the last number written)
_COT_ANSWER = re.compile(r"answer is\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_COT_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
_COT_TEXT = re.compile(r"answer is\s*(.*)", re.IGNORECASE)


class AnswerError(ValueError):
    """A raw answer that cannot be a gold answer (wrong type, not finite)."""


@dataclass(frozen=True)
class Gold:
    number: float | None
    text: str | None
    rationale: str | None = None


def _text_number(text: str) -> float | None:
    """A finite number from gold-answer text (see the module docstring), else None."""
    m = _GOLD_RE.match(text)
    if not m:
        return None
    unit = m.group("unit") or ""
    if _SCALE_RE.match(unit) or any(c.isnumeric() or c in "π√" for c in unit):
        return None
    try:
        value = float(m.group("num").replace(",", ""))
        if m.group("den") is not None:
            den = float(m.group("den").replace(",", ""))
            if den == 0:
                return None
            value /= den
        if m.group("whole") is not None:
            value += int(m.group("whole"))
    except (ValueError, OverflowError):
        return None
    if (m.group("sign") or "") in ("-", "\u2212") or (m.group("sign2") or "") in ("-", "\u2212"):
        value = -value
    return value if math.isfinite(value) else None


def parse_number(value: Any) -> float | None:
    """The number in a value, or None: an int or float is itself, text is read as a gold answer
    is (``"1,234"``, ``"$12.50"``, ``"75%"``, ``"3/4"``, ``"15 minutes"``), anything else by its
    ``str``; a bool, None, NaN, an infinity or an int too large for a double is no number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None
    return _text_number(str(value))


def format_number(value: float) -> str:
    """A number as answer text: ``18`` for 18 or 18.0, ``2.5`` for 2.5, an int's own digits; an
    integral float from 2**53 on keeps its float form (``1e+20``), since its digits past the
    double's precision would be invented."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def parse_answer(value: Any, require_number: bool = False) -> Gold:
    """The gold answer in a raw ``value`` (see the module docstring).

    ``require_number``: the answer must be numeric (GSM8K format): an AnswerError otherwise.
    """
    if value is None:
        if require_number:
            raise AnswerError("is missing")
        return Gold(None, None)
    if isinstance(value, bool):
        if require_number:
            raise AnswerError(f"must be a number, got {value!r}")
        return Gold(None, "yes" if value else "no")
    if isinstance(value, (int, float)):
        number = parse_number(value)
        if number is None:
            raise AnswerError("is not a finite number")
        return Gold(number, format_number(value))
    if not isinstance(value, str):
        raise AnswerError(f"must be a number or string, got {type(value).__name__}")
    rationale = None
    text = value.strip()
    if GSM8K_MARK in text:
        before, _, text = text.rpartition(GSM8K_MARK)
        rationale, text = before.strip() or None, text.strip()
        if require_number and parse_number(text) is None:
            raise AnswerError(f"answer after '{GSM8K_MARK}' is not a number: {text!r}")
    elif require_number:
        raise AnswerError(f"has no '{GSM8K_MARK} <answer>' line")
    if not text:
        return Gold(None, None, rationale)
    number = parse_number(text)
    if rationale is not None and number is not None:
        text = text.replace(",", "")  # GSM8K: "#### 1,500" is stored as "1500"
    return Gold(number, text, rationale)


def cot_answer(text: str) -> float | None:
    """The final answer of a rationale: "... The answer is 42." (else the last number in it)."""
    m = _COT_ANSWER.findall(text) or _COT_NUMBER.findall(text)
    return parse_number(m[-1]) if m else None


def cot_answer_text(text: str) -> str | None:
    """The final text answer of a rationale (coin flip, last letters): "... The answer is nk." -> "nk"."""
    m = _COT_TEXT.findall(text)
    if not m:
        return None
    answer = m[-1].strip().rstrip(".").strip().strip("\"'").strip()
    return answer or None
