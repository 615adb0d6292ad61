"""``pad check``: a Great Expectations suite over the store, built in code.

Each check is a GX 1.x expectation run (ephemeral context, pandas data source, no project
folder) against a frame pulled from the store with SQL:

| frame | checks (critical ones fail the run) |
|---|---|
| problems | ids unique and non-null; dataset non-null; a gold answer (number or text: TabMWP's and AQuA's golds are text too) present in every dataset that has gold answers |
| programs | ids unique and non-null; origin in the vocabulary; every program has a problem |
| executions (latest per program) | label and status in the vocabulary; stdout and value sizes bounded; label shares within bounds (warnings) |
| train_questions (store split 'train' + every curated train split) | no curated test question (normalized text) in the same snapshot's train split; no near-duplicate of a reference benchmark question: exact normalized match, or more than 80% of its words covered by word 8-grams that occur in the reference (the "dirty" rule of Llama 2's contamination analysis) |

Users add expectations in a YAML/JSON file: a list of ``{table, expectation, kwargs,
critical}`` items, ``expectation`` being any GX expectation in snake_case. Results are
stored in ``check_runs``/``check_results``; ``docs_dir`` writes GX Data Docs HTML.

Memory: GX sees a frame a chunk at a time, never whole. A chunk holds at most
:data:`CHUNK_SHARE` of the budget (``--memory-limit``) at :data:`ROW_BYTES` a row plus its text,
and never more than :data:`MAX_CHUNK_ROWS` rows, so what pad holds beside DuckDB's budget is
bounded whatever the store's size (GX itself, ~0.3 GiB, and one chunk). The frames' rows (ids
and small columns, the train questions' text) and the curated test keys are first copied, in
``_row`` order, from the store into a scratch DuckDB file beside it, each database with half the
budget; the store is then let go (other processes may use it while the expectations run), and
the chunks are ranges of ``_row`` read from the copy. How a check is run:

- a map expectation that judges each row alone (:data:`_ROW_BY_ROW`): on every chunk; its counts
  are summed, its first failing rows kept in frame order, and ``mostly`` applied to the sums, as
  GX decides on one frame;
- uniqueness (``expect_column_values_to_be_unique``, ``expect_compound_columns_to_be_unique``):
  on hash parts of the key instead, so equal values meet in one part;
- any other expectation (an aggregate: the label shares' mean, a user's max or median; a map
  expectation judging a row by its column: increasing, z-scores, outliers) reads only the
  columns it names, whole; a user expectation naming no column (row count) or with a
  ``row_condition`` reads the whole frame. The shares take
  one byte an execution each (30 MB at 10M programs).

At 10M programs under the default budget (3 GiB) the run peaked at 1.8 GiB, where the whole
frames took 5.2 GiB (bench/README.md, "One memory budget for execute, vote and check").
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import io
import itertools
import json
import logging
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

from pad_data.rules.labels import LABELS
from pad_data.sandbox.pool import STATUSES
from pad_data.store import ORIGINS, Store, copy_into, scratch_db
from pad_data.store.sqltools import registered

NGRAM = 8
STDOUT_MAX = 8192 + 64
VALUE_MAX = 1000


class CheckError(ValueError):
    """A bad expectations file or reference."""


@dataclass
class Check:
    table: str
    expectation: str  # snake_case GX expectation, e.g. expect_column_values_to_be_unique
    kwargs: dict
    critical: bool = True
    note: str = ""


@dataclass
class CheckResult:
    check: Check
    success: bool
    observed: str


@dataclass
class Bounds:
    """Label share bounds (warnings): min share of correct, max share of crashed/forbidden."""

    min_correct: float = 0.05
    max_crashed: float = 0.01
    max_forbidden: float = 0.05
    contamination: float = 0.8  # max share of a question's words covered by reference 8-grams


_PUNCT = re.compile(r"[^a-z0-9 ]+")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation removed, whitespace collapsed: what leakage checks compare."""
    return " ".join(_PUNCT.sub(" ", str(text).lower()).split())


def leak_key(question: str | None) -> str | None:
    """What the leak check compares a question by, and ``pad curate`` keeps in one split: its
    :func:`normalize_text`, or None when nothing is left (no letters or digits: no evidence)."""
    return (normalize_text(question) or None) if isinstance(question, str) else None


