"""The Python API; it mirrors the CLI one function per command.

    from pad_data import api
    with api.Store("pad.duckdb") as store:
        api.ingest(store, "gsm8k/train.jsonl", dataset="gsm8k")
        api.import_programs(store, "programs.jsonl", dataset="gsm8k")
        api.execute(store)
        api.sql(store, "SELECT label, count(*) FROM labeled_programs GROUP BY 1")
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from .execute import execute
from .batch import generate_batch
from .curate import CurateParams, curate
from .generate import generate, generate_offline, ingest_embedded, make_teacher
from .ingest import IngestError, import_programs, ingest
from .inject import inject_errors
from .labels import LABELS
from .pipeline import (Execute, Generate, ImportPrograms, Ingest, IngestEmbedded, OfflineTeacher, Step,
                       run_pipeline)
from .sandbox.pool import ExecResult, SandboxPool, execute_programs
from .store import ORIGINS, Store, StoreError
from .teachers.base import TeacherError
from .synthesize import synthesize
from .vote import vote

__all__ = ["Store", "StoreError", "IngestError", "ingest", "import_programs", "execute", "sql",
           "stats", "label_counts", "default_steps", "run_pipeline", "execute_programs",
           "SandboxPool", "ExecResult", "generate_offline", "ingest_embedded", "LABELS", "generate",
           "make_teacher", "TeacherError", "inject_errors", "curate", "CurateParams", "datasets", "ORIGINS",
           "vote", "synthesize", "generate_batch"]


def sql(store: Store, query: str, read_files: bool = False) -> pd.DataFrame:
    """Run a read-only query (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) against the
    store; a DataFrame of the result. Any other statement (COPY TO, ATTACH, INSERT, SET...) is
    refused. On a store opened read-only (as `pad sql` does), the connection is also locked
    against files: no file can be read unless ``read_files``, none written either way."""
    return store.read_query(query, read_files=read_files)


def datasets(store: Store) -> list[str]:
    """The datasets the store holds problems of."""
    return [r[0] for r in store.con.execute("SELECT DISTINCT dataset FROM problems ORDER BY 1").fetchall()]


def label_counts(store: Store, dataset: str | None = None) -> dict[str, int]:
    """``{label: programs}`` over the latest execution of each program."""
    q = "SELECT label, count(*) FROM labeled_programs WHERE label IS NOT NULL"
    params = []
    if dataset:
        q += " AND dataset = ?"
        params.append(dataset)
    return dict(store.con.execute(q + " GROUP BY label", params).fetchall())


def stats(store: Store) -> dict:
    """Per dataset: problems, problems with gold, programs, executed, and programs per label."""
    labels = [l for l in LABELS]
    pivot = ", ".join(f"count(*) FILTER (WHERE lp.label = '{l}')" for l in labels)
    rows = store.con.execute(f"""
        WITH pr AS (SELECT dataset, count(*) n, count(answer) + count(*) FILTER
                       (WHERE answer IS NULL AND answer_text IS NOT NULL) gold
                    FROM problems GROUP BY dataset),
             lp AS (SELECT * FROM labeled_programs)
        SELECT pr.dataset, any_value(pr.n), any_value(pr.gold), count(lp.program_id),
               count(lp.label), {pivot}
        FROM pr LEFT JOIN lp USING (dataset) GROUP BY pr.dataset ORDER BY pr.dataset""").fetchall()
    used = [i for i, _ in enumerate(labels) if any(r[5 + i] for r in rows)]
    teachers = store.con.execute("""
        SELECT coalesce(teacher, '?'), origin, count(*), coalesce(sum(prompt_tokens), 0),
               coalesce(sum(completion_tokens), 0), sum(cost_usd),
               (SELECT count(DISTINCT gen_key) FROM generation_failures f
                WHERE f.model = p.teacher AND f.gen_key NOT IN (SELECT gen_key FROM programs
                                                               WHERE gen_key IS NOT NULL))
        FROM programs p GROUP BY ALL ORDER BY 1, 2""").fetchall()
    return {"labels": [labels[i] for i in used],
            "rows": [list(r[:5]) + [r[5 + i] for i in used] for r in rows],
            "teachers": teachers}


EMBEDDED_DATASETS = ["pad-arith", "pad-coin", "pad-letters"]


def default_steps(source: str | None = None, dataset: str | None = None, programs: str | None = None,
                  samples: int = 4, seed: int = 0, timeout: float = 2.0, memory_mb: int = 512,
                  workers: int = 2, progress: Callable[[int, int], None] | None = None,
                  model: str | None = None, base_url: str | None = None, backend: str = "openai",
                  concurrency: int = 16) -> list[Step]:
    """The steps of ``pad run``.

    Problems: pad's embedded set, or ``source``. Programs: the offline template teacher
    (embedded problems only), a real teacher (``model``), or a file (``programs``).
    """
    steps: list[Step] = []
    if (source or programs) and not dataset:
        raise ValueError("--dataset is required with --source or --programs")
    steps.append(Ingest(source, dataset) if source else IngestEmbedded(seed=seed))
    if programs:
        steps.append(ImportPrograms(programs, dataset))
    elif model:
        steps.append(Generate([dataset] if source else EMBEDDED_DATASETS, model, base_url=base_url,
                              backend=backend, samples=samples, concurrency=concurrency))
    elif source:
        raise ValueError("the offline teacher only writes programs for pad's embedded problems; "
                         "pass --model (a real teacher) or --programs FILE for your own data")
    else:
        steps.append(OfflineTeacher(samples=samples, seed=seed))
    steps.append(Execute(timeout=timeout, memory_mb=memory_mb, workers=workers, progress=progress))
    return steps
