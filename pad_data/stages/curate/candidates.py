"""Step 1 of a curation: the candidate programs its filters select, read within the memory budget.

The filters: labels (default only ``correct``), datasets, origins; reviewers' verdicts
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

import pandas as pd
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


def candidate_filter(p: CurateParams) -> tuple[str, list]:
    """``(WHERE condition, params)`` over :data:`CANDIDATES`: the filters of the module docstring."""
    where, params = [], []
    for col, values in (("label", p.resolved_labels()), ("dataset", p.datasets), ("origin", p.resolved_origins())):
        if values:
            condition, value = any_of(col, values)
            where.append(condition)
            params += value
    if REVIEW_RULES[p.review]:
        where.append(REVIEW_RULES[p.review])
    if p.min_agreement is not None:
        where.append("(gold_source IS DISTINCT FROM 'consensus' OR agreement >= ?)")
        params.append(p.min_agreement)
    return " AND ".join(where), params


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


def read_candidates(store: Store, p: CurateParams, columns: str) -> pd.DataFrame:
    """``columns`` of the candidates ``p`` selects, in one frame ordered by ``program_id``; the
    store is let go after reading (what follows takes a while: other processes may use it)."""
    query, params = candidates_query(p, columns)
    df = pa.concat_tables([r.read_all() for r in ranged(store, query, params)]).to_pandas()
    store.release()
    return df.sort_values("program_id", kind="stable").reset_index(drop=True)


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
    return CurateError(f"the filters select no {what} (labels {','.join(p.resolved_labels())}; origins "
                       f"{','.join(origins) if origins else 'all'}; datasets {','.join(p.datasets or []) or 'all'}); "
                       f"the store has: {have}; nothing was stored")
