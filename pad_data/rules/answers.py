"""The one reader of answers: gold answers (:func:`parse_answer`, what ``pad ingest``,
``pad import-programs`` and ``--update`` call), a program's value as a number
(:func:`parse_number`, what labels compare), the final answer of a written rationale
(:func:`cot_answer`), and a number as answer text (:func:`format_number`). The same parser in
DuckDB SQL, for reading in bulk, is :mod:`pad_data.rules.answers_sql`.

A raw gold answer becomes ``Gold(number, text, rationale)``:

- a number (int/float) is itself (NaN/inf: an error); a bool is the text ``yes``/``no``;
- a string is read as a number when it is one: ``"1,234"``, ``"$12.50"``, ``"75%"``, ``"3/4"``,
  ``"-2.5"``, or a number followed by a unit (``"12 cm"``, ``"150 dollars"``, ``"5 apples"``);
  a word that changes the number is no unit (:data:`SCALE_WORDS`: ``"7 hundred"``,
  ``"2 and a half"``, ``"3 squared"`` are text);
- GSM8K's ``"<rationale> #### <answer>"``: the text after the last ``####`` is the answer, the
  text before it the rationale;
- any other string is a text gold (coin flip ``yes``, last letters ``ab``): number None.

A value's number is a gold's number read the same way, without the GSM8K mark (a program's
answer has no rationale): :func:`parse_answer` is :func:`parse_number` of the text after the mark.

Multiple-choice golds (AQuA, MathQA): a gold that is a choice letter (``"C"``, ``"(c)"``,
``"c)"``, :func:`choice_letter`) with options in the record (``["A)21", "B)21.5", ...]``,
``"a ) 21 , b ) 21.5 , ..."``, a plain list lettered by position, or ``{"A": "21", ...}``:
:func:`parse_options`) is :func:`choice_gold`: the gold option's value, read as any gold is
(number when it is one), with the letter kept.
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
# a "unit" that changes the number is not a unit: a scale ("1.2 million", "$2.5k", "5 dozen",
# "7 hundred", "3 lakh", "2 crore", "5 thousandths"), a power ("3 squared"), more of the number
# ("2 and a half"), or a sign ("3π", "3½", below); the words are matched at the unit's start
# (lower case in SQL: answers_sql.py reads them too)
SCALE_WORDS = (r"(?:(?:hundred|thousand|million|billion|trillion|lakh|lac|crore|dozen|k|bn)s?"
               r"|tenths|hundredths|thousandths|squared|cubed|and)\b")
_SCALE_RE = re.compile(SCALE_WORDS, re.IGNORECASE)
# a rationale's final answer: "The answer is $1,250." (its number, else the last number written)
_COT_ANSWER = re.compile(r"answer is\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_COT_NUMBER = re.compile(r"-?[\d,]*\.?\d+")
_COT_TEXT = re.compile(r"answer is\s*(.*)", re.IGNORECASE)


# a choice letter as a gold or a program's answer: "C", "c", "(c)", "c)", "C." (one letter)
_CHOICE_RE = re.compile(r"^\s*\(?\s*([A-Za-z])\s*\)?\s*\.?\s*$")
# an option's letter before its text: "A)21", "(b) 21.5", "c ) 22", "D. 22.5", "E: 23"
_OPTION_MARK = r"\(?\s*({letter})\s*[).:]\s*"
WARN_LETTERS = "ABCDE"  # text golds that look like AQuA's choices when no options were read


class AnswerError(ValueError):
    """A raw answer that cannot be a gold answer (wrong type, not finite)."""


@dataclass(frozen=True)
class Gold:
    number: float | None
    text: str | None
    rationale: str | None = None
    choice: str | None = None  # the gold's choice letter (upper case), when the gold was one
    options: tuple[str, ...] | None = None  # the options' texts, lettered A, B, ... in order


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


def choice_letter(value: Any) -> str | None:
    """The choice letter a value names, upper case (``"(c)"``, ``"c)"``, ``"C"``: ``"C"``), else None."""
    if not isinstance(value, str):
        return None
    m = _CHOICE_RE.match(value)
    return m.group(1).upper() if m else None


def parse_options(value: Any) -> tuple[str, ...] | None:
    """The options' texts, in letter order A, B, ..., from a record's options field (None or an
    empty one: None): a list of lettered options (``["A)21", "B)21.5"]``; a list none of whose
    items carries its letter is lettered by position), one string of lettered options
    (``"a ) 21 , b ) 21.5"``, each letter after a comma), or a mapping ``{"A": "21", ...}``.
    An AnswerError when the letters are not A, B, C... in order, or the value is of another type."""
    if value is None:
        return None
    if hasattr(value, "tolist") and not isinstance(value, str):  # a numpy array from Parquet
        value = value.tolist()
    if isinstance(value, dict):
        letters = [choice_letter(str(k)) for k in value]
        if letters != [chr(65 + i) for i in range(len(letters))]:
            raise AnswerError(f"keys must be the letters A, B, C... in order, got {list(value)!r}")
        items = [_option_text(v) for v in value.values()]
    elif isinstance(value, (list, tuple)):
        items = [_option_text(v) for v in value]
        marks = [re.match(_OPTION_MARK.format(letter="[A-Za-z]"), t) for t in items]
        if any(marks):
            for i, (m, text) in enumerate(zip(marks, items)):
                if not m or m.group(1).upper() != chr(65 + i):
                    raise AnswerError(f"option {i + 1} must start with the letter {chr(65 + i)}, got {text!r}")
            items = [text[m.end():] for m, text in zip(marks, items)]
    elif isinstance(value, str):
        items, pos = [], 0
        while True:  # each letter in turn, after a comma (a value may hold commas: "1,200")
            lead = r"^\s*" if not items else r",\s*"
            m = re.compile(lead + _OPTION_MARK.format(letter=f"[{chr(65 + len(items))}{chr(97 + len(items))}]")
                           ).search(value, pos)
            if not m:
                break
            if items:
                items[-1] = value[pos:m.start()]
            items.append("")
            pos = m.end()
        if not items:
            raise AnswerError("has no lettered options (\"a ) 21 , b ) 21.5 , ...\")")
        items[-1] = value[pos:]
    else:
        raise AnswerError(f"must be a list of options or a string, got {type(value).__name__}")
    items = [" ".join(t.split()) for t in items]
    if not items:
        return None
    if any(not t for t in items):
        raise AnswerError(f"option {chr(65 + items.index(''))} is empty")
    return tuple(items)


def _option_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AnswerError(f"options must be strings or numbers, got {type(value).__name__}")
    return value if isinstance(value, str) else format_number(value)


def choice_gold(gold: Gold, options: tuple[str, ...] | None) -> Gold:
    """``gold`` read against a record's options: a text gold that is a choice letter becomes its
    option's value (:func:`parse_number` of the option's text when it is a number, else the text)
    with the letter and the options kept; any other gold keeps its value (and the options). An
    AnswerError when the letter names no option."""
    if not options:
        return gold
    letter = choice_letter(gold.text) if gold.number is None and gold.rationale is None else None
    if letter is None or any(" ".join(gold.text.split()).lower() == o.lower() for o in options):
        return Gold(gold.number, gold.text, gold.rationale, None, options)
    index = ord(letter) - 65
    if index >= len(options):
        raise AnswerError(f"is choice {gold.text.strip()!r} but there are only {len(options)} options "
                          f"(A-{chr(64 + len(options))})")
    text = options[index]
    return Gold(parse_number(text), text, gold.rationale, letter, options)


def looks_like_choice(text: str | None) -> bool:
    """Whether a text gold reads as a choice letter A-E (``"C"``, ``"(c)"``): warned about when a
    file gives no options to map it to."""
    letter = choice_letter(text)
    return letter is not None and letter in WARN_LETTERS
