"""The gold-answer parser of :mod:`pad_data.rules.answers` in DuckDB SQL, for reading in bulk.

:func:`gold_layers` computes, for each raw JSON answer, what
:func:`~pad_data.rules.answers.parse_answer` gives, and whether SQL is *sure* of it: text beyond
ASCII and ``−$€£¥₹`` after ``####``, JSON numbers of more than 15 digits and integral floats from
1e15 on are left to Python (``g_sure`` false). Tests run both over the real gold answers and
hand-written edge cases and compare them.

Python's notion of whitespace (``str.strip``, ``str.split``, ``re``'s ``\\s``) is taken from
Python itself, so SQL trims exactly the characters Python does.
"""

from __future__ import annotations

from pad_data.rules.answers import GSM8K_MARK, SCALE_WORDS

# every character ``str.isspace()`` is true for: what ``str.strip``/``split`` and ``re``'s ``\\s``
# use (tests check it against this Python's own Unicode tables)
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# the alphabet of gold-answer text the SQL number parser covers exactly (ASCII, the minus sign
# and the currency signs of answers.py's pattern); anything else goes to answers.py
GOLD_EXTRA = "\u2212$€£¥₹"
_FIELDS = ["sign", "sign2", "w1", "n1", "d1", "n2", "d2", "unit"]  # the groups of _gold_re2


def re2_class(chars: str, negate: bool = False) -> str:
    """An RE2 character class of ``chars`` (ranges compressed, every character escaped)."""
    codes = sorted(set(map(ord, chars)))
    parts, i = [], 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        parts.append(f"\\x{{{codes[i]:x}}}" + (f"-\\x{{{codes[j]:x}}}" if j > i else ""))
        i = j + 1
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


def ws_class(negate: bool = False) -> str:
    """Python's whitespace as an RE2 class."""
    return re2_class(PY_WHITESPACE, negate)


def pattern_sql(pattern: str) -> str:
    """A regex built here as a SQL literal: these patterns escape every character they match by
    code (``\\x{27}``), so none holds a quote, and one that did would be a bug, not text to quote."""
    if "'" in pattern:
        raise ValueError(f"a quote in a pattern: {pattern!r}")
    return f"'{pattern}'"


def strip_sql(expr: str) -> str:
    """``expr.strip()`` in SQL (DuckDB's ``trim(s, characters)`` is exact too, but slow)."""
    ws = ws_class()
    return f"regexp_replace(regexp_replace({expr}, {pattern_sql('^' + ws + '+')}, ''), {pattern_sql(ws + '+$')}, '')"


def chain(layers: list[str]) -> str:
    """Nest SELECT layers: each reads the one before as ``_prev_``."""
    sql = layers[0]
    for layer in layers[1:]:
        sql = layer.replace("_prev_", f"({sql}) _", 1)
    return sql


def _gold_re2() -> str:
    """answers.py's ``_GOLD_RE`` for text in the ASCII + GOLD_EXTRA alphabet, without its
    lookahead: the mixed number "W N/D" is its own alternative, tried first, as Python does."""
    ascii_ws = "".join(c for c in PY_WHITESPACE if ord(c) < 128)
    s = re2_class(ascii_ws)
    num = r"(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
    return (f"^{s}*(?P<sign>[-+\u2212])?{s}*[$€£¥₹]?{s}*(?P<sign2>[-+\u2212])?"
            f"(?:(?P<w1>[0-9]+){s}+(?P<n1>[0-9]+){s}*/{s}*(?P<d1>{num})"
            f"|(?P<n2>{num})(?:{s}*/{s}*(?P<d2>{num}))?){s}*[$€£¥₹]?"
            f"{s}*(?P<unit>%|[A-Za-z][^0-9=+*^<>]*)?{s}*\\.?{s}*$")


