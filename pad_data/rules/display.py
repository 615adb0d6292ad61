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
