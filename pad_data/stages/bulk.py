"""Vectorized reading for ``pad ingest`` and ``pad import-programs``: SQL that is sure, or Python.

A JSONL file is read in chunks of whole lines and handed to DuckDB as Arrow (no copy). DuckDB
parses each line, picks its fields, validates them and computes the row: the problem id (sha256
of the whitespace-collapsed question), the gold answer (:mod:`pad_data.rules.answers_sql`, the
answer parser in SQL) and, later, the program extracted from each completion and its id. A line
goes to the Python path of :mod:`pad_data.stages.ingest` (the reference) whenever DuckDB could
answer differently:

- not JSON as Python's ``json`` reads it: DuckDB accepts trailing commas and ``nan``/``inf``
  (lines with anything that looks like them go to Python), and takes the first of two equal keys
  where Python takes the last (a line where a key it reads appears twice, or is written with an
  escape, goes to Python);
- a field of another type, missing or empty: every error is Python's, so its message is too;
- a gold answer the SQL parser does not cover exactly (text after ``####`` beyond ASCII and
  ``−€£¥₹``, JSON numbers of more than 15 digits...);
- (per completion) code that needs fence or prose extraction: SQL extracts only completions
  whose extraction is the same whether or not they parse (see :func:`plain_code_sql`);
- a record with multiple-choice options (the options field, or ``options``, not null): the
  options and the choice gold are read by the one answer reader,
  :func:`pad_data.rules.answers.choice_gold`.

Python's notion of whitespace (``str.strip``, ``str.split``, ``re``'s ``\\s``) is taken from
Python itself, so SQL trims and collapses exactly the same characters.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from pad_data.rules.answers_sql import chain, gold_layers, re2_class, strip_sql, ws_class
from pad_data.rules.options import size_bytes
from pad_data.store import duckdb_config, new_scratch_folder, remove_scratch_folder, sql_literal
from pad_data.store.sqltools import registered
from pad_data.store.ids import problem_id_sql, program_id_sql

CHUNK_BYTES = 64 << 20  # at most; a 32nd of the scratch's memory under a smaller budget
SCRATCH_MEMORY = "2GB"  # DuckDB memory of a read at most (beyond it, it spills to a temp folder); see SourceRead
SCAN_ROWS = 16_384  # lines per Arrow record batch handed to DuckDB: it scans one batch per thread
USE_SQL = True  # False: every JSONL line takes the Python path (the reference; tests compare the two)
QUESTION_ALIASES = ("question", "input", "problem")
ANSWER_ALIASES = ("answer", "target", "gold")
PROGRAM_ALIASES = ("program", "code", "generation", "completion")
OPTIONS_FIELD = "options"  # read as multiple-choice options when no options field is named


# ---------------------------------------------------------------------- SQL text helpers
def re2_escape(s: str) -> str:
    return "".join("\\" + c if c in r"\.^$|?*+()[]{}" else c for c in s)


def json_pointer(key: str) -> str:
    return "/" + key.replace("~", "~0").replace("/", "~1")


def blank_sql(expr: str) -> str:
    """``not expr.strip()`` in SQL."""
    return f"NOT regexp_matches({expr}, {sql_literal(ws_class(negate=True))})"


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
    no_gold: bool = False  # no gold answer, whatever the records hold
    options_field: str | None = None  # multiple-choice options [default: OPTIONS_FIELD when a record has it]

    def keys(self) -> list[str]:
        keys = list(self.question_field or QUESTION_ALIASES) + [self.options_field or OPTIONS_FIELD]
        if not self.no_gold:
            keys += [self.answer_field] if self.answer_field else list(ANSWER_ALIASES)
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
    v, pointers, nested_ok = _fields_sql(spec.keys())
    paths = "[" + ", ".join(sql_literal(p) for p in pointers) + "]"
    raws, strs = _raw_fields(spec, v)
    question, q_ok = _question_sql(spec)
    checks, out = ["_ok", q_ok, _answer_ok(spec), "g_sure", "_no_options"], ["ln"]
    if spec.programs:
        program_checks, program_out = _program_columns(spec)
        checks += program_checks
        out += program_out
    fast = " AND ".join(f"coalesce({c}, false)" for c in checks)
    layers = [
        # DuckDB takes the first of two equal keys, Python the last: lines with a key twice go to Python
        f"""SELECT ln, try(json_extract(j, {paths})) AS v, try(json_keys(j)) AS _keys,
                   starts_with(j, '{{') AND NOT regexp_matches(j, {sql_literal(NOT_PYTHON_JSON)}) AS _plain FROM _pad_lines""",
        f"""SELECT ln, v, coalesce(_plain AND v IS NOT NULL AND len(list_distinct(_keys)) = len(_keys)
                                   AND {nested_ok}, false) AS _ok
           FROM _prev_""",
        f"SELECT *, {_format_sql(spec, v)} AS _fmt FROM _prev_",
        f"SELECT ln, _ok, _fmt, {', '.join(raws)} FROM _prev_",
        f"SELECT *, {', '.join(strs)} FROM _prev_",
        f"SELECT *, {question} AS _question FROM _prev_",
    ]
    layers += gold_layers("_a", "false" if spec.no_gold else "_fmt = 'gsm8k'")
    layers.append(f"SELECT *, {fast} AS fast FROM _prev_")
    if spec.programs:
        layers.append(f"SELECT *, CASE WHEN fast AND _ps IS NOT NULL THEN {code_sql('_ps')} END AS _code FROM _prev_")
    layers.append(f"""SELECT {', '.join(out)}, fast, CASE WHEN fast THEN _question END AS question,
                             g_number AS answer, g_text AS answer_text, g_rationale AS rationale FROM _prev_""")
    layers.append(f"SELECT *, CASE WHEN fast THEN {problem_id_sql(spec.dataset, 'question')} END AS problem_id "
                  "FROM _prev_")
    return chain(layers)


def _fields_sql(keys: list[str]) -> tuple[dict[str, str], list[str], str]:
    """``(v, pointers, ok)``: the raw JSON of each field (``v[name]``, SQL over the list ``v`` that
    ``json_extract(j, pointers)`` gives) and the condition that the nested objects read are sure.

    A dotted name is, as :func:`pad_data.stages.sources.lookup` reads it, the key itself when the
    record has it, else the path through nested objects (every step an object: a JSON pointer
    would also index arrays). DuckDB takes the first of two equal keys of a nested object where
    Python takes the last, so a record with a duplicate key in an object on a path goes to Python.
    """
    pointers: list[str] = []

    def at(pointer: str) -> str:
        if pointer not in pointers:
            pointers.append(pointer)
        return f"v[{pointers.index(pointer) + 1}]"

    v, ok = {}, []
    for key in keys:
        parts = key.split(".")
        v[key] = at(json_pointer(key))
        if len(parts) < 2 or not all(parts):
            continue
        steps = [at("".join(json_pointer(p) for p in parts[:i])) for i in range(1, len(parts))]
        objects = " AND ".join(f"json_type({s}) = 'OBJECT'" for s in steps)
        v[key] = f"coalesce({v[key]}, CASE WHEN {objects} THEN {at(''.join(json_pointer(p) for p in parts))} END)"
        ok += [f"(json_type({s}) IS DISTINCT FROM 'OBJECT' OR len(list_distinct(json_keys({s}))) = len(json_keys({s})))"
               for s in steps]
    return v, pointers, " AND ".join(dict.fromkeys(ok)) or "true"


def _is_str(x: str) -> str:
    """Whether the raw JSON ``x`` is a string."""
    return f"coalesce(starts_with({x}, '\"'), false)"


def _pick(v: dict[str, str], aliases: tuple[str, ...]) -> str:
    """The first of the ``aliases`` fields a record has."""
    return "coalesce(" + ", ".join(v[a] for a in aliases) + ")"


def _format_sql(spec: Spec, v: dict[str, str]) -> str:
    """The record's format (``_fmt``): ``auto`` guesses it per record as ``ingest.detect_format`` does."""
    if spec.fmt != "auto":
        return sql_literal(spec.fmt)
    return (f"CASE WHEN {v['question']} IS NOT NULL AND {_is_str(v['answer'])} "
            f"AND contains({v['answer']}->>'$', '####') THEN 'gsm8k' "
            f"WHEN {v['input']} IS NOT NULL AND {v['target']} IS NOT NULL THEN 'pal' ELSE 'jsonl' END")


