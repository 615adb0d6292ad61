"""Vectorized reading for ``pad ingest`` and ``pad import-programs``: SQL that is sure, or Python.

A JSONL file is read in chunks of whole lines and handed to DuckDB as Arrow (no copy). DuckDB
parses each line, picks its fields, validates them and computes the row: the problem id (sha256
of the whitespace-collapsed question), the gold answer (the rules of :mod:`pad_data.rules.answers`,
in SQL) and, later, the program extracted from each completion and its id. A line goes to the
Python path of :mod:`pad_data.stages.ingest` (the reference) whenever DuckDB could answer differently:

- not JSON as Python's ``json`` reads it: DuckDB accepts trailing commas and ``nan``/``inf``
  (lines with anything that looks like them go to Python), and takes the first of two equal keys
  where Python takes the last (a line where a key it reads appears twice, or is written with an
  escape, goes to Python);
- a field of another type, missing or empty: every error is Python's, so its message is too;
- a gold answer the SQL parser does not cover exactly (text after ``####`` beyond ASCII and
  ``−€£¥₹``, JSON numbers of more than 15 digits...);
- (per completion) code that needs fence or prose extraction: SQL extracts only completions
  whose extraction is the same whether or not they parse (see :func:`plain_code_sql`).

Python's notion of whitespace (``str.strip``, ``str.split``, ``re``'s ``\\s``) is taken from
Python itself, so SQL trims and collapses exactly the same characters.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from pad_data.rules.answers import SCALE_WORDS
from pad_data.store import sql_literal

CHUNK_BYTES = 64 << 20
SCRATCH_MEMORY = "2GB"  # DuckDB memory of a read at most (beyond it, it spills to a temp folder); see Batch
SCAN_ROWS = 16_384  # lines per Arrow record batch handed to DuckDB: it scans one batch per thread
USE_SQL = True  # False: every JSONL line takes the Python path (the reference; tests compare the two)
QUESTION_ALIASES = ("question", "input", "problem")
ANSWER_ALIASES = ("answer", "target", "gold")
PROGRAM_ALIASES = ("program", "code", "generation", "completion")
# the alphabet of gold-answer text the SQL number parser covers exactly (ASCII, the minus sign
# and the currency signs of answers.py's pattern); anything else goes to answers.py
GOLD_EXTRA = "\u2212$€£¥₹"


# ---------------------------------------------------------------------- SQL text helpers
# every character ``str.isspace()`` is true for: what ``str.strip``/``split`` and ``re``'s ``\\s``
# use (tests check it against this Python's own Unicode tables)
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                 "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


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


def re2_escape(s: str) -> str:
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in s)


def json_pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


def ws_class(negate: bool = False) -> str:
    """Python's whitespace as an RE2 class."""
    return re2_class(PY_WHITESPACE, negate)


def strip_sql(expr: str) -> str:
    """``expr.strip()`` in SQL (DuckDB's ``trim(s, characters)`` is exact too, but slow)."""
    ws = ws_class()
    return f"regexp_replace(regexp_replace({expr}, {sql_literal('^' + ws + '+')}, ''), {sql_literal(ws + '+$')}, '')"


def blank_sql(expr: str) -> str:
    """``not expr.strip()`` in SQL."""
    return f"NOT regexp_matches({expr}, {sql_literal(ws_class(negate=True))})"


def normalize_sql(expr: str) -> str:
    """``" ".join(expr.split())`` in SQL (what problem ids hash); text with single spaces between
    words, and no other whitespace, is left as it is without a replace."""
    others = re2_class(PY_WHITESPACE.replace(" ", ""))
    return (f"CASE WHEN regexp_matches({expr}, {sql_literal(others + '|  |^ | $')}) "
            f"THEN trim(regexp_replace({expr}, {sql_literal(ws_class() + '+')}, ' ', 'g')) ELSE {expr} END")


def problem_id_sql(dataset: str, question: str) -> str:
    """:func:`pad_data.store.problem_id` in SQL."""
    return f"left(sha256({sql_literal('problem' + chr(31) + dataset + chr(31))} || {normalize_sql(question)}), 16)"


def program_id_sql(problem: str, origin: str, teacher: str, sample_idx: str, program: str) -> str:
    """:func:`pad_data.store.program_id` in SQL (sample_idx an integer expression)."""
    sep = sql_literal(chr(31))
    return (f"left(sha256('program' || {sep} || {problem} || {sep} || {origin} || {sep} || {teacher} || {sep} "
            f"|| CAST({sample_idx} AS VARCHAR) || {sep} || {program}), 16)")


