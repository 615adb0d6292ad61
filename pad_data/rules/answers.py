"""The one parser for gold answers: every path that reads a gold answer (``pad ingest``,
``pad import-programs``, ``--update``) calls :func:`parse_answer`.

A raw answer becomes ``Gold(number, text, rationale)``:

- a number (int/float) is itself (NaN/inf: an error); a bool is the text ``yes``/``no``;
- a string is read as a number when it is one: ``"1,234"``, ``"$12.50"``, ``"75%"``, ``"3/4"``,
  ``"-2.5"``, or a number followed by a unit (``"12 cm"``, ``"150 dollars"``, ``"5 apples"``);
- GSM8K's ``"<rationale> #### <answer>"``: the text after the last ``####`` is the answer, the
  text before it the rationale;
- any other string is a text gold (coin flip ``yes``, last letters ``ab``): number None.
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


class AnswerError(ValueError):
    """A raw answer that cannot be a gold answer (wrong type, not finite)."""


@dataclass(frozen=True)
class Gold:
    number: float | None
    text: str | None
    rationale: str | None = None


def parse_number_with_unit(text: str) -> float | None:
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
        if not math.isfinite(value):
            raise AnswerError("is not a finite number")
        return Gold(float(value), str(int(value)) if float(value).is_integer() else repr(float(value)))
    if not isinstance(value, str):
        raise AnswerError(f"must be a number or string, got {type(value).__name__}")
    rationale = None
    text = value.strip()
    if GSM8K_MARK in text:
        before, _, text = text.rpartition(GSM8K_MARK)
        rationale, text = before.strip() or None, text.strip()
        if require_number and parse_number_with_unit(text) is None:
            raise AnswerError(f"answer after '{GSM8K_MARK}' is not a number: {text!r}")
    elif require_number:
        raise AnswerError(f"has no '{GSM8K_MARK} <answer>' line")
    if not text:
        return Gold(None, None, rationale)
    number = parse_number_with_unit(text)
    if rationale is not None and number is not None:
        text = text.replace(",", "")  # GSM8K: "#### 1,500" is stored as "1500"
    return Gold(number, text, rationale)