def ngrams(norm: str, n: int = NGRAM) -> list[str]:
    words = norm.split()
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def coverage(norm: str, ref_grams: set[str], ref_exact: set[str], n: int = NGRAM) -> float:
    """Share of the words of ``norm`` inside some word n-gram that also occurs in the reference.

    On GSM8K train vs GSM8K test the highest is 0.76 (template siblings with other numbers);
    a test question with one number changed scores 0.98.
    """
    words = norm.split()
    if len(words) < n:
        return 1.0 if norm in ref_exact else 0.0
    covered = [False] * len(words)
    for i, gram in enumerate(ngrams(norm, n)):
        if gram in ref_grams:
            covered[i:i + n] = [True] * n
    return sum(covered) / len(words)


def load_reference(path: str | os.PathLike) -> list[str]:
    """Questions of a benchmark file (``question`` or ``input`` field of each JSON line)."""
    p = Path(path)
    if not p.is_file():
        raise CheckError(f"{p}: reference file not found")
    out = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CheckError(f"{p}:{i}: invalid JSON: {exc.msg}") from None
            q = rec.get("question") or rec.get("input")
            if not isinstance(q, str):
                raise CheckError(f"{p}:{i}: missing field 'question' (or 'input')")
            out.append(q)
    return out


def load_user_checks(path: str | os.PathLike) -> list[Check]:
    import yaml

    p = Path(path)
    try:
        items = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CheckError(f"{p}: cannot read expectations: {str(exc).splitlines()[0]}") from None
    if isinstance(items, dict):
        items = items.get("expectations")
    if not isinstance(items, list):
        raise CheckError(f"{p}: expected a list of expectations (or {{expectations: [...]}})")
    checks = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict) or "table" not in item or "expectation" not in item:
            raise CheckError(f"{p}: item {i}: needs 'table' and 'expectation'")
        if item["table"] not in FRAMES:
            raise CheckError(f"{p}: item {i}: unknown table {item['table']!r}; choose from {', '.join(FRAMES)}")
        kwargs = item.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise CheckError(f"{p}: item {i}: kwargs must be a mapping")
        try:  # GX checks the arguments where it builds the expectation: a mistake is named here, with its item
            _gx_class(item["expectation"], f"{p}: item {i}")(**kwargs)
        except CheckError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, a TypeError...
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise CheckError(f"{p}: item {i}: {item['expectation']}: {'; '.join(lines[:3])[:300]}") from None
        checks.append(Check(item["table"], item["expectation"], dict(kwargs), bool(item.get("critical", False)), "user"))
    return checks


def _gx_class(name: str, where: str = ""):
    import great_expectations as gx

    cls = getattr(gx.expectations, "".join(part.title() for part in str(name).split("_")), None)
    if cls is None:
        raise CheckError(f"{where}: unknown expectation {name!r}".lstrip(": "))
    return cls


# ---------------------------------------------------------------------- frames
# A row of the id frames takes 64-86 bytes in pandas (chunks of each at 1M programs): twice that
# leaves room for GX's masks over it. Text (a train question and its normalized form) comes on top.
ROW_BYTES = 160
CHUNK_SHARE = 1 / 32
MAX_CHUNK_ROWS = 250_000
_GOLD = ("CASE WHEN answer IS NOT NULL THEN CAST(answer AS VARCHAR) "
         "WHEN trim(coalesce(answer_text, '')) <> '' THEN answer_text END")


@dataclass
class _Frame:
    """A frame's rows as a query: ``_row`` orders them (the order failing rows are named in) and
    is the index of every chunk read; ``text``: the mean bytes of text a row carries beside
    :data:`ROW_BYTES`; ``post``: the columns pad computes on a chunk in Python."""

    query: str
    text: float = 0.0
    post: Callable[[pd.DataFrame], pd.DataFrame] | None = None


@dataclass
class _Source:
    """Where the frames are read from (the scratch copy), and the budget their chunks are sized by."""

    con: duckdb.DuckDBPyConnection
    memory: int

    def scalar(self, query: str):
        return self.con.execute(query).fetchall()[0][0]


