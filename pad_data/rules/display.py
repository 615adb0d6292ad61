"""Stored text as pad shows it: programs, their outputs, questions and names are untrusted.

A program's stdout can hold terminal escapes (ESC ``[``: colours, cursor moves; ESC ``]``:
window titles, OSC 8 hyperlinks; ``\\r``: overwrite the line shown) and a question can hold Rich
markup or emoji codes. Every text pad prints from data goes through :func:`visible` (the CLI's
``_say``, ``_table`` and ``_add_row`` call it), so a C0 or C1 control character or DEL is shown
as ``\\x1b``, ``\\r``... and never reaches the terminal; ``pad sql --format json`` escapes them
the JSON way instead (:func:`json_visible`), so that format still round-trips.
"""

from __future__ import annotations

import re

# C0, DEL and C1: C1 matters too, some terminals take U+009B as CSI and U+009D as OSC
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_C1_OR_DEL = re.compile("[\x7f-\x9f]")


def visible(text: str, keep: str = "\n\t") -> str:
    """``text`` with each control character except those in ``keep`` written out (``\\x1b``,
    ``\\r``, ``\\x9b``...); what a terminal shows is then the text itself."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: m[0] if m[0] in keep else _NAMED.get(m[0]) or f"\\x{ord(m[0]):02x}", text)


def json_visible(encoded: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``, which escapes C0 only) with DEL and C1
    escaped too, as ``\\u007f``...: the same JSON value, safe to print. Such characters occur only
    inside strings, where the escape means the same character."""
    return _C1_OR_DEL.sub(lambda m: f"\\u{ord(m[0]):04x}", encoded)


# Characters that change how text around them is shown without being seen: bidi controls
# (U+202E makes code read in another order than it runs, "Trojan Source"), zero-width and other
# format characters (Unicode category Cf), line/paragraph separators and the Hangul fillers
# that render as blank letters. tests/test_review_display.py checks this against unicodedata.
_HIDDEN = re.compile("[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e\u200b-\u200f"
                     "\u2028-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd"
                     "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]")


def _escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def reveal(text: str, keep: str = "\n\t") -> str:
    """``text`` as :func:`visible` shows it, with bidi controls and invisible characters written
    out too (``\\u202e``, ``\\u200b``...): what a browser then shows is every character there is,
    in the order it is stored."""
    return _HIDDEN.sub(lambda m: _escape(m[0]), visible(text, keep))


def hidden_count(text: str) -> int:
    """How many bidi controls and invisible characters :func:`reveal` writes out in ``text``."""
    return len(_HIDDEN.findall(text))