def gold_layers(raw: str, require_number: str = "false") -> list[str]:
    """SELECT layers (see :func:`chain`) that add the gold answer of the JSON value ``raw`` (raw
    JSON text; NULL when the field is missing) as ``g_number``, ``g_text``, ``g_rationale``, and
    ``g_sure``: false where SQL cannot be sure to agree with
    :func:`pad_data.rules.answers.parse_answer` (or where it raises). ``require_number`` is a SQL
    boolean expression: GSM8K format, where a missing mark or number is an error."""
    return _kind_layers(raw) + _mark_layers() + _number_layers() + _gold_layers(raw, require_number)


def _kind_layers(raw: str) -> list[str]:
    """``g_kind`` (none, bool, int, float, str or other) and a string's text trimmed, ``g_t0``."""
    return [
        f"""SELECT *, CASE WHEN {raw} IS NULL OR {raw} = 'null' THEN 'none' WHEN {raw} IN ('true', 'false') THEN 'bool'
                 WHEN starts_with({raw}, '"') THEN 'str'
                 WHEN regexp_full_match({raw}, '-?[0-9]{{1,15}}') THEN 'int'
                 WHEN regexp_full_match({raw}, '-?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?') THEN 'float'
                 ELSE 'other' END AS g_kind,
                 CASE WHEN starts_with({raw}, '"') THEN {raw}->>'$' END AS g_s0 FROM _prev_""",
        f"SELECT *, {strip_sql('g_s0')} AS g_t0 FROM _prev_",
    ]


def _mark_layers() -> list[str]:
    """GSM8K's "rationale #### answer", around the last mark (a regex where marks run together):
    ``g_mark``, ``g_rat`` (the rationale) and ``g_str`` (the answer's text)."""
    mark = GSM8K_MARK
    return [
        f"""SELECT *, coalesce(contains(g_t0, '{mark}'), false) AS g_mark,
                 CASE WHEN contains(g_t0, '{mark}#') THEN regexp_extract(g_t0, '(?s)^(.*){mark}(.*)$', ['b', 'a'])
                      END AS g_rx,
                 CASE WHEN contains(g_t0, '{mark}') AND NOT contains(g_t0, '{mark}#') THEN string_split(g_t0, '{mark}')
                      END AS g_split FROM _prev_""",
        f"""SELECT *, CASE WHEN g_rx IS NOT NULL THEN g_rx.b
                          WHEN g_split IS NOT NULL THEN array_to_string(g_split[:len(g_split) - 1], '{mark}') END AS g_before,
                 CASE WHEN g_rx IS NOT NULL THEN g_rx.a WHEN g_split IS NOT NULL THEN g_split[len(g_split)] END AS g_after
            FROM _prev_""",
        f"""SELECT *, CASE WHEN g_mark THEN nullif({strip_sql('g_before')}, '') END AS g_rat,
                 CASE WHEN g_mark THEN {strip_sql('g_after')} ELSE g_t0 END AS g_str FROM _prev_""",
    ]


