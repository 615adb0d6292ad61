"""The Python API; it mirrors the CLI one function per command, and the CLI calls only it to run
a stage.

    from pad_data import api
    with api.Store("pad.duckdb", memory="2GB") as store:  # DuckDB budget [default: 12.5% of RAM]
        api.ingest(store, "gsm8k/train.jsonl", dataset="gsm8k")
        api.import_programs(store, "programs.jsonl", dataset="gsm8k")
        api.execute(store)                      # or engine="ray", address=..., shards=...
        api.sql(store, "SELECT label, count(*) FROM labeled_programs GROUP BY 1")
"""

from __future__ import annotations

from typing import Callable

from pad_data.engines.dispatch import TeacherSpec, execute, generate
from pad_data.engines.pipeline import (Execute, Generate, ImportPrograms, Ingest, IngestEmbedded, OfflineTeacher, Step,
                                       run_pipeline)
from pad_data.rules.labels import LABELS
from pad_data.sandbox.pool import ExecResult, SandboxPool, execute_programs
from pad_data.stages.batch import generate_batch
from pad_data.stages.check import Bounds as CheckBounds, run_checks
from pad_data.stages.curate import CurateParams, curate, list_curations
from pad_data.stages.datasets import delete_dataset
from pad_data.stages.export import export, export_parquet_shards
from pad_data.stages.generate import generate_offline, ingest_embedded, make_teacher, torn_journal_bytes
from pad_data.stages.ingest import IngestError, import_programs, ingest
from pad_data.stages.sources import read_preamble
from pad_data.stages.inject import KINDS as INJECTION_KINDS, inject_errors
from pad_data.stages.synthesize import synthesize
from pad_data.stages.vote import vote
from pad_data.store import ORIGINS, Store, StoreError
from pad_data.store.queries import datasets, label_counts, sql, stats
from pad_data.teachers.base import TeacherError

__all__ = ["Store", "StoreError", "IngestError", "ingest", "import_programs", "execute", "sql",
           "stats", "label_counts", "default_steps", "run_pipeline", "execute_programs",
           "SandboxPool", "ExecResult", "generate_offline", "ingest_embedded", "LABELS", "generate",
           "make_teacher", "TeacherError", "inject_errors", "curate", "CurateParams", "datasets", "ORIGINS",
           "vote", "synthesize", "generate_batch", "TeacherSpec", "run_checks", "CheckBounds", "list_curations",
           "export", "export_parquet_shards", "INJECTION_KINDS", "torn_journal_bytes", "delete_dataset"]


EMBEDDED_DATASETS = ["pad-arith", "pad-coin", "pad-letters"]


def default_steps(source: str | None = None, dataset: str | None = None, programs: str | None = None,
                  samples: int = 4, seed: int = 0, timeout: float = 2.0, memory_mb: int = 512,
                  workers: int = 2, progress: Callable[[int, int], None] | None = None,
                  model: str | None = None, base_url: str | None = None, backend: str = "openai",
                  concurrency: int = 16, engine: str = "local", address: str | None = None,
                  preamble: str | None = None) -> list[Step]:
    """The steps of ``pad run``.

    Problems: pad's embedded set, or ``source``. Programs: the offline template teacher
    (embedded problems only), a real teacher (``model``), or a file (``programs``, each run after
    ``preamble``, a file, if given). The teacher and the sandbox run on ``engine`` (``local`` or
    ``ray``, at ``address``).
    """
    steps: list[Step] = []
    if (source or programs) and not dataset:
        raise ValueError("--dataset is required with --source or --programs")
    if preamble and not programs:
        raise ValueError("--preamble goes with --programs (for programs a teacher writes: pad execute --preamble)")
    if preamble:
        read_preamble(preamble)  # a bad file fails before any step runs
    steps.append(Ingest(source, dataset) if source else IngestEmbedded(seed=seed))
    if programs:
        steps.append(ImportPrograms(programs, dataset, preamble=preamble))
    elif model:
        steps.append(Generate([dataset] if source else EMBEDDED_DATASETS, model, base_url=base_url,
                              backend=backend, samples=samples, concurrency=concurrency, engine=engine,
                              address=address))
    elif source:
        raise ValueError("the offline teacher only writes programs for pad's embedded problems; "
                         "pass --model (a real teacher) or --programs FILE for your own data")
    else:
        steps.append(OfflineTeacher(samples=samples, seed=seed))
    steps.append(Execute(timeout=timeout, memory_mb=memory_mb, workers=workers, progress=progress, engine=engine,
                         address=address))
    return steps