# the frames' rows as pad reads them from the store, copied once into the scratch database
_FRAME_QUERIES = {
    "problems": f"""
        SELECT rowid AS _row, problem_id, dataset, split, answer, answer_text, {_GOLD} AS gold,
               dataset IN (SELECT dataset FROM _pad_gold_datasets) AS gold_dataset
        FROM problems""",
    "programs": """
        SELECT p.rowid AS _row, p.program_id, p.origin, p.problem_id, pr.problem_id IS NOT NULL AS has_problem
        FROM programs p LEFT JOIN problems pr USING (problem_id)""",
    # the shares as 0/1 integers (the README's example checks their mean; a user may check their type)
    "executions": """
        SELECT l.rowid AS _row, l.program_id, l.label, l.status, coalesce(length(e.stdout), 0) AS stdout_length,
               coalesce(length(e.value), 0) AS value_length,
               (l.label = 'correct')::INTEGER AS is_correct, (l.label = 'crashed')::INTEGER AS is_crashed,
               (l.label = 'forbidden')::INTEGER AS is_forbidden
        FROM program_labels l JOIN executions e USING (seq)""",
    "train_questions": """
        SELECT (row_number() OVER (ORDER BY part, first) - 1)::BIGINT AS _row, source, problem_id, question
        FROM (SELECT 0 AS part, rowid AS first, 'store' AS source, problem_id, question
              FROM problems WHERE split = 'train'
              UNION ALL
              SELECT 1, min(rowid), 'curation:' || name, problem_id, question
              FROM curated_examples WHERE split = 'train' GROUP BY name, problem_id, question)""",
}
COPY_BATCH = 50_000  # rows per Arrow batch copied from the store into the scratch database


def _frames(store: Store, src: _Source, reference: list[str] | None) -> dict[str, _Frame]:
    """The four frames, each copied from the store into the scratch database ``src`` (in
    ``_row`` order) with the curated test keys the train questions are checked against: then
    the store can be let go while the expectations run."""
    store.con.execute(f"CREATE OR REPLACE TEMP TABLE _pad_gold_datasets AS "
                      f"SELECT DISTINCT dataset FROM problems WHERE {_GOLD} IS NOT NULL")
    try:
        with store.capped(store.share(0.5)):  # the scratch database has the other half
            for name, query in _FRAME_QUERIES.items():
                reader = store.con.sql(f"SELECT * FROM ({query}) ORDER BY _row").to_arrow_reader(COPY_BATCH)
                copy_into(src.con, f"frame_{name}", reader)
            _test_keys(store, src)
    finally:
        store.con.execute("DROP TABLE IF EXISTS _pad_gold_datasets")
    ref = None
    if reference:
        ref_norms = [normalize_text(q) for q in reference]
        ref = (set(ref_norms), {g for r in ref_norms for g in ngrams(r)})

    def train(df: pd.DataFrame) -> pd.DataFrame:
        df["norm"] = [normalize_text(q) for q in df["question"]]
        curated = df["source"].str.startswith("curation:") & (df["norm"] != "")  # an empty norm: never a leak
        snaps = pd.DataFrame({"_row": df.index, "name": df["source"].str.removeprefix("curation:"),
                              "norm": df["norm"]})[curated.to_numpy()]
        with registered(src.con, snaps) as rows:
            leaked = [r[0] for r in src.con.execute(
                f"SELECT r._row FROM {rows} r SEMI JOIN test_keys k ON k.name = r.name AND k.key = r.norm"
            ).fetchall()]
        df["leaked_from_test"] = df.index.isin(leaked)
        if ref:
            df["reference_exact"] = [n in ref[0] for n in df["norm"]]
            df["reference_coverage"] = [coverage(n, ref[1], ref[0]) for n in df["norm"]]
        return df

    frames = {name: _Frame(f"SELECT * FROM frame_{name}") for name in _FRAME_QUERIES}
    frames["train_questions"].text = 2 * _mean_text(src, "frame_train_questions")
    frames["train_questions"].post = train
    return frames


def _mean_text(src, table: str, where: str = "TRUE") -> float:
    """Mean bytes of a question in ``table``: a question and its normalized text ride in a row."""
    return float(src.scalar(f"SELECT coalesce(avg(strlen(question)), 0) FROM {table} WHERE {where}"))


def _test_keys(store: Store, src: _Source) -> None:
    """Table ``test_keys`` in ``src``: the :func:`leak_key` of every curated test question of the
    store, by snapshot, computed a chunk of rows at a time."""
    src.con.execute("CREATE TABLE test_keys (name VARCHAR, key VARCHAR)")
    top = store.scalar("SELECT max(rowid) FROM curated_examples WHERE split = 'test'")
    step = _chunk_rows(src, _Frame("", 2 * _mean_text(store, "curated_examples", "split = 'test'")))
    for lo in range(0, -1 if top is None else top + 1, step):
        rows = store.df("SELECT DISTINCT name, question FROM curated_examples "
                        "WHERE split = 'test' AND rowid >= ? AND rowid < ?", [lo, lo + step])
        keys = pd.DataFrame({"name": rows["name"], "key": [leak_key(q) for q in rows["question"]]}).dropna()
        with registered(src.con, keys) as new:
            src.con.execute(f"INSERT INTO test_keys SELECT name, key FROM {new}")


