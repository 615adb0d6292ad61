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

Memory: the queries run within the store's budget (``--memory-limit``); the frames are pandas,
outside it: one row per problem, per program, per executed program and per train question (ids
and small columns). GX validates a frame whole (uniqueness needs every row), so they are not
split; at 1M programs the peak (~0.9 GiB) is GX at work on the largest, the same whether the
frames are read at once or one at a time.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pad_data.rules.labels import LABELS
from pad_data.sandbox.pool import STATUSES
from pad_data.store import ORIGINS, Store

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
        _gx_class(item["expectation"], f"{p}: item {i}")
        checks.append(Check(item["table"], item["expectation"], dict(item.get("kwargs") or {}),
                            bool(item.get("critical", False)), "user"))
    return checks


def _gx_class(name: str, where: str = ""):
    import great_expectations as gx

    cls = getattr(gx.expectations, "".join(part.title() for part in str(name).split("_")), None)
    if cls is None:
        raise CheckError(f"{where}: unknown expectation {name!r}".lstrip(": "))
    return cls


# ---------------------------------------------------------------------- frames
def _frames(store: Store, reference: list[str] | None) -> dict[str, pd.DataFrame]:
    f: dict[str, pd.DataFrame] = {}
    f["problems"] = store.df("""
        WITH p AS (SELECT *, CASE WHEN answer IS NOT NULL THEN CAST(answer AS VARCHAR)
                                  WHEN trim(coalesce(answer_text, '')) <> '' THEN answer_text END AS gold
                   FROM problems)
        SELECT problem_id, dataset, split, answer, answer_text, gold,
               dataset IN (SELECT dataset FROM p WHERE gold IS NOT NULL) AS gold_dataset
        FROM p""")
    f["programs"] = store.df("""
        SELECT p.program_id, p.origin, p.problem_id, pr.problem_id IS NOT NULL AS has_problem
        FROM programs p LEFT JOIN problems pr USING (problem_id)""")
    f["executions"] = store.df("""
        SELECT l.program_id, l.label, l.status, coalesce(length(e.stdout), 0) AS stdout_length,
               coalesce(length(e.value), 0) AS value_length,
               (l.label = 'correct')::INTEGER AS is_correct, (l.label = 'crashed')::INTEGER AS is_crashed,
               (l.label = 'forbidden')::INTEGER AS is_forbidden
        FROM program_labels l JOIN executions e USING (seq)""")
    train = store.df("""
        SELECT 'store' AS source, problem_id, question FROM problems WHERE split = 'train'
        UNION ALL
        SELECT DISTINCT 'curation:' || name, problem_id, question FROM curated_examples WHERE split = 'train'""")
    train["norm"] = [normalize_text(q) for q in train["question"]]
    leak = store.df("SELECT DISTINCT name, question FROM curated_examples WHERE split = 'test'")
    test_keys = {(n, leak_key(q)) for n, q in zip(leak["name"], leak["question"])}
    train["leaked_from_test"] = [  # an empty norm is an empty leak_key: never a leak
        src.startswith("curation:") and bool(norm) and (src.removeprefix("curation:"), norm) in test_keys
        for src, norm in zip(train["source"], train["norm"])]
    if reference:
        ref_norms = [normalize_text(q) for q in reference]
        ref_exact = set(ref_norms)
        ref_grams = {g for r in ref_norms for g in ngrams(r)}
        train["reference_exact"] = [n in ref_exact for n in train["norm"]]
        train["reference_coverage"] = [coverage(n, ref_grams, ref_exact) for n in train["norm"]]
    f["train_questions"] = train
    return f


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


def _observed(result: dict, table: str = "", frame: pd.DataFrame | None = None) -> str:
    if result.get("observed_value") is not None:
        v = result["observed_value"]
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    n = result.get("unexpected_count")
    if n is None:
        return ""
    index = result.get("partial_unexpected_index_list") or []
    if frame is not None and index and all(i in frame.index for i in index[:SHOWN_ROWS]):
        shown = "; ".join(_row_name(table, frame.loc[i]) for i in index[:SHOWN_ROWS])
    else:
        shown = ", ".join(map(str, (result.get("partial_unexpected_list") or [])[:SHOWN_ROWS]))
    more = f"; and {n - SHOWN_ROWS:,} more" if n > SHOWN_ROWS and shown else ""
    return f"{n:,} unexpected ({result.get('unexpected_percent', 0):.2f}%)" + (f": {shown}{more}" if n else "")


def run_checks(store: Store, reference: str | os.PathLike | None = None,
               expectations_file: str | os.PathLike | None = None, docs_dir: str | os.PathLike | None = None,
               bounds: Bounds | None = None) -> dict:
    """Run the suite; store and return ``{"run_id", "success", "results": [CheckResult]}``."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    bounds = bounds or Bounds()
    ref = load_reference(reference) if reference else None
    checks = builtin_checks(bounds, bool(ref))
    if expectations_file:
        checks += load_user_checks(expectations_file)
    frames = _frames(store, ref)
    store.release()  # not held while the expectations run

    ctx = gx.get_context(mode="ephemeral")
    if docs_dir:
        Path(docs_dir).mkdir(parents=True, exist_ok=True)
        ctx.add_data_docs_site(site_name="pad", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
    source = ctx.data_sources.add_pandas("pad")
    results: list[CheckResult] = []
    for table in FRAMES:
        mine = [c for c in checks if c.table == table]
        df = frames[table]
        if not mine:
            continue
        if df.empty:
            results += [CheckResult(c, True, "no rows") for c in mine]
            continue
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"pad.{table}"))
        for i, c in enumerate(mine):
            suite.add_expectation(_gx_class(c.expectation)(**c.kwargs, meta={"critical": c.critical, "pad_check": i}))
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=table, data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["pad"])] if docs_dir else []
        cp = ctx.checkpoints.add(gx.Checkpoint(name=f"pad.{table}", validation_definitions=[vd], actions=actions))
        with contextlib.redirect_stderr(io.StringIO()):  # GX draws tqdm bars on stderr
            run = cp.run(batch_parameters={"dataframe": df})
        for vr in run.run_results.values():
            for r in vr.results:
                c = mine[r.expectation_config.meta["pad_check"]]
                results.append(CheckResult(c, bool(r.success), _observed(r.result or {}, table, df)))
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
