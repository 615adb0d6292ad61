"""Pipelines: a list of small steps run in order over one store (datatrove-style).

A :class:`Step` is anything with a ``name`` and ``run(store) -> dict``. ``pad run`` is
``run_pipeline(store, default_steps(...))``; every step is idempotent, so rerunning a
pipeline only does the missing work. The steps that scale out (:class:`Generate`,
:class:`Execute`) take their engine, ``local`` or ``ray`` (:mod:`pad_data.engines.dispatch`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from pad_data.engines import dispatch
from pad_data.stages import generate
from pad_data.stages import ingest
from pad_data.store import Store


class Step(Protocol):
    name: str

    def run(self, store: Store) -> dict: ...


@dataclass
class IngestEmbedded:
    seed: int = 0
    name: str = "ingest embedded problems"

    def run(self, store: Store) -> dict:
        return generate.ingest_embedded(store, seed=self.seed)


@dataclass
class Ingest:
    source: str
    dataset: str
    split: str | None = None
    fmt: str = "auto"
    limit: int | None = None
    name: str = "ingest"

    def run(self, store: Store) -> dict:
        return ingest.ingest(store, self.source, self.dataset, split=self.split, fmt=self.fmt,
                             limit=self.limit)


@dataclass
class ImportPrograms:
    source: str
    dataset: str
    teacher: str | None = None
    preamble: str | None = None  # a file run before each program
    name: str = "import programs"

    def run(self, store: Store) -> dict:
        return ingest.import_programs(store, self.source, self.dataset, teacher=self.teacher, preamble=self.preamble)


@dataclass
class OfflineTeacher:
    samples: int = 4
    seed: int = 0
    name: str = "generate (offline template teacher)"

    def run(self, store: Store) -> dict:
        return generate.generate_offline(store, samples=self.samples, seed=self.seed)


@dataclass
class Generate:
    """Programs from a real teacher (OpenAI-compatible server or local model) for ``datasets``."""

    datasets: list[str]
    model: str
    base_url: str | None = None
    backend: str = "openai"
    samples: int = 4
    concurrency: int = 16
    engine: str = "local"
    address: str | None = None
    name: str = "generate (teacher)"

    def run(self, store: Store) -> dict:
        added = cached = failed = 0
        teacher = dispatch.TeacherSpec(self.backend, self.model, base_url=self.base_url)
        for dataset in self.datasets:
            r = dispatch.generate(store, teacher, dataset, samples=self.samples, concurrency=self.concurrency,
                                  engine=self.engine, address=self.address)
            added, cached, failed = added + r["added"], cached + r["cached"], failed + r["failed"]
        return {"teacher": self.model, "added": added, "cached": cached, "failed": failed}


@dataclass
class Execute:
    timeout: float = 2.0
    memory_mb: int = 512
    workers: int = 2
    dataset: str | None = None
    progress: Callable[[int, int], None] | None = field(default=None, repr=False)
    engine: str = "local"
    address: str | None = None
    name: str = "execute + label"

    def run(self, store: Store) -> dict:
        return dispatch.execute(store, dataset=self.dataset, timeout=self.timeout, memory_mb=self.memory_mb,
                                workers=self.workers, progress=self.progress, engine=self.engine,
                                address=self.address)


def run_pipeline(store: Store, steps: list[Step],
                 on_step: Callable[[Step, dict, float], None] | None = None) -> list[tuple[str, dict]]:
    """Run ``steps`` in order; returns ``[(step name, its result), ...]``."""
    results = []
    for step in steps:
        t0 = time.perf_counter()
        result = step.run(store)
        if on_step:
            on_step(step, result, time.perf_counter() - t0)
        results.append((step.name, result))
    return results