def _question_raws(spec: Spec, v: dict[str, str]) -> list[str]:
    """The raw JSON of each question field (several with ``question_field``, else one by format)."""
    if spec.question_field:
        return [v[f] for f in spec.question_field]
    return [f"CASE _fmt WHEN 'gsm8k' THEN {v.get('question', 'NULL')} WHEN 'pal' THEN {v.get('input', 'NULL')} "
            f"ELSE {_pick(v, QUESTION_ALIASES)} END"]


def _raw_fields(spec: Spec, v: dict[str, str]) -> tuple[list[str], list[str]]:
    """Two layers' columns: the raw JSON of the fields a record is read from (``_q<i>``, ``_a``,
    ``_p``, ``_t``, ``_m``), then the text of those that are strings (``_qs<i>``, ``_as``, ...)."""
    qraws = _question_raws(spec, v)
    if spec.no_gold:
        araw = "NULL::JSON"
    elif spec.answer_field:
        araw = v[spec.answer_field]
    else:
        araw = (f"CASE _fmt WHEN 'gsm8k' THEN {v.get('answer', 'NULL')} WHEN 'pal' THEN {v.get('target', 'NULL')} "
                f"ELSE {_pick(v, ANSWER_ALIASES)} END")
    options = v[spec.options_field or OPTIONS_FIELD]
    raws = [f"{q} AS _q{i}" for i, q in enumerate(qraws)] + [f"{araw} AS _a",
                                                              f"coalesce(json_type({options}) = 'NULL', true) AS _no_options"]
    strs = [f"CASE WHEN {_is_str(f'_q{i}')} THEN _q{i}->>'$' END AS _qs{i}" for i in range(len(qraws))]
    strs.append(f"CASE WHEN {_is_str('_a')} THEN _a->>'$' END AS _as")
    if spec.programs:
        raws.append(f"{v[spec.program_field] if spec.program_field else _pick(v, PROGRAM_ALIASES)} AS _p")
        strs += [f"CASE WHEN {_is_str('_p')} THEN _p->>'$' END AS _ps",
                 "CASE WHEN starts_with(_p, '[') THEN json_extract_string(_p, '$[*]') END AS _pa",
                 "CASE WHEN starts_with(_p, '[') THEN json_type(_p, '$[*]') END AS _pt"]
        if not spec.teacher:
            raws += [f"{v['teacher']} AS _t", f"{v['model']} AS _m"]
            strs += ["_t->>'$' AS _ts", "_m->>'$' AS _ms"]
    return raws, strs


