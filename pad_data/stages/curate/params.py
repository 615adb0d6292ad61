"""What a curation is asked for (:class:`CurateParams`), and the checks of it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from pad_data.rules.labels import LABELS
from pad_data.rules.options import COUNT, FRACTION, SEED, check_names, check_numbers
from pad_data.store import ORIGINS, Store

DEDUP = ("none", "exact", "ast")
TASKS = ("program", "refine")
REVIEW_MODES = ("exclude-rejected", "accepted-only", "ignore")
# the faulty labels refinement pairs are built from by default
REFINE_LABELS = ["wrong_answer", "no_answer", "non_numeric", "syntax_error", "runtime_error", "timeout",
                 "memory_limit"]
# programs a curated snapshot takes by default: not deliberately corrupted variants (injected) nor a
# student's own programs; those only when asked for (--origins), or for refine pairs (every origin)
DEFAULT_ORIGINS = ["teacher", "import", "human"]


class CurateError(ValueError):
    pass


@dataclass
class CurateParams:
    labels: list[str] | None = None  # None: ["correct"], or REFINE_LABELS for task "refine"
    datasets: list[str] | None = None
    origins: list[str] | None = None  # None: DEFAULT_ORIGINS, or every origin for task "refine"
    dedup: str = "ast"
    max_per_problem: int = 4
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    review: str = "exclude-rejected"  # REVIEW_MODES: what reviewers' verdicts do
    task: str = "program"
    siblings: bool = False  # refine: also pair faulty programs with a correct sibling
    min_agreement: float | None = None  # consensus-labeled programs only from problems this unanimous
    teachers: list[str] | None = None  # only programs these teachers (models) wrote [default: any]

    def resolved_labels(self) -> list[str]:
        return list(self.labels) if self.labels else (REFINE_LABELS if self.task == "refine" else ["correct"])

    def resolved_origins(self) -> list[str] | None:
        """The origins kept (None: all of them)."""
        if self.origins:
            return list(self.origins)
        return None if self.task == "refine" else list(DEFAULT_ORIGINS)

    def to_json(self) -> str:
        """The parameters as stored and hashed (labels and origins resolved; refine-only fields
        only when set)."""
        d = {**asdict(self), "labels": self.resolved_labels(), "origins": self.resolved_origins()}
        # the stored form names the default review mode `exclude_rejected`, so that snapshots
        # made with the same parameters keep their hash
        d["exclude_rejected"] = d.pop("review") != "ignore"
        if self.review == "accepted-only":
            d["review"] = self.review
        for key, default in (("task", "program"), ("siblings", False), ("min_agreement", None), ("teachers", None)):
            if d[key] == default:
                del d[key]
        return json.dumps(d, sort_keys=True)


def check(p: CurateParams) -> None:
    """Every option of ``p`` is known and in range (CurateError, or the option checks' error)."""
    if p.task not in TASKS:
        raise CurateError(f"unknown --task {p.task!r}; choose from {', '.join(TASKS)}")
    if p.review not in REVIEW_MODES:
        raise CurateError(f"unknown --review {p.review!r}; choose from {', '.join(REVIEW_MODES)}")
    if p.dedup not in DEDUP:
        raise CurateError(f"unknown --dedup {p.dedup!r}; choose from {', '.join(DEDUP)}")
    check_numbers(("--max-per-problem", p.max_per_problem, COUNT), ("--validation", p.validation_fraction, FRACTION),
                  ("--test", p.test_fraction, FRACTION), ("--seed", p.seed, SEED),
                  ("--min-agreement", p.min_agreement, FRACTION))
    if not p.validation_fraction + p.test_fraction < 1:
        raise CurateError("--validation + --test must be below 1")
    check_names("--labels", p.labels, LABELS, "label")
    check_names("--origins", p.origins, ORIGINS, "origin")


def check_against_store(store: Store, p: CurateParams) -> None:
    """Every dataset named must be in the store, and every origin and teacher named must have programs there."""
    check_names("--dataset", p.datasets, [r[0] for r in store.con.execute(
        "SELECT DISTINCT dataset FROM problems").fetchall()], "dataset")
    if p.teachers:
        check_names("--teacher", p.teachers, [r[0] for r in store.con.execute(
            "SELECT DISTINCT teacher FROM programs WHERE teacher IS NOT NULL").fetchall()], "teacher")
    if p.origins:
        held = [r[0] for r in store.con.execute("SELECT DISTINCT origin FROM programs").fetchall()]
        for origin in p.origins:
            if origin not in held:
                raise CurateError(f"--origins: the store has no programs of origin {origin!r}"
                                  f" (it has: {', '.join(sorted(held)) or 'no programs'})")
