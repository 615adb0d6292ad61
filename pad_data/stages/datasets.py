"""Removing a dataset (``pad delete --dataset D``).

Everything of the dataset goes in one transaction (:meth:`pad_data.store.Store.delete_dataset`):
its problems, programs, executions, labels, reviews, consensus answers, generation failures and
synthesis requests. Curated snapshots hold copies of their rows, so a snapshot that used the
dataset stays whole and exportable; ``pad curate --list`` names the datasets it used that are gone.
"""

from __future__ import annotations

from typing import Callable

from pad_data.rules.options import check_names
from pad_data.store import Store


def delete_dataset(store: Store, dataset: str, confirm: Callable[[dict], bool] | None = None) -> dict:
    """Delete ``dataset`` (an unknown name is an OptionError with the closest one).

    ``confirm`` is shown what would go (``rows``: rows per table; ``snapshots``: the snapshots
    that used it, which are kept) before anything is deleted; when it returns False nothing is.
    Returns ``dataset``, ``rows``, ``snapshots`` and ``deleted`` (whether it was).
    """
    known = [r[0] for r in store.con.execute(
        "SELECT DISTINCT dataset FROM problems UNION SELECT DISTINCT dataset FROM synth_requests").fetchall()]
    check_names("--dataset", [dataset], known, "dataset")
    snapshots = [r[0] for r in store.con.execute(
        """SELECT name FROM curations WHERE name IN (SELECT name FROM curated_examples WHERE dataset = $d
                                                    UNION SELECT name FROM refine_examples WHERE dataset = $d)
           ORDER BY created_at, name""", {"d": dataset}).fetchall()]
    plan = {"dataset": dataset, "rows": store.dataset_rows(dataset), "snapshots": snapshots}
    if confirm is not None and not confirm(plan):
        return {**plan, "deleted": False}
    return {**plan, "rows": store.delete_dataset(dataset), "deleted": True}
