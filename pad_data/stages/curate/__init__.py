"""``pad curate NAME``: an immutable, reproducible snapshot of train/validation/test splits.

Steps, all deterministic for the same store and parameters:
1. **filter** the candidate programs (:mod:`.candidates`): by label (default only ``correct``),
   datasets, origins (default ``teacher``, ``import``, ``human``: injected variants and a
   student's programs only when named, or for ``task="refine"``), reviewers' verdicts
   (``review``; each row keeps its verdict) and ``min_agreement``. Every label, dataset and
   origin named must exist, and filters that select nothing are a CurateError: nothing is stored;
2. **deduplicate** within each problem (:mod:`.dedup`): ``none``, ``exact`` or ``ast``;
3. **keep at most K per problem**, preferring the *shortest* program (:mod:`.programs`);
4. **assign splits by near-duplicate cluster** of the question (:mod:`.split`), never splitting
   one problem's programs nor two questions ``pad check`` would call a leak.
Steps 2-4 are one rule (:mod:`.choose`). The snapshot (parameters, counts, content hash) is
stored in ``curations``, its rows in ``curated_examples`` (:mod:`.snapshots`). A name is never
overwritten: recreating it with the same parameters on the same data gives the same hash and
changes nothing.

``task="refine"`` builds *refinement pairs* instead (:mod:`.refine`, rows in ``refine_examples``).
"""

from __future__ import annotations

from pad_data.stages.curate.candidates import filter_counts, label_counts_with_unexecuted, ranged
from pad_data.stages.curate.dedup import TOO_DEEP, UNPARSED, analyze, dedup_key
from pad_data.stages.curate.params import (DEDUP, DEFAULT_ORIGINS, REFINE_LABELS, REVIEW_MODES, TASKS, CurateError,
                                           CurateParams, check, check_against_store)
from pad_data.stages.curate.programs import curate_programs
from pad_data.stages.curate.refine import curate_refine
from pad_data.stages.curate.snapshots import TASK_COLUMNS, TASK_TABLES, check_name, content_hash, list_curations, \
    snapshot_task
from pad_data.store import Store

__all__ = ["CurateError", "CurateParams", "curate", "list_curations", "snapshot_task", "content_hash",
           "label_counts_with_unexecuted", "ranged", "analyze", "dedup_key", "TOO_DEEP", "UNPARSED", "TASK_TABLES",
           "TASK_COLUMNS", "DEDUP", "TASKS", "REVIEW_MODES", "REFINE_LABELS", "DEFAULT_ORIGINS"]


def curate(store: Store, name: str, p: CurateParams | None = None) -> dict:
    """Create snapshot ``name``; returns its counts and hash (``created`` False if it existed),
    ``selected_from`` (the programs of its datasets) and ``removed`` (what each filter, and for a
    program snapshot dedup and max_per_problem, left out of them, in that order)."""
    p = p or CurateParams()
    check_name(name)
    check(p)
    check_against_store(store, p)
    funnel = filter_counts(store, p)
    r = (curate_refine if p.task == "refine" else curate_programs)(store, name, p)
    return r | {"selected_from": funnel["programs"], "removed": funnel["removed"] | r.get("removed", {})}