def _question_sql(spec: Spec) -> tuple[str, str]:
    """(the question, the check that it is a non-blank string): one field as it is, or several
    fields' values, each trimmed, joined with a space."""
    n = len(spec.question_field) if spec.question_field else 1
    if n == 1:
        return "_qs0", f"_qs0 IS NOT NULL AND NOT ({blank_sql('_qs0')})"
    parts = ", ".join(strip_sql(f"_qs{i}") for i in range(n))
    return (f"array_to_string(list_filter([{parts}], lambda x: x <> ''), ' ')",
            " AND ".join(f"_qs{i} IS NOT NULL" for i in range(n)) + " AND _question <> ''")


def _answer_ok(spec: Spec) -> str:
    """The checks of the answer field that Python's path makes before reading the answer."""
    if spec.no_gold:
        return "true"
    a_ok = "_a IS NOT NULL" if spec.answer_field else "true"
    if spec.fmt in ("pal", "auto"):
        a_ok += " AND (_fmt <> 'pal' OR coalesce(_a <> 'null', false))"
    if spec.fmt in ("gsm8k", "auto"):
        a_ok += f" AND (_fmt <> 'gsm8k' OR (_as IS NOT NULL AND NOT ({blank_sql('_as')})))"
    return a_ok


def _program_columns(spec: Spec) -> tuple[list[str], list[str]]:
    """(checks, output columns) of a record's programs: ``samples`` (a string, or a list of
    non-blank strings), ``programs`` (the code SQL is sure of) and ``teacher``."""
    checks = [f"CASE WHEN _ps IS NOT NULL THEN NOT ({blank_sql('_ps')}) "
              f"WHEN _pa IS NOT NULL THEN len(_pa) > 0 AND list_bool_and(list_transform(_pt, lambda t: t = 'VARCHAR')) "
              f"AND list_bool_and(list_transform(_pa, lambda e: NOT ({blank_sql('e')}))) ELSE false END"]
    out = ["CASE WHEN _ps IS NOT NULL THEN [_ps] ELSE _pa END AS samples",
           f"CASE WHEN _ps IS NOT NULL THEN [_code] ELSE list_transform(_pa, lambda x: {code_sql('x')}) "
           "END AS programs"]
    if spec.teacher:
        out.append(f"{sql_literal(spec.teacher)} AS teacher")
    else:
        checks.append(f"(_t IS NULL OR _t = 'null' OR {_is_str('_t')}) "
                      f"AND (_m IS NULL OR _m = 'null' OR {_is_str('_m')})")
        out.append("coalesce(nullif(_ts, ''), nullif(_ms, ''), 'import') AS teacher")
    return checks, out


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
               "teacher": pa.string(), "samples": pa.list_(pa.string()), "programs": pa.list_(pa.string()),
               "choice": pa.string(), "options": pa.list_(pa.string())}


