"""Step 1 of a curation: the candidate programs its filters select, read within the memory budget.

The filters: labels (default only ``correct``), datasets, origins, teachers; reviewers' verdicts
(``program_verdicts``: the strictest current verdict of a program's reviewers) by ``review``:
``exclude-rejected`` leaves out programs a reviewer rejects, ``accepted-only`` keeps only
programs accepted with no reviewer rejecting them or asking for a fix, ``ignore`` disregards
verdicts; with ``min_agreement``, programs labeled against a consensus answer (``pad vote``)
only from problems whose agreement share is at least that (programs labeled against a real
gold are kept).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterator

import pyarrow as pa

from pad_data.stages.curate.params import CurateError, CurateParams
from pad_data.store import Store, any_of

SCAN_ROWS = 100_000  # rows per Arrow batch read from the store (memory is bounded by it)
# the candidates are read one problem range at a time (Store.problem_ranges: RANGE_SHARE of the
# budget each), since their query's joins cannot spill
RANGE_SHARE = 1 / 16
# what curation reads: each program with its current label and its reviewers' verdict (v)
CANDIDATES = "labeled_programs LEFT JOIN program_verdicts v USING (program_id)"
# what --review keeps, over CANDIDATES
REVIEW_RULES = {"exclude-rejected": "v.verdict IS DISTINCT FROM 'reject'", "accepted-only": "v.verdict = 'accept'",
                "ignore": None}


def _filters(p: CurateParams) -> list[tuple[str, str, list]]:
    """``(name, condition, params)`` of each filter ``p`` asks for, over :data:`CANDIDATES`, in the order
    :func:`filter_counts` reports them (datasets first: the scope the others remove from)."""
    out = []
    for name, col, values in (("datasets", "dataset", p.datasets), ("labels", "label", p.resolved_labels()),
                              ("origins", "origin", p.resolved_origins()), ("teachers", "teacher", p.teachers)):
        if values:
            condition, value = any_of(col, values)
            out.append((name, condition, value))
    if REVIEW_RULES[p.review]:
        out.append(("review", REVIEW_RULES[p.review], []))
    if p.min_agreement is not None:
        out.append(("min_agreement", "(gold_source IS DISTINCT FROM 'consensus' OR agreement >= ?)", [p.min_agreement]))
    return out


def candidate_filter(p: CurateParams) -> tuple[str, list]:
    """``(WHERE condition, params)`` over :data:`CANDIDATES`: the filters of the module docstring."""
    filters = _filters(p)
    return " AND ".join(c for _, c, _ in filters), [v for _, _, values in filters for v in values]


def filter_counts(store: Store, p: CurateParams) -> dict:
    """What each filter removed: ``{"programs": N, "removed": {"labels": n, "origins": n, ...}}``, N the
    programs of the datasets named (all), each filter counted after those before it (the order of
    :func:`_filters`); one scan of small columns, range by range."""
    filters = _filters(p)
    scope = [f for f in filters if f[0] == "datasets"]
    steps = [f for f in filters if f[0] != "datasets"]
    where, params = (scope[0][1], list(scope[0][2])) if scope else ("true", [])
    sums, sum_params = [], []
    for i in range(len(steps)):
        sums.append("count_if(" + " AND ".join(c for _, c, _ in steps[:i + 1]) + ")::BIGINT")
        sum_params += [v for _, _, values in steps[:i + 1] for v in values]
    query = (f"SELECT count(*){''.join(', ' + s for s in sums)} FROM {CANDIDATES} WHERE {{range}} AND {where}")
    totals = [0] * (len(steps) + 1)
    for reader in ranged(store, query, sum_params + params):
        for batch in reader:
            for row in zip(*(c.to_pylist() for c in batch.columns)):
                totals = [t + (v or 0) for t, v in zip(totals, row)]
    return {"programs": totals[0],
            "removed": {name: before - after for (name, _, _), before, after in zip(steps, totals, totals[1:])}}


def candidates_query(p: CurateParams, columns: str) -> tuple[str, list]:
    """``(query, params)``: ``columns`` of the candidates ``p`` selects, for :func:`ranged`."""
    where, params = candidate_filter(p)
    return f"SELECT {columns} FROM {CANDIDATES} WHERE {where} AND {{range}}", params


def ranged(store: Store, query: str, params: list | None = None) -> Iterator[pa.RecordBatchReader]:
    """``query`` (a SELECT over ``labeled_programs`` with a ``{range}`` condition to fill in) run
    once per :meth:`Store.problem_ranges` range, each result streamed, with the store capped at
    half the budget: the way to read ``labeled_programs`` within the budget at any size."""
    with store.capped(store.share(0.5), ordered=False):
        for cond in store.problem_ranges(RANGE_SHARE):
            yield store.con.sql(query.format(range=f"({cond})"), params=params or None).to_arrow_reader(SCAN_ROWS)


def label_counts_with_unexecuted(store: Store, datasets: list[str] | None = None) -> dict[str, int]:
    """Programs per current label (``(not executed)`` for none), most first, of ``datasets`` [default: all]."""
    counts: Counter = Counter()
    condition, params = any_of("dataset", datasets) if datasets else ("true", [])
    query = ("SELECT coalesce(label, '(not executed)') AS label, count(*) AS n FROM labeled_programs "
             f"WHERE {{range}} AND {condition} GROUP BY 1")
    for reader in ranged(store, query, params):
        for batch in reader:
            counts.update(dict(zip(batch.column("label").to_pylist(), batch.column("n").to_pylist())))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def nothing_selected(store: Store, p: CurateParams) -> CurateError:
    """Why a curation selected nothing: what the filters asked for, and what the store has."""
    what = "refinement pairs" if p.task == "refine" else "programs"
    origins = p.resolved_origins()
    counts = label_counts_with_unexecuted(store, p.datasets)
    have = ", ".join(f"{label} {n}" for label, n in counts.items()) or "no programs"
    teachers = f"; teachers {','.join(p.teachers)}" if p.teachers else ""
    return CurateError(f"the filters select no {what} (labels {','.join(p.resolved_labels())}; origins "
                       f"{','.join(origins) if origins else 'all'}; datasets {','.join(p.datasets or []) or 'all'}"
                       f"{teachers}); "
                       f"the store has: {have}; nothing was stored")