def _number_layers() -> list[str]:
    """The number in ``g_str``, as answers.py reads it: ``g_snum`` (NULL for none), and
    ``g_ssure``, false where the text is outside the alphabet SQL covers or a part does not cast."""
    outside = pattern_sql(re2_class("".join(chr(c) for c in range(128)) + GOLD_EXTRA, negate=True))
    return [
        # plain integers ("42", "1,500") without the full pattern
        """SELECT *, regexp_full_match(g_str, '[0-9]{1,15}|[0-9]{1,3}(?:,[0-9]{3}){1,4}') AS g_int FROM _prev_""",
        f"""SELECT *, CASE WHEN NOT g_int THEN regexp_extract(g_str, {pattern_sql(_gold_re2())}, {_FIELDS}) END AS g_m,
                 g_int OR NOT regexp_matches(g_str, {outside}) AS g_alpha FROM _prev_""",
        f"""SELECT *, g_int OR coalesce(g_m.n1 <> '' OR g_m.n2 <> '', false) AS g_matched,
                 CASE WHEN g_int THEN g_str WHEN g_m.n1 <> '' THEN g_m.n1 ELSE g_m.n2 END AS g_num_s,
                 CASE WHEN g_int THEN '' WHEN g_m.n1 <> '' THEN g_m.d1 ELSE g_m.d2 END AS g_den_s,
                 CASE WHEN g_int THEN '' ELSE g_m.w1 END AS g_w1,
                 NOT g_int AND (g_m.sign IN ('-', '\u2212') OR g_m.sign2 IN ('-', '\u2212')) AS g_neg,
                 NOT g_int AND regexp_matches(lower(coalesce(g_m.unit, '')), '^' || {pattern_sql(SCALE_WORDS)})
                     AS g_scaled FROM _prev_""",
        """SELECT *, TRY_CAST(replace(g_num_s, ',', '') AS DOUBLE) AS g_v0,
                 CASE WHEN g_den_s <> '' THEN TRY_CAST(replace(g_den_s, ',', '') AS DOUBLE) END AS g_dv,
                 CASE WHEN g_w1 <> '' THEN TRY_CAST(g_w1 AS DOUBLE) END AS g_wv FROM _prev_""",
        """SELECT *, (CASE WHEN g_den_s <> '' THEN g_v0 / g_dv ELSE g_v0 END)
                     + (CASE WHEN g_w1 <> '' THEN g_wv ELSE 0 END) AS g_v FROM _prev_""",
        """SELECT *, CASE WHEN NOT g_matched OR g_scaled OR (g_den_s <> '' AND g_dv = 0) OR NOT isfinite(g_v) THEN NULL
                          WHEN g_neg THEN -g_v ELSE g_v END AS g_snum,
                 g_alpha AND (NOT g_matched OR (g_v0 IS NOT NULL AND (g_den_s = '' OR g_dv IS NOT NULL)
                              AND (g_w1 = '' OR g_wv IS NOT NULL))) AS g_ssure FROM _prev_""",
    ]


def _gold_layers(raw: str, require_number: str) -> list[str]:
    """``g_number``, ``g_text`` (a number's text as :func:`~pad_data.rules.answers.format_number`
    writes it), ``g_rationale`` and ``g_sure``, by the kind of value."""
    return [f"SELECT *, TRY_CAST({raw} AS DOUBLE) AS g_f FROM _prev_", f"""SELECT *,
            CASE g_kind WHEN 'int' THEN CAST(CAST({raw} AS BIGINT) AS DOUBLE) WHEN 'float' THEN g_f
                        WHEN 'str' THEN CASE WHEN g_str <> '' THEN g_snum END END AS g_number,
            CASE g_kind WHEN 'bool' THEN CASE {raw} WHEN 'true' THEN 'yes' ELSE 'no' END
                        WHEN 'int' THEN CAST(CAST({raw} AS BIGINT) AS VARCHAR)
                        WHEN 'float' THEN CASE WHEN g_f = trunc(g_f) AND abs(g_f) < 1e15
                                               THEN CAST(CAST(g_f AS BIGINT) AS VARCHAR) ELSE CAST(g_f AS VARCHAR) END
                        WHEN 'str' THEN CASE WHEN g_str = '' THEN NULL
                                             WHEN g_rat IS NOT NULL AND g_snum IS NOT NULL THEN replace(g_str, ',', '')
                                             ELSE g_str END END AS g_text,
            g_rat AS g_rationale,
            coalesce(CASE WHEN {require_number} THEN g_kind = 'str' AND g_mark AND g_ssure AND g_snum IS NOT NULL
                          ELSE CASE g_kind WHEN 'none' THEN true WHEN 'bool' THEN true WHEN 'int' THEN true
                                 WHEN 'float' THEN isfinite(g_f) AND (g_f <> trunc(g_f) OR abs(g_f) < 1e15)
                                 WHEN 'str' THEN g_str = '' OR g_ssure ELSE false END END, false) AS g_sure
            FROM _prev_"""]