def _chunk_rows(src: _Source, frame: _Frame) -> int:
    """Rows in a chunk: :data:`CHUNK_SHARE` of the budget, at most :data:`MAX_CHUNK_ROWS`."""
    return int(max(1, min(MAX_CHUNK_ROWS, src.memory * CHUNK_SHARE // (ROW_BYTES + frame.text))))


def _read(src: _Source, frame: _Frame, where: str) -> pd.DataFrame:
    """The rows of ``frame`` that ``where`` picks, in order, indexed by ``_row``."""
    df = src.con.sql(f"SELECT * FROM ({frame.query}) WHERE {where} ORDER BY _row").to_arrow_table().to_pandas()
    df = df.set_index("_row")
    df.index.name = None  # GX reports the rows of a named index as dicts
    return df if frame.post is None else frame.post(df)


def _row_ranges(src: _Source, frame: _Frame) -> list[str]:
    """Conditions on ``_row``, in order, each picking at most a chunk of rows (none: no rows)."""
    n, lo, hi = src.con.execute(f"SELECT count(*), min(_row), max(_row) FROM ({frame.query})").fetchall()[0]
    step = _chunk_rows(src, frame)
    return [f"_row >= {a} AND _row < {a + step}" for a in range(lo, hi + 1, step)] if n else []


def _hash_parts(src: _Source, frame: _Frame, columns: list[str], nulls_apart: bool = False) -> list[str]:
    """Conditions that split the rows by a hash of ``columns``, a chunk of rows each on average:
    rows with equal values (what a uniqueness check looks for) always fall in the same part.
    ``nulls_apart`` (one column, whose missing values GX leaves out of uniqueness): the rows
    without a value come a range of rows at a time instead, so a mostly empty column is not one
    part; and so do the rows of a value on more than half a chunk of rows, in pieces of at least
    two rows (each piece's rows all repeat one value, so GX counts every one of them, as it
    would in the whole column)."""
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    keyed = f"{cols} IS NOT NULL" if nulls_apart else "TRUE"
    step = _chunk_rows(src, frame)
    heavy: list[str] = []
    if nulls_apart:
        table = f"_pad_heavy_{next(_HEAVY)}"
        src.con.execute(f"""CREATE TEMP TABLE {table} AS
            SELECT dense_rank() OVER (ORDER BY v) AS vid, v, _row AS lo,
                   lead(_row) OVER (PARTITION BY v ORDER BY _row) AS hi
            FROM (SELECT {cols} AS v, _row, row_number() OVER (PARTITION BY {cols} ORDER BY _row) AS rn,
                         count(*) OVER (PARTITION BY {cols}) AS n
                  FROM ({frame.query}) WHERE {cols} IN (SELECT {cols} FROM ({frame.query}) WHERE {keyed}
                                                       GROUP BY ALL HAVING count(*) > {step // 2}))
            WHERE (rn - 1) % {max(2, step)} = 0 AND NOT (rn = n AND rn > 1)""")
        heavy = [f"{cols} = (SELECT any_value(v) FROM {table} WHERE vid = {vid}) AND _row >= {lo}"
                 + ("" if hi is None else f" AND _row < {hi}")
                 for vid, lo, hi in src.con.execute(f"SELECT vid, lo, hi FROM {table} ORDER BY vid, lo").fetchall()]
        if heavy:
            keyed += f" AND {cols} NOT IN (SELECT v FROM {table})"
    n = src.scalar(f"SELECT count(*) FROM ({frame.query}) WHERE {keyed}")
    k = max(1, -(-n // step))
    parts = [f"{keyed} AND hash({cols}) % {k} = {i}" for i in range(k)]
    return parts + heavy + ([f"{cols} IS NULL AND {rows}" for rows in _row_ranges(src, frame)] if nulls_apart else [])


_HEAVY = itertools.count()  # names of the scratch tables of frequent values


FRAMES = ("problems", "programs", "executions", "train_questions")


def builtin_checks(bounds: Bounds, reference: bool) -> list[Check]:
    c = [
        Check("problems", "expect_column_values_to_not_be_null", {"column": "problem_id"}),
        Check("problems", "expect_column_values_to_be_unique", {"column": "problem_id"}),
        Check("problems", "expect_column_values_to_not_be_null", {"column": "dataset"}),
        Check("programs", "expect_column_values_to_not_be_null", {"column": "program_id"}),
        Check("programs", "expect_column_values_to_be_unique", {"column": "program_id"}),
        Check("programs", "expect_column_values_to_be_in_set", {"column": "origin", "value_set": list(ORIGINS)}),
        Check("programs", "expect_column_values_to_be_in_set", {"column": "has_problem", "value_set": [True]},
              note="every program has a problem"),
        Check("executions", "expect_column_values_to_be_in_set", {"column": "label", "value_set": list(LABELS)}),
        Check("executions", "expect_column_values_to_be_in_set", {"column": "status", "value_set": list(STATUSES)}),
        Check("executions", "expect_column_values_to_be_between",
              {"column": "stdout_length", "min_value": 0, "max_value": STDOUT_MAX}, critical=False),
        Check("executions", "expect_column_values_to_be_between",
              {"column": "value_length", "min_value": 0, "max_value": VALUE_MAX + 16}, critical=False),
        Check("executions", "expect_column_mean_to_be_between",
              {"column": "is_correct", "min_value": bounds.min_correct, "max_value": 1.0}, critical=False,
              note="share of correct programs"),
        Check("executions", "expect_column_mean_to_be_between",
              {"column": "is_crashed", "min_value": 0.0, "max_value": bounds.max_crashed}, critical=False),
        Check("executions", "expect_column_mean_to_be_between",
              {"column": "is_forbidden", "min_value": 0.0, "max_value": bounds.max_forbidden}, critical=False),
        Check("train_questions", "expect_column_values_to_be_in_set",
              {"column": "leaked_from_test", "value_set": [False]},
              note="no curated test question in the same snapshot's train split"),
    ]
    c.append(Check("problems", "expect_column_values_to_not_be_null",
                   {"column": "gold", "row_condition": "gold_dataset == True", "condition_parser": "pandas"},
                   note="a gold answer (number or text) wherever the dataset has them"))
    if reference:
        c += [
            Check("train_questions", "expect_column_values_to_be_in_set",
                  {"column": "reference_exact", "value_set": [False]},
                  note="no reference benchmark question in a train split"),
            Check("train_questions", "expect_column_values_to_be_between",
                  {"column": "reference_coverage", "min_value": 0.0, "max_value": bounds.contamination},
                  note=f"share of words covered by reference word {NGRAM}-grams"),
        ]
    return c


# ---------------------------------------------------------------------- running
SHOWN_ROWS = 3  # failing rows named in a check's observed text
PARTIAL = 20  # GX's partial_unexpected_count: the unexpected values (and rows) a result keeps
# GX's map expectations that judge each row alone (GX 1.24): run a chunk of rows at a time. Any
# other (a row's verdict depending on the column's order, mean, spread or quantiles: increasing,
# z-scores, outliers; or one GX adds later) reads the columns it names whole; uniqueness goes by hash parts.
_ROW_BY_ROW = frozenset(f"expect_{name}" for name in (
    "column_pair_values_a_to_be_greater_than_b column_pair_values_to_be_equal column_pair_values_to_be_in_set "
    "column_value_lengths_to_be_between column_value_lengths_to_equal column_values_to_be_between "
    "column_values_to_be_dateutil_parseable column_values_to_be_in_set column_values_to_be_in_type_list "
    "column_values_to_be_json_parseable column_values_to_be_null column_values_to_be_of_type "
    "column_values_to_match_json_schema column_values_to_match_like_pattern "
    "column_values_to_match_like_pattern_list column_values_to_match_regex column_values_to_match_regex_list "
    "column_values_to_match_strftime_format column_values_to_not_be_in_set column_values_to_not_be_null "
    "column_values_to_not_match_like_pattern column_values_to_not_match_like_pattern_list "
    "column_values_to_not_match_regex column_values_to_not_match_regex_list multicolumn_sum_to_equal "
    "multicolumn_values_to_be_equal select_column_values_to_be_unique_within_record").split())
_UNIQUE = {"expect_column_values_to_be_unique": "column", "expect_compound_columns_to_be_unique": "column_list",
           "expect_multicolumn_values_to_be_unique": "column_list"}


def _clip(text: object, width: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _row_name(table: str, row: pd.Series) -> str:
    """A failing row as a reader finds it again: a question's start and its snapshot, or an id."""
    if table == "train_questions":
        src = str(row["source"])
        where = f"snapshot {src.removeprefix('curation:')}" if src.startswith("curation:") else "store train split"
        return f"{_clip(row['question'])!r} ({where})"
    if table == "problems":
        return f"problem {row['problem_id']} ({row['dataset']})"
    if table == "executions":
        return f"program {row['program_id']} ({row['label']})"
    return f"program {row['program_id']}"


def _names(table: str, frame: pd.DataFrame, index: list) -> list[str] | None:
    """The names of the rows at ``index`` (None when the frame cannot name them all)."""
    try:
        return [_row_name(table, frame.loc[[i]].iloc[0]) for i in index]
    except (KeyError, TypeError):
        return None


def _observed(result: dict, names: list[str] | None = None) -> str:
    if result.get("observed_value") is not None:
        v = result["observed_value"]
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    n = result.get("unexpected_count")
    if n is None:
        return ""
    if names:
        shown = "; ".join(names[:SHOWN_ROWS])
    else:
        shown = ", ".join(map(str, (result.get("partial_unexpected_list") or [])[:SHOWN_ROWS]))
    more = f"; and {n - SHOWN_ROWS:,} more" if n > SHOWN_ROWS and shown else ""
    return f"{n:,} unexpected ({result.get('unexpected_percent') or 0:.2f}%)" + (f": {shown}{more}" if n else "")


def _raised(r) -> bool:
    """Whether GX could not run the expectation (a missing column...): its exception, or one
    per metric it could not compute."""
    info = r.exception_info or {}
    return bool(info.get("raised_exception") or any(isinstance(v, dict) and v.get("exception_message")
                                                    for v in info.values()))


def _gx_order(checks: list[Check], results: list) -> list[int]:
    """The order GX reports a suite's results in: those it could not run first, then grouped by
    column (those naming none as one group), the groups in order of first appearance."""
    groups: dict[str | None, list[int]] = {}
    for i, c in enumerate(checks):
        column = c.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else None, []).append(i)
    order = [i for group in groups.values() for i in group]
    return [i for i in order if _raised(results[i])] + [i for i in order if not _raised(results[i])]


def _plan(check: Check) -> tuple[str, tuple[str, ...]]:
    """How a check reads its frame: ``("rows", ())`` a chunk of rows at a time (a row-wise map
    expectation), ``("hash", key)`` a hash part of the key at a time (uniqueness), or
    ``("whole", columns)`` whole, only ``columns`` (``()``: every column)."""
    kw = check.kwargs
    if check.expectation in _UNIQUE:
        key = kw[_UNIQUE[check.expectation]]
        return "hash", (key,) if isinstance(key, str) else tuple(key)
    if check.expectation in _ROW_BY_ROW:
        return "rows", ()
    named = [kw[k] for k in ("column", "column_A", "column_B") if k in kw] + list(kw.get("column_list") or [])
    return "whole", (() if "row_condition" in kw or not named else tuple(dict.fromkeys(named)))


class _Sum:
    """One row-wise check over the chunks: GX's counts summed, its first unexpected rows kept in
    frame order, and success decided as GX decides it on one frame (``mostly`` of the rows it
    considers: the non-null ones where its result counts missing values, else every row)."""

    def __init__(self, check: Check):
        self.check, self.first, self.failed = check, None, None
        self.element = self.unexpected = 0
        self.missing: int | None = None
        self.rows: list[tuple] = []  # (row, value, name or None) of the first unexpected rows

    def add(self, r, table: str, frame: pd.DataFrame) -> None:
        self.first = self.first or r
        res = r.result or {}
        if _raised(r) or res.get("unexpected_count") is None:
            self.failed = self.failed or r
            return
        self.element += res["element_count"]
        self.unexpected += res["unexpected_count"]
        if "missing_count" in res:
            self.missing = (self.missing or 0) + res["missing_count"]
        index = list(res.get("partial_unexpected_index_list") or [])
        values = list(res.get("partial_unexpected_list") or [])
        names = _names(table, frame, index[:SHOWN_ROWS]) or []
        self.rows += [(i, v, names[j] if j < len(names) else None) for j, (i, v) in enumerate(zip(index, values))]
        self.rows = sorted(self.rows, key=lambda t: t[0])[:PARTIAL]

    def result(self):
        """The summed result, as GX shapes one (the first chunk's with its ``result`` replaced)."""
        if self.failed is not None:
            return self.failed
        considered = self.element - (self.missing or 0)
        success = considered == 0 or (considered - self.unexpected) / considered >= self.check.kwargs.get("mostly", 1.0)
        res = {"element_count": self.element, "unexpected_count": self.unexpected,
               "unexpected_percent": self.unexpected / considered * 100 if considered else None,
               "partial_unexpected_list": [v for _, v, _ in self.rows],
               "partial_unexpected_index_list": [i for i, _, _ in self.rows]}
        if self.missing is not None:
            res |= {"missing_count": self.missing,
                    "missing_percent": self.missing / self.element * 100 if self.element else None,
                    "unexpected_percent_total": self.unexpected / self.element * 100 if self.element else None,
                    "unexpected_percent_nonmissing": res["unexpected_percent"]}
        with contextlib.suppress(TypeError):  # counted as GX counts them (a multicolumn row is a dict)
            counts = Counter(tuple(v.values()) if isinstance(v, dict) else v for v in res["partial_unexpected_list"])
            res["partial_unexpected_counts"] = [{"value": v, "count": n} for v, n in
                                                sorted(counts.most_common(PARTIAL), key=lambda x: (-x[1], x[0]))]
        r = copy.copy(self.first)
        r.success, r.result = success, res
        return r

    def names(self) -> list[str] | None:
        names = [n for _, _, n in self.rows[:SHOWN_ROWS]]
        return names if names and all(names) else None


def _check_table(src: _Source, table: str, frame: _Frame, rows: list[str], checks: list[Check],
                 validate: Callable[[list[int], pd.DataFrame], object]) -> dict[int, tuple]:
    """Every check of one frame, by its index in ``checks``: its GX result and the names of its
    first failing rows. One pass over the chunks of rows validates the row-wise checks and
    keeps the columns of the others; then one pass per uniqueness key over its hash parts."""
    in_sql = set(src.con.sql(f"SELECT * FROM ({frame.query}) LIMIT 0").columns)
    plans: dict[tuple[str, tuple], list[int]] = {}
    for i, c in enumerate(checks):
        how, columns = _plan(c)
        if how == "hash" and not in_sql.issuperset(columns):  # a column pad computes, or none: GX says so
            how, columns = "whole", ()
        plans.setdefault((how, columns), []).append(i)
    sums = {i: _Sum(checks[i]) for (how, _), idx in plans.items() if how != "whole" for i in idx}
    whole: dict[tuple, list[pd.DataFrame]] = {plan: [] for plan in plans if plan[0] == "whole"}

    def add(idx: list[int], df: pd.DataFrame) -> None:
        for r in validate(idx, df).results:
            sums[r.expectation_config.meta["pad_check"]].add(r, table, df)

    if ("rows", ()) in plans or whole:
        for where in rows:
            df = _read(src, frame, where)
            if ("rows", ()) in plans and not df.empty:
                add(plans[("rows", ())], df)
            for (_, columns), parts in whole.items():  # an aggregate names no row: no index kept
                parts.append(df[[c for c in columns if c in df]].reset_index(drop=True) if columns else df)
    done: dict[int, tuple] = {}
    for (how, columns), idx in plans.items():
        if how == "hash":
            nulls_apart = len(columns) == 1 and all(checks[i].expectation == "expect_column_values_to_be_unique"
                                                    for i in idx)
            for where in _hash_parts(src, frame, list(columns), nulls_apart):
                df = _read(src, frame, where)
                if not df.empty:
                    add(idx, df)
        elif how == "whole":
            df = pd.concat(whole.pop((how, columns)), ignore_index=bool(columns))
            for r in validate(idx, df).results:
                index = list((r.result or {}).get("partial_unexpected_index_list") or [])[:SHOWN_ROWS]
                done[r.expectation_config.meta["pad_check"]] = (r, _names(table, df, index))
    return done | {i: (s.result(), s.names()) for i, s in sums.items()}


def _to_docs(ctx, table: str, checks: list[Check], validated: list, run) -> None:
    """One frame's results, summed over its chunks, as one validation of its suite in Data Docs."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    suite = ctx.suites.add(gx.ExpectationSuite(name=f"pad.{table}", expectations=[
        _gx_class(c.expectation)(**c.kwargs, meta={"critical": c.critical}) for c in checks]))
    ok = sum(bool(r.success) for r in validated)
    suite_id = ExpectationSuiteIdentifier(name=suite.name)
    ctx.validation_results_store.store_validation_results(
        suite_validation_result=ExpectationSuiteValidationResult(
            success=ok == len(validated), results=validated, suite_name=suite.name,
            statistics={"evaluated_expectations": len(validated), "successful_expectations": ok,
                        "unsuccessful_expectations": len(validated) - ok,
                        "success_percent": 100 * ok / len(validated)},
            meta={"great_expectations_version": gx.__version__, "run_id": run, "validation_time": run.run_time,
                  "active_batch_definition": {"datasource_name": "pad", "data_asset_name": table}}),
        suite_validation_result_identifier=ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=run, batch_identifier=f"pad-{table}"),
        expectation_suite_identifier=suite_id)


def run_checks(store: Store, reference: str | os.PathLike | None = None,
               expectations_file: str | os.PathLike | None = None, docs_dir: str | os.PathLike | None = None,
               bounds: Bounds | None = None) -> dict:
    """Run the suite; store and return ``{"run_id", "success", "results": [CheckResult]}``."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.validator.v1_validator import Validator

    bounds = bounds or Bounds()
    ref = load_reference(reference) if reference else None
    checks = builtin_checks(bounds, bool(ref))
    if expectations_file:
        checks += load_user_checks(expectations_file)

    ctx = gx.get_context(mode="ephemeral")
    if docs_dir:
        Path(docs_dir).mkdir(parents=True, exist_ok=True)
        ctx.add_data_docs_site(site_name="pad", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    source = ctx.data_sources.add_pandas("pad")
    gx_run = RunIdentifier(run_time=datetime.datetime.now(datetime.timezone.utc))
    results: list[CheckResult] = []
    with scratch_db(store, "check") as (scratch, _):
        src = _Source(scratch, store.memory)
        frames = _frames(store, src, ref)
        store.release()  # the expectations take a while: other processes may use the store meanwhile
        scratch.execute(f"SET memory_limit = '{store.share(1)}'")
        for table in FRAMES:
            mine = [c for c in checks if c.table == table]
            if not mine:
                continue
            rows = _row_ranges(src, frames[table])
            if not rows:
                results += [CheckResult(c, True, "no rows") for c in mine]
                continue
            batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
            suites: dict[tuple[int, ...], gx.ExpectationSuite] = {}

            def validate(idx: list[int], df: pd.DataFrame):
                suite = suites.get(tuple(idx))
                if suite is None:
                    suite = suites[tuple(idx)] = gx.ExpectationSuite(name=f"pad.{table}", expectations=[
                        _gx_class(mine[i].expectation)(**mine[i].kwargs,
                                                       meta={"critical": mine[i].critical, "pad_check": i})
                        for i in idx])
                with contextlib.redirect_stderr(io.StringIO()):  # GX draws tqdm bars on stderr
                    return Validator(batch, batch_parameters={"dataframe": df}).validate_expectation_suite(suite)

            done = _check_table(src, table, frames[table], rows, mine, validate)
            order = _gx_order(mine, [done[i][0] for i in range(len(mine))])
            results += [CheckResult(mine[i], bool(done[i][0].success), _observed(done[i][0].result or {}, done[i][1]))
                        for i in order]
            if docs_dir:
                _to_docs(ctx, table, [mine[i] for i in order], [done[i][0] for i in order], gx_run)
    if docs_dir:
        ctx.build_data_docs(site_names=["pad"])
    critical_failures = sum(1 for r in results if r.check.critical and not r.success)
    run_id = uuid.uuid4().hex[:12]
    rows = [{"run_id": run_id, "table_name": r.check.table, "expectation": r.check.expectation,
             "column_name": r.check.kwargs.get("column"), "kwargs": json.dumps(r.check.kwargs, default=str),
             "observed": r.observed, "success": r.success, "critical": r.check.critical} for r in results]
    with store.transaction():
        store.append("check_runs", pd.DataFrame([{
            "run_id": run_id, "success": critical_failures == 0, "critical_failures": critical_failures,
            "checks": len(results), "reference": str(reference) if reference else None}]))
        store.append("check_results", pd.DataFrame(rows))
    return {"run_id": run_id, "success": critical_failures == 0, "critical_failures": critical_failures,
            "results": results, "docs": str(Path(docs_dir) / "index.html") if docs_dir else None}