class SourceRead:
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
        self._tmp = new_scratch_folder(folder, "read")
        # a scratch database that spills to disk beyond ``memory`` (a 10M-record file is GBs);
        # the programs built end up in a file (``path``) the store attaches (:meth:`attached`)
        self.path = os.path.join(self._tmp, "programs.duckdb")
        self.con = duckdb.connect(config=duckdb_config(memory, temp_directory=self._tmp))
        self.con.execute("CREATE TABLE rec (" + ", ".join(
            f"{name} {_SQL_TYPES[str(t)]}" for name, t in REC_COLUMNS.items()) + ")")
        self.slow: list = []
        self.first = None
        self.fast = 0
        path = Path(source)
        try:
            if USE_SQL and path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson"):
                self.prefix = f"{path}:"
                # a chunk's lines and what DuckDB parses them into within the scratch's memory
                chunk_bytes = min(chunk_bytes, max(1 << 20, size_bytes(memory) // 32))
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
                                 f"rationale, {cols}, NULL, NULL FROM ({sql})")
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

    def problems(self) -> int:
        """How many distinct problems (questions) the records hold."""
        return self.con.execute("SELECT count(DISTINCT problem_id) FROM rec").fetchall()[0][0]

    def where(self, ln: int, where: str | None) -> str:
        return where if where is not None else f"{self.prefix}{ln}"

    def add_rows(self, rows: list[dict]) -> None:
        """Append rows (dicts with the keys of REC_COLUMNS; missing ones are NULL) to ``rec``."""
        if rows:
            table = pa.Table.from_pylist(rows, schema=pa.schema(REC_COLUMNS))
            with registered(self.con, table) as new:
                self.con.execute(f"INSERT INTO rec SELECT * FROM {new}")

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

    def kept_lines(self, lines: list[int]) -> set[int]:
        """Those of ``lines`` whose record is still read (not dropped by :meth:`drop_problems`)."""
        if not lines:
            return set()
        with registered(self.con, pa.table({"ln": pa.array(lines, pa.int64())})) as wanted:
            return {r[0] for r in self.con.execute(f"SELECT ln FROM rec WHERE ln IN (SELECT ln FROM {wanted})").fetchall()}

    def drop_problems(self, problem_ids: set[str]) -> None:
        # a frame rather than a list parameter: a file may hold many conflicting questions
        with registered(self.con, pa.table({"problem_id": sorted(problem_ids)})) as drop:
            self.con.execute(f"DELETE FROM rec WHERE problem_id IN (SELECT problem_id FROM {drop})")

    def options_read(self) -> int:
        """How many records have multiple-choice options."""
        return self.con.execute("SELECT count(*) FROM rec WHERE options IS NOT NULL").fetchall()[0][0]

    def short_text_golds(self) -> dict[str, int]:
        """``{gold text: records}`` of the text golds read with no options that are short enough to
        be a choice letter (what :func:`pad_data.rules.answers.looks_like_choice` then judges)."""
        return dict(self.con.execute("SELECT answer_text, count(*) FROM rec WHERE answer IS NULL AND options IS NULL "
                                     "AND length(answer_text) <= 8 GROUP BY 1").fetchall())

    def gold_counts(self) -> tuple[int, int]:
        """(records, records without any gold answer)."""
        return self.con.execute("SELECT count(*), count(*) FILTER (WHERE answer IS NULL AND answer_text IS NULL) "
                                "FROM rec").fetchall()[0]

    def finish(self, split: str, source: str, origin: str | None = None, preamble: str | None = None) -> int:
        """Write what the store copies to the file ``path`` and free the scratch: ``prob``, one
        ``problems`` row per question (from its first record), and with ``origin`` ``prog``, the
        ``programs`` rows (:meth:`_programs`; ``preamble``: the id of the preamble they run after).
        The scratch connection is closed, so its memory (up to ``memory``) is given back before
        the store is taken. Returns how many programs."""
        s = self.spec
        self.con.execute(f"ATTACH {sql_literal(self.path)} AS pad_out")
        try:
            self.con.execute(
                f"""CREATE TABLE pad_out.prob AS
                    SELECT problem_id, {sql_literal(s.dataset)} AS dataset, {sql_literal(split)} AS split, question,
                           answer, answer_text, rationale, {sql_literal(source)} AS source, choice, options FROM rec
                    QUALIFY row_number() OVER (PARTITION BY problem_id ORDER BY ln) = 1 ORDER BY ln""")
            n = self._programs(origin, "pad_out.prog", preamble) if origin is not None else 0
        finally:
            self.con.execute("DETACH pad_out")
        self.con.close()
        return n

    def _programs(self, origin: str, table: str, preamble: str | None = None) -> int:
        """Create ``table`` with the ``programs`` rows: every sample of every record, ``sample_idx``
        counting up per question in source order, the program extracted from its completion (in
        SQL where that is sure, else by :func:`pad_data.rules.extract.extract_program`, a batch
        at a time), its content id (with ``preamble``, the id of its preamble) and that preamble,
        in source order. Returns how many."""
        from pad_data.rules.extract import extract_program

        # ``first``: the samples of the question's earlier records (a window over narrow rows)
        self.con.execute("""CREATE TABLE firsts AS SELECT ln, coalesce(sum(len(samples)) OVER (PARTITION BY problem_id
                            ORDER BY ln ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first FROM rec""")
        samples = """SELECT ln, k, problem_id, teacher, first + k AS sample_idx, s AS completion, p AS program
                     FROM (SELECT ln, problem_id, teacher, first, unnest(samples) AS s, unnest(programs) AS p,
                                  unnest(range(len(samples))) AS k FROM rec JOIN firsts USING (ln))"""
        # the samples SQL is not sure of, with their programs extracted in Python: whole rows, so
        # that the table is one UNION ALL and one sort (a join of them held its hash table beside
        # the sort: out of memory at 2.8M samples under 1.4 GiB)
        self.con.execute(f"CREATE TABLE extracted AS SELECT * FROM ({samples}) LIMIT 0")
        reader = self.con.cursor().sql(f"SELECT * FROM ({samples}) WHERE program IS NULL").to_arrow_reader(SCAN_ROWS)
        for batch in reader:
            programs = pa.array([extract_program(c) for c in batch.column("completion").to_pylist()], pa.string())
            done = pa.Table.from_batches([batch]).set_column(6, "program", programs)
            with registered(self.con, done) as new:
                self.con.execute(f"INSERT INTO extracted SELECT * FROM {new}")
        pid = program_id_sql("problem_id", sql_literal(origin), "teacher", "sample_idx", "program", preamble)
        pre = f"{sql_literal(preamble)} AS preamble_id" if preamble else "NULL::VARCHAR AS preamble_id"
        self.con.execute(
            f"""CREATE TABLE {table} AS
                SELECT {pid} AS program_id, problem_id, {sql_literal(origin)} AS origin, teacher, sample_idx, program,
                       completion, {pre}
                FROM (SELECT * FROM ({samples}) WHERE program IS NOT NULL UNION ALL SELECT * FROM extracted)
                ORDER BY ln, k""")
        self.con.execute("DROP TABLE firsts")
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
        remove_scratch_folder(self._tmp)

    def __enter__(self) -> "SourceRead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_SQL_TYPES = {"int64": "BIGINT", "string": "VARCHAR", "double": "DOUBLE", "list<item: string>": "VARCHAR[]"}
