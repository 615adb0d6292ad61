"""Which engine runs a stage: ``local`` (this process, the default) or ``ray`` (Ray Data tasks over
Parquet shards, :mod:`pad_data.engines.ray_engine`).

The API, the pipeline steps and the CLI choose the engine with one argument, as datatrove runs
one pipeline on swappable executors; stages never know which engine runs them. Ray itself is
imported only when ``engine="ray"`` runs (:func:`pad_data.engines.ray_engine.connect`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from pad_data.engines import ray_engine
from pad_data.stages import execute as execute_stage
from pad_data.stages import generate as generate_stage
from pad_data.store import Store
from pad_data.teachers.base import Teacher

ENGINES = ("local", "ray")


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown --engine {engine!r}; choose local or ray")


@dataclass(frozen=True)
class TeacherSpec:
    """What :func:`~pad_data.stages.generate.make_teacher` takes: a teacher each Ray task can build
    for itself (a built teacher, a client or a loaded model, does not travel to the workers)."""

    backend: str
    model: str
    base_url: str | None = None
    max_retries: int = 6
    timeout: float = 120.0

    def make(self) -> Teacher:
        return generate_stage.make_teacher(self.backend, self.model, base_url=self.base_url,
                                           max_retries=self.max_retries, timeout=self.timeout)


def execute(store: Store, dataset: str | None = None, timeout: float = 2.0, memory_mb: int = 512,
            workers: int = 2, rerun: bool = False, limit: int | None = None, isolation_level: str = "auto",
            commit_every: int = 10_000, origin: str | None = None, entry: str | None = None,
            progress: Callable[[int, int], None] | None = None, commit_interval: float = 1.0,
            engine: str = "local", address: str | None = None, shards: str | os.PathLike | None = None,
            shard_size: int = ray_engine.SHARD_SIZE, preamble: str | os.PathLike | None = None) -> dict:
    """Execute and label pending programs (:func:`pad_data.stages.execute.execute`) on ``engine``.

    ``ray``: on the cluster at ``address`` [default: a local Ray], in shards of ``shard_size``
    programs under ``shards`` [default: beside the store]; each task runs one sandbox worker, Ray
    spreads the tasks over the cluster's cores; ``workers``, ``rerun`` and the commit pacing
    (``commit_every``, ``commit_interval``) are the local engine's."""
    check_engine(engine)
    if engine == "local":
        return execute_stage.execute(store, dataset=dataset, timeout=timeout, memory_mb=memory_mb,
                                     workers=workers, rerun=rerun, limit=limit, isolation_level=isolation_level,
                                     commit_every=commit_every, origin=origin, entry=entry, progress=progress,
                                     commit_interval=commit_interval, preamble=preamble)
    if rerun:
        raise ValueError("--rerun runs on --engine local only")
    if preamble is not None:
        raise ValueError("--preamble runs on --engine local only (programs imported with a preamble run with it "
                         "on either engine)")
    return ray_engine.execute_ray(store, shards=shards, address=address, shard_size=shard_size, dataset=dataset,
                                  origin=origin, limit=limit, timeout=timeout, memory_mb=memory_mb,
                                  isolation_level=isolation_level, entry=entry, progress=progress)


def generate(store: Store, teacher: Teacher | TeacherSpec, dataset: str, samples: int = 4,
             temperature: float = 0.7, max_tokens: int = 512, concurrency: int = 8, prompt: str | None = None,
             split: str | None = None, limit: int | None = None, prices: tuple[float, float] | None = None,
             progress: Callable[[int, int], None] | None = None, engine: str = "local",
             address: str | None = None, shards: str | os.PathLike | None = None,
             shard_size: int = ray_engine.GENERATE_SHARD_SIZE) -> dict:
    """Programs from ``teacher`` for ``dataset`` (:func:`pad_data.stages.generate.generate`) on ``engine``.

    ``teacher``: a teacher (:func:`~pad_data.stages.generate.make_teacher`), or a :class:`TeacherSpec`,
    which ``ray`` needs (each task builds its own); ``shard_size`` counts problems, and each task
    keeps ``concurrency`` requests in flight."""
    check_engine(engine)
    if engine == "local":
        if isinstance(teacher, TeacherSpec):
            teacher = teacher.make()
        return generate_stage.generate(store, teacher, dataset, samples=samples, temperature=temperature,
                                       max_tokens=max_tokens, concurrency=concurrency, prompt=prompt, split=split,
                                       limit=limit, prices=prices, progress=progress)
    if not isinstance(teacher, TeacherSpec):
        raise ValueError("engine 'ray' builds the teacher in each task: pass a TeacherSpec, not a built teacher")
    return ray_engine.generate_ray(store, teacher.backend, teacher.model, dataset, base_url=teacher.base_url,
                                   samples=samples, temperature=temperature, max_tokens=max_tokens,
                                   concurrency=concurrency, prompt=prompt, split=split, limit=limit, prices=prices,
                                   max_retries=teacher.max_retries, timeout=teacher.timeout, shards=shards,
                                   address=address, shard_size=shard_size, progress=progress)