# ---------------------------------------------------------------------- program extraction
_CODE_WORDS = ("def ", "import ", "from ", "class ")


def _not_code_line_re() -> str:
    """A line after the first that starts at column 0 with something other than a code-start
    word, ``@``, ``#``: ``\\n`` then a first character or a prefix of a word that breaks off."""
    firsts = "".join(sorted({w[0] for w in _CODE_WORDS}))
    alts = [f"[^ \\t\\n#@{firsts}]"]
    for word in _CODE_WORDS:
        for k in range(1, len(word)):
            alts.append(f"{re2_escape(word[:k])}(?:[^{re2_escape(word[k])}]|$)")
    return "\\n(?:" + "|".join(alts) + ")"


def plain_code_sql(s: str) -> tuple[str, str]:
    """(condition, code): SQL for completions whose :func:`pad_data.rules.extract.extract_program`
    result is known without parsing, and that result.

    The condition: no fence, no line break but ``\\n`` (``splitlines`` splits on more), the first
    non-blank line starts with ``def ``/``import ``/``from ``/``class ``/``@`` at column 0, and
    every later line is empty, indented, a comment or such a line. For such text rule 1 (the
    whole text parses) and rule 3 (the code lines up to the first prose line) give the same
    program, the text without its leading blank lines and trailing whitespace, plus one newline,
    so it does not matter whether it parses.
    """
    breaks = re2_class("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    starts = "^(?:[ \\t]*\\n)*(?:" + "|".join(re2_escape(w) for w in _CODE_WORDS) + "|@)"
    cond = (f"(NOT contains({s}, '```') AND regexp_matches({s}, {sql_literal(starts)}) "
            f"AND NOT regexp_matches({s}, {sql_literal(breaks + '|' + _not_code_line_re())}))")
    blank_lines = sql_literal("^(?:[ \\t]*\\n)+")
    code = f"(regexp_replace(regexp_replace({s}, {blank_lines}, ''), {sql_literal(ws_class() + '+$')}, '') || chr(10))"
    return cond, code


_FENCE_RE2 = "(?s)```[ \\t]*([A-Za-z0-9_+-]*)[^\\n]*\\n(.*?)(?:```|\\z)"  # extract.py's _FENCE


def fenced_code_sql(s: str, entry: str = "solution") -> tuple[str, str]:
    """(condition, code): SQL for fenced completions whose extraction is known without parsing
    (rule 2 of :mod:`pad_data.rules.extract`, when a block defines ``entry``).

    Rule 1 (the whole text parses) cannot apply when a line starts with a fence and no string
    can span lines (no triple quote, no backslash at a line end): a backtick outside a string
    or comment is a syntax error. Then the program is the first Python (or unlabeled) block
    that defines ``entry``; completions without one go to Python, which tries to parse blocks.
    """
    ws = ws_class()
    defines = f"(?m)^{ws}*def {re2_escape(entry)}{ws}*\\("
    first = (f"[b[2] for b in list_zip(regexp_extract_all({s}, {sql_literal(_FENCE_RE2)}, 1), "
             f"regexp_extract_all({s}, {sql_literal(_FENCE_RE2)}, 2)) "
             f"if lower(b[1]) IN ('', 'python', 'py', 'python3') AND regexp_matches(b[2], {sql_literal(defines)})][1]")
    multiline_strings = sql_literal('"""' + "|'''|" + r"\\[\r\n]")  # a triple quote, or a backslash at a line end
    cond = (f"(contains({s}, '```') AND regexp_matches({s}, '(?m)^[ \\t]*```') "
            f"AND NOT regexp_matches({s}, {multiline_strings}))")
    code = f"(regexp_replace(regexp_replace({first}, '^\\n+', ''), {sql_literal(ws + '+$')}, '') || chr(10))"
    return cond, code


def code_sql(s: str) -> str:
    """The program of completion ``s`` where SQL is sure of it (plain or fenced), else NULL."""
    plain, plain_code = plain_code_sql(s)
    fenced, fenced_code = fenced_code_sql(s)
    return f"CASE WHEN {plain} THEN {plain_code} WHEN {fenced} THEN {fenced_code} END"


# ---------------------------------------------------------------------- gold answers
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
    names = ["sign", "sign2", "w1", "n1", "d1", "n2", "d2", "unit"]
    outside = sql_literal(re2_class("".join(chr(c) for c in range(128)) + GOLD_EXTRA, negate=True))
    return [
        # the kind of value, and a string's text
        f"""SELECT *, CASE WHEN {raw} IS NULL OR {raw} = 'null' THEN 'none' WHEN {raw} IN ('true', 'false') THEN 'bool'
                 WHEN starts_with({raw}, '"') THEN 'str'
                 WHEN regexp_full_match({raw}, '-?[0-9]{{1,15}}') THEN 'int'
                 WHEN regexp_full_match({raw}, '-?[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]+)?') THEN 'float'
                 ELSE 'other' END AS g_kind,
                 CASE WHEN starts_with({raw}, '"') THEN {raw}->>'$' END AS g_s0 FROM _prev_""",
        f"SELECT *, {strip_sql('g_s0')} AS g_t0 FROM _prev_",
        # GSM8K's "rationale #### answer": around the last mark (a regex where marks run together)
        """SELECT *, coalesce(contains(g_t0, '####'), false) AS g_mark,
                 CASE WHEN contains(g_t0, '#####') THEN regexp_extract(g_t0, '(?s)^(.*)####(.*)$', ['b', 'a'])
                      END AS g_rx,
                 CASE WHEN contains(g_t0, '####') AND NOT contains(g_t0, '#####') THEN string_split(g_t0, '####')
                      END AS g_split FROM _prev_""",
        """SELECT *, CASE WHEN g_rx IS NOT NULL THEN g_rx.b
                          WHEN g_split IS NOT NULL THEN array_to_string(g_split[:len(g_split) - 1], '####') END AS g_before,
                 CASE WHEN g_rx IS NOT NULL THEN g_rx.a WHEN g_split IS NOT NULL THEN g_split[len(g_split)] END AS g_after
            FROM _prev_""",
        f"""SELECT *, CASE WHEN g_mark THEN nullif({strip_sql('g_before')}, '') END AS g_rat,
                 CASE WHEN g_mark THEN {strip_sql('g_after')} ELSE g_t0 END AS g_str FROM _prev_""",
        # plain integers ("42", "1,500") without the full pattern
        """SELECT *, regexp_full_match(g_str, '[0-9]{1,15}|[0-9]{1,3}(?:,[0-9]{3}){1,4}') AS g_int FROM _prev_""",
        f"""SELECT *, CASE WHEN NOT g_int THEN regexp_extract(g_str, {sql_literal(_gold_re2())}, {names}) END AS g_m,
                 g_int OR NOT regexp_matches(g_str, {outside}) AS g_alpha FROM _prev_""",
        f"""SELECT *, g_int OR coalesce(g_m.n1 <> '' OR g_m.n2 <> '', false) AS g_matched,
                 CASE WHEN g_int THEN g_str WHEN g_m.n1 <> '' THEN g_m.n1 ELSE g_m.n2 END AS g_num_s,
                 CASE WHEN g_int THEN '' WHEN g_m.n1 <> '' THEN g_m.d1 ELSE g_m.d2 END AS g_den_s,
                 CASE WHEN g_int THEN '' ELSE g_m.w1 END AS g_w1,
                 NOT g_int AND (g_m.sign IN ('-', '\u2212') OR g_m.sign2 IN ('-', '\u2212')) AS g_neg,
                 NOT g_int AND regexp_matches(lower(coalesce(g_m.unit, '')), '^' || {sql_literal(SCALE_WORDS)})
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
        f"""SELECT *, TRY_CAST({raw} AS DOUBLE) AS g_f FROM _prev_""",
        f"""SELECT *,
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
            FROM _prev_""",
    ]


def chain(layers: list[str]) -> str:
    """Nest SELECT layers: each reads the one before as ``_prev_``."""
    sql = layers[0]
    for layer in layers[1:]:
        sql = layer.replace("_prev_", f"({sql}) _", 1)
    return sql


# ---------------------------------------------------------------------- records
@dataclass
class Spec:
    """What to read from each record (see :func:`pad_data.stages.ingest.import_programs` / ``ingest``)."""
    dataset: str
    fmt: str = "jsonl"  # ingest: auto|gsm8k|pal|jsonl; import-programs: jsonl
    question_field: list[str] | None = None
    answer_field: str | None = None
    programs: bool = False  # import-programs: a program field, and a teacher
    program_field: str | None = None
    teacher: str | None = None

    def keys(self) -> list[str]:
        keys = list(self.question_field or QUESTION_ALIASES) + [self.answer_field] if self.answer_field \
            else list(self.question_field or QUESTION_ALIASES) + list(ANSWER_ALIASES)
        if self.fmt in ("auto", "gsm8k", "pal"):
            keys += ["question", "answer", "input", "target"]
        if self.programs:
            keys += [self.program_field] if self.program_field else list(PROGRAM_ALIASES)
            if not self.teacher:
                keys += ["teacher", "model"]
        return list(dict.fromkeys(keys))


# JSON that DuckDB reads and Python's json does not: trailing commas, nan/inf in any case (also
# inside strings, and Python's own NaN/Infinity: conservative, such lines go to Python)
NOT_PYTHON_JSON = r",[ \t\r\n]*[\]}]|(?i:nan|inf|infinity)[ \t\r\n]*[,\]}]"


def records_sql(spec: Spec) -> str:
    """A query over ``_pad_lines(ln, j)``: per line ``fast`` and, where true, the record's row
    (``problem_id, question, answer, answer_text, rationale`` and, for programs, ``teacher``,
    ``samples``, the raw completions, and ``programs``, the code of each where SQL is sure of it)."""
    keys = spec.keys()
    v = {k: f"v[{i + 1}]" for i, k in enumerate(keys)}
    paths = "[" + ", ".join(sql_literal(json_pointer(k)) for k in keys) + "]"

    def is_str(x: str) -> str:
        return f"coalesce(starts_with({x}, '\"'), false)"

    def pick(aliases: tuple[str, ...]) -> str:
        return "coalesce(" + ", ".join(v[a] for a in aliases) + ")"

    if spec.fmt == "auto":
        fmt = (f"CASE WHEN {v['question']} IS NOT NULL AND {is_str(v['answer'])} "
               f"AND contains({v['answer']}->>'$', '####') THEN 'gsm8k' "
               f"WHEN {v['input']} IS NOT NULL AND {v['target']} IS NOT NULL THEN 'pal' ELSE 'jsonl' END")
    else:
        fmt = sql_literal(spec.fmt)
    if spec.question_field:
        qraws = [v[f] for f in spec.question_field]
    else:
        qraws = [f"CASE _fmt WHEN 'gsm8k' THEN {v.get('question', 'NULL')} WHEN 'pal' THEN {v.get('input', 'NULL')} "
                 f"ELSE {pick(QUESTION_ALIASES)} END"]
    if spec.answer_field:
        araw = v[spec.answer_field]
    else:
        araw = (f"CASE _fmt WHEN 'gsm8k' THEN {v.get('answer', 'NULL')} WHEN 'pal' THEN {v.get('target', 'NULL')} "
                f"ELSE {pick(ANSWER_ALIASES)} END")
    raws = [f"{q} AS _q{i}" for i, q in enumerate(qraws)] + [f"{araw} AS _a"]
    strs = [f"CASE WHEN {is_str(f'_q{i}')} THEN _q{i}->>'$' END AS _qs{i}" for i in range(len(qraws))]
    strs.append(f"CASE WHEN {is_str('_a')} THEN _a->>'$' END AS _as")
    if spec.programs:
        raws.append(f"{v[spec.program_field] if spec.program_field else pick(PROGRAM_ALIASES)} AS _p")
        strs += [f"CASE WHEN {is_str('_p')} THEN _p->>'$' END AS _ps",
                 "CASE WHEN starts_with(_p, '[') THEN json_extract_string(_p, '$[*]') END AS _pa",
                 "CASE WHEN starts_with(_p, '[') THEN json_type(_p, '$[*]') END AS _pt"]
        if not spec.teacher:
            raws += [f"{v['teacher']} AS _t", f"{v['model']} AS _m"]
            strs += ["_t->>'$' AS _ts", "_m->>'$' AS _ms"]
    if len(qraws) == 1:
        question = "_qs0"
        q_ok = f"_qs0 IS NOT NULL AND NOT ({blank_sql('_qs0')})"
    else:
        parts = ", ".join(strip_sql(f"_qs{i}") for i in range(len(qraws)))
        question = f"array_to_string(list_filter([{parts}], lambda x: x <> ''), ' ')"
        q_ok = " AND ".join(f"_qs{i} IS NOT NULL" for i in range(len(qraws))) + " AND _question <> ''"
    a_ok = "_a IS NOT NULL" if spec.answer_field else "true"
    if spec.fmt in ("pal", "auto"):
        a_ok += " AND (_fmt <> 'pal' OR coalesce(_a <> 'null', false))"
    if spec.fmt in ("gsm8k", "auto"):
        a_ok += f" AND (_fmt <> 'gsm8k' OR (_as IS NOT NULL AND NOT ({blank_sql('_as')})))"
    checks = ["_ok", q_ok, a_ok, "g_sure"]
    out = ["ln"]
    if spec.programs:
        checks.append(f"CASE WHEN _ps IS NOT NULL THEN NOT ({blank_sql('_ps')}) "
                      f"WHEN _pa IS NOT NULL THEN len(_pa) > 0 AND list_bool_and(list_transform(_pt, lambda t: t = 'VARCHAR')) "
                      f"AND list_bool_and(list_transform(_pa, lambda e: NOT ({blank_sql('e')}))) ELSE false END")
        out.append("CASE WHEN _ps IS NOT NULL THEN [_ps] ELSE _pa END AS samples")
        out.append(f"CASE WHEN _ps IS NOT NULL THEN [_code] ELSE list_transform(_pa, lambda x: {code_sql('x')}) "
                   "END AS programs")
        if spec.teacher:
            out.append(f"{sql_literal(spec.teacher)} AS teacher")
        else:
            checks.append(f"(_t IS NULL OR _t = 'null' OR {is_str('_t')}) AND (_m IS NULL OR _m = 'null' OR {is_str('_m')})")
            out.append("coalesce(nullif(_ts, ''), nullif(_ms, ''), 'import') AS teacher")
    fast = " AND ".join(f"coalesce({c}, false)" for c in checks)
    layers = [
        # DuckDB takes the first of two equal keys, Python the last: lines with a key twice go to Python
        f"""SELECT ln, try(json_extract(j, {paths})) AS v, try(json_keys(j)) AS _keys,
                   starts_with(j, '{{') AND NOT regexp_matches(j, {sql_literal(NOT_PYTHON_JSON)}) AS _plain FROM _pad_lines""",
        """SELECT ln, v, coalesce(_plain AND v IS NOT NULL AND len(list_distinct(_keys)) = len(_keys), false) AS _ok
           FROM _prev_""",
        f"SELECT *, {fmt} AS _fmt FROM _prev_",
        f"SELECT ln, _ok, _fmt, {', '.join(raws)} FROM _prev_",
        f"SELECT *, {', '.join(strs)} FROM _prev_",
        f"SELECT *, {question} AS _question FROM _prev_",
    ]
    layers += gold_layers("_a", "_fmt = 'gsm8k'")
    layers.append(f"SELECT *, {fast} AS fast FROM _prev_")
    if spec.programs:
        layers.append(f"SELECT *, CASE WHEN fast AND _ps IS NOT NULL THEN {code_sql('_ps')} END AS _code FROM _prev_")
    layers.append(f"""SELECT {', '.join(out)}, fast, CASE WHEN fast THEN _question END AS question,
                             g_number AS answer, g_text AS answer_text, g_rationale AS rationale FROM _prev_""")
    layers.append(f"SELECT *, CASE WHEN fast THEN {problem_id_sql(spec.dataset, 'question')} END AS problem_id "
                  "FROM _prev_")
    return chain(layers)


# ---------------------------------------------------------------------- lines
@dataclass
class LineChunk:
    first: int  # number of the first line (1-based)
    data: bytes
    offsets: np.ndarray  # int64 line starts, then the end

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def raw(self, ln: int) -> bytes:
        i = ln - self.first
        return self.data[self.offsets[i]:self.offsets[i + 1]]

    def arrow(self) -> pa.Table:
        """The lines as a table ``(ln, j)`` of several record batches; a line that is not valid UTF-8 becomes '' (DuckDB
        then leaves it to Python, which names the byte)."""
        arr = pa.LargeStringArray.from_buffers(len(self), pa.py_buffer(self.offsets), pa.py_buffer(self.data))
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            texts = []
            for i in range(len(self)):
                try:
                    texts.append(self.data[self.offsets[i]:self.offsets[i + 1]].decode("utf-8"))
                except UnicodeDecodeError:
                    texts.append("")
            arr = pa.array(texts, pa.large_string())
        table = pa.table({"ln": pa.array(np.arange(self.first, self.first + len(self), dtype=np.int64)), "j": arr})
        # zero-copy slices: DuckDB gives each thread one record batch, so a single batch runs on one core
        return pa.Table.from_batches(table.to_batches(max_chunksize=SCAN_ROWS), table.schema)


def line_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[LineChunk]:
    """The file's lines (split at b"\\n" as Python's binary line iteration does), in chunks of
    about ``chunk_bytes`` of whole lines."""
    first, carry = 1, b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk_bytes)
            data = carry + block if carry else block
            if not block:
                if data:
                    yield LineChunk(first, data, np.array([0, len(data)], dtype=np.int64))
                return
            nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            if not len(nl):
                carry = data
                continue
            offsets = np.empty(len(nl) + 1, dtype=np.int64)
            offsets[0] = 0
            offsets[1:] = nl + 1
            carry = data[offsets[-1]:]
            chunk = LineChunk(first, data, offsets)
            first += len(chunk)
            yield chunk


# ---------------------------------------------------------------------- a source, read
REC_COLUMNS = {"ln": pa.int64(), "where_": pa.string(), "problem_id": pa.string(), "question": pa.string(),
               "answer": pa.float64(), "answer_text": pa.string(), "rationale": pa.string(),
               "teacher": pa.string(), "samples": pa.list_(pa.string()), "programs": pa.list_(pa.string())}


class Batch:
    """The records of one source: the rows DuckDB was sure of (table ``rec`` of a scratch
    in-memory connection, so the store is not held while reading), and the :class:`Record` s
    left to the Python path (``slow``, in source order), whose rows :meth:`add_rows` appends.

    JSONL files are read in bulk; any other source record by record (all of them ``slow``).
    ``first`` is the first record (what the split is guessed from). Lines that are not records
    raise an IngestError, or with a ``skipped`` list are appended to it, as
    :func:`pad_data.stages.sources.read_records` does; ``limit`` counts records as it does.
    ``memory``: the scratch database's DuckDB memory (a stage passes half its store's budget,
    at most :data:`SCRATCH_MEMORY`), ``folder``: where it lives and spills (beside the store).
    """

    def __init__(self, source, spec: Spec, limit: int | None = None, config: str | None = None,
                 hf_split: str | None = None, skipped: list[str] | None = None, chunk_bytes: int = CHUNK_BYTES,
                 memory: str = SCRATCH_MEMORY, folder: str | os.PathLike | None = None):
        import duckdb

        from pad_data.stages.sources import IngestError, read_records

        self.spec = spec
        self._tmp = tempfile.mkdtemp(prefix=".pad-read-", dir=folder)
        # a scratch database that spills to disk beyond ``memory`` (a 10M-record file is GBs);
        # the programs built end up in a file (``path``) the store attaches (:meth:`attached`)
        self.path = os.path.join(self._tmp, "programs.duckdb")
        self.con = duckdb.connect(config={"memory_limit": memory, "temp_directory": self._tmp})
        self.con.execute("CREATE TABLE rec (" + ", ".join(
            f"{name} {_SQL_TYPES[str(t)]}" for name, t in REC_COLUMNS.items()) + ")")
        self.slow: list = []
        self.first = None
        self.fast = 0
        path = Path(source)
        try:
            if USE_SQL and path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson"):
                self.prefix = f"{path}:"
                objects = self._read_jsonl(path, limit, skipped, chunk_bytes)
                if not objects:
                    if skipped:
                        raise IngestError(f"{path}: no valid records ({len(skipped)} skipped; first: {skipped[0]})")
                    raise IngestError(f"{path}: empty, no records")
            else:
                self.prefix = None
                records = read_records(source, limit=limit, config=config, hf_split=hf_split, skipped=skipped)
                self.slow = list(enumerate(records, 1))
                self.first = records[0]
        except BaseException:
            self.close()
            raise

    def _read_jsonl(self, path: Path, limit: int | None, skipped: list[str] | None, chunk_bytes: int) -> int:
        from pad_data.stages.sources import IngestError, Record, jsonl_record

        sql = records_sql(self.spec)
        cols = "teacher, samples, programs" if self.spec.programs else "NULL, NULL, NULL"
        objects = 0
        for chunk in line_chunks(path, chunk_bytes):
            self.con.register("_pad_lines", chunk.arrow())
            try:
                # every line, then the slow ones out (a WHERE on ``fast`` here would be pushed down
                # and evaluate the checks twice)
                self.con.execute(f"INSERT INTO rec SELECT ln, NULL, problem_id, question, answer, answer_text, "
                                 f"rationale, {cols} FROM ({sql})")
            finally:
                self.con.unregister("_pad_lines")
            slow = self.con.execute(f"SELECT ln FROM rec WHERE ln >= {chunk.first} AND problem_id IS NULL "
                                    "ORDER BY ln").fetchall()
            self.con.execute(f"DELETE FROM rec WHERE ln >= {chunk.first} AND problem_id IS NULL")
            added = len(chunk) - len(slow)
            items = []
            for (ln,) in slow:
                try:
                    items.append((ln, jsonl_record(path, ln, chunk.raw(ln))))
                except IngestError as exc:
                    items.append((ln, exc))
            cutoff = None
            if limit is not None:
                fast = self.con.execute(f"SELECT ln FROM rec WHERE ln >= {chunk.first}").fetchnumpy()["ln"]
                lns = np.sort(np.concatenate([fast, np.array([ln for ln, r in items if isinstance(r, Record)],
                                                             dtype=np.int64)]))
                if objects + len(lns) >= limit:
                    cutoff = int(lns[limit - objects - 1])
                    added -= self.con.execute(f"DELETE FROM rec WHERE ln > {cutoff}").fetchall()[0][0]
            objects += added
            self.fast += added
            first_slow = None
            for ln, item in items:
                if cutoff is not None and ln > cutoff:
                    break
                if isinstance(item, IngestError):
                    if skipped is None:
                        raise item
                    skipped.append(str(item))
                elif item is not None:
                    self.slow.append((ln, item))
                    first_slow = ln if first_slow is None else first_slow
                    objects += 1
            if self.first is None and objects:
                first_fast = self.con.execute(f"SELECT min(ln) FROM rec WHERE ln >= {chunk.first}").fetchall()[0][0]
                if first_slow is not None and (first_fast is None or first_slow < first_fast):
                    self.first = next(rec for ln, rec in self.slow if ln == first_slow)
                else:
                    self.first = Record(f"{path}:{first_fast}", json.loads(chunk.raw(first_fast)))
            if cutoff is not None:
                break
        return objects

    def records(self) -> int:
        return self.con.execute("SELECT count(*) FROM rec").fetchall()[0][0]

    def where(self, ln: int, where: str | None) -> str:
        return where if where is not None else f"{self.prefix}{ln}"

    def add_rows(self, rows: list[dict]) -> None:
        """Append rows (dicts with the keys of REC_COLUMNS; missing ones are NULL) to ``rec``."""
        if rows:
            table = pa.Table.from_pylist(rows, schema=pa.schema(REC_COLUMNS))
            self.con.register("_pad_rows", table)
            try:
                self.con.execute("INSERT INTO rec SELECT * FROM _pad_rows")
            finally:
                self.con.unregister("_pad_rows")

    def conflict_candidates(self) -> list[dict]:
        """Rows (``ln, where, problem_id, answer, answer_text``, in source order) of every question
        stored with more than one gold answer, by a key at least as fine as
        :func:`pad_data.stages.ingest._gold_key` (so the exact check runs on these rows only)."""
        rows = self.con.execute(
            """SELECT ln, where_, problem_id, answer, answer_text FROM rec WHERE problem_id IN (
                   SELECT problem_id FROM rec GROUP BY 1 HAVING count(DISTINCT CASE
                       WHEN answer IS NOT NULL THEN 'n' || CAST(answer AS VARCHAR)
                       WHEN answer_text IS NULL THEN 'x' ELSE 't' || answer_text END) > 1)
               ORDER BY ln""").fetchall()
        return [{"ln": ln, "where": self.where(ln, w), "problem_id": pid, "answer": a, "answer_text": t}
                for ln, w, pid, a, t in rows]

    def drop_problems(self, problem_ids: set[str]) -> None:
        self.con.register("_pad_drop", pa.table({"problem_id": sorted(problem_ids)}))
        try:
            self.con.execute("DELETE FROM rec WHERE problem_id IN (SELECT problem_id FROM _pad_drop)")
        finally:
            self.con.unregister("_pad_drop")

    def gold_counts(self) -> tuple[int, int]:
        """(records, records without any gold answer)."""
        return self.con.execute("SELECT count(*), count(*) FILTER (WHERE answer IS NULL AND answer_text IS NULL) "
                                "FROM rec").fetchall()[0]

    def finish(self, split: str, source: str, origin: str | None = None) -> int:
        """Write what the store copies to the file ``path`` and free the scratch: ``prob``, one
        ``problems`` row per question (from its first record), and with ``origin`` ``prog``, the
        ``programs`` rows (:meth:`_programs`). The scratch connection is closed, so its memory
        (up to ``memory``) is given back before the store is taken. Returns how many programs."""
        s = self.spec
        self.con.execute(f"ATTACH {sql_literal(self.path)} AS pad_out")
        try:
            self.con.execute(
                f"""CREATE TABLE pad_out.prob AS
                    SELECT problem_id, {sql_literal(s.dataset)} AS dataset, {sql_literal(split)} AS split, question,
                           answer, answer_text, rationale, {sql_literal(source)} AS source FROM rec
                    QUALIFY row_number() OVER (PARTITION BY problem_id ORDER BY ln) = 1 ORDER BY ln""")
            n = self._programs(origin, "pad_out.prog") if origin is not None else 0
        finally:
            self.con.execute("DETACH pad_out")
        self.con.close()
        return n

    def _programs(self, origin: str, table: str) -> int:
        """Create ``table`` with the ``programs`` rows: every sample of every record, ``sample_idx``
        counting up per question in source order, the program extracted from its completion (in
        SQL where that is sure, else by :func:`pad_data.rules.extract.extract_program`) and its content
        id, in source order. Returns how many."""
        from pad_data.rules.extract import extract_program

        rest = self.con.execute("SELECT ln, k, s FROM (SELECT ln, unnest(samples) AS s, unnest(programs) AS p, "
                                "unnest(range(len(samples))) AS k FROM rec) WHERE p IS NULL").fetchall()
        self.con.execute("CREATE OR REPLACE TABLE extracted (ln BIGINT, k BIGINT, program VARCHAR)")
        if rest:
            self.con.register("_pad_extracted", pa.table({"ln": [r[0] for r in rest], "k": [r[1] for r in rest],
                                                          "program": [extract_program(r[2]) for r in rest]}))
            try:
                self.con.execute("INSERT INTO extracted SELECT * FROM _pad_extracted")
            finally:
                self.con.unregister("_pad_extracted")
        pid = program_id_sql("problem_id", sql_literal(origin), "teacher", "sample_idx", "program")
        # ``first``: the samples of the question's earlier records (a window over narrow rows)
        self.con.execute(
            f"""CREATE TABLE {table} AS
                WITH firsts AS (SELECT ln, coalesce(sum(len(samples)) OVER (PARTITION BY problem_id ORDER BY ln
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first FROM rec)
                SELECT {pid} AS program_id, problem_id, {sql_literal(origin)} AS origin, teacher, sample_idx, program, completion
                FROM (SELECT ln, problem_id, teacher, first + k AS sample_idx, coalesce(p, e.program) AS program,
                             s AS completion, k
                      FROM (SELECT ln, problem_id, teacher, first, unnest(samples) AS s, unnest(programs) AS p,
                                   unnest(range(len(samples))) AS k
                            FROM rec JOIN firsts USING (ln))
                      LEFT JOIN extracted e USING (ln, k))
                ORDER BY ln, k""")
        self.con.execute("DROP TABLE extracted")
        n, distinct = self.con.execute(f"SELECT count(*), count(DISTINCT program_id) FROM {table}").fetchall()[0]
        if distinct < n:  # two ids alike (a 64-bit hash collision): keep the first, as insert_new does
            self.con.execute(f"CREATE TABLE prog_first AS SELECT * FROM {table} "
                             "QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY rowid) = 1 ORDER BY rowid")
            self.con.execute(f"DELETE FROM {table}")
            self.con.execute(f"INSERT INTO {table} SELECT * FROM prog_first")
            self.con.execute("DROP TABLE prog_first")
            n = distinct
        return n

    @contextlib.contextmanager
    def attached(self, store) -> Iterator[str]:
        """The file :meth:`finish` wrote, attached read-only to ``store``'s connection as
        ``pad_batch``, so the store copies ``pad_batch.prob`` and ``pad_batch.prog`` with one
        ``INSERT ... SELECT`` each, written out as it goes (rows appended from Python batches
        would sit in its memory until the commit)."""
        store.con.execute(f"ATTACH {sql_literal(self.path)} AS pad_batch (READ_ONLY)")
        try:
            yield "pad_batch"
        finally:
            store.con.execute("DETACH pad_batch")

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SQL_TYPES = {"int64": "BIGINT", "string": "VARCHAR", "double": "DOUBLE", "list<item: string>": "VARCHAR[]"}
