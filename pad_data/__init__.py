"""pad_data: generate, execute, label, store, check, curate and export synthetic program data."""

import importlib

__version__ = "0.1.0"
# pad_data.api.__all__ (a test keeps them equal), also reachable as pad_data.<name>
API_NAMES = ("Store", "StoreError", "IngestError", "ingest", "import_programs", "execute", "sql", "stats",
             "label_counts", "default_steps", "run_pipeline", "execute_programs", "SandboxPool", "ExecResult",
             "generate_offline", "ingest_embedded", "LABELS", "generate", "make_teacher", "TeacherError",
             "inject_errors", "curate", "CurateParams", "datasets", "ORIGINS", "vote", "synthesize", "generate_batch",
             "TeacherSpec", "run_checks", "CheckBounds", "list_curations", "export", "export_parquet_shards",
             "INJECTION_KINDS", "torn_journal_bytes", "delete_dataset")


def __getattr__(name: str):
    """The names of :mod:`pad_data.api` (``pad_data.Store``...), imported on first use, so that
    ``pad sql`` and ``pad stats`` start without loading every stage."""
    if name == "__all__":
        return list(API_NAMES)
    if name not in API_NAMES:
        raise AttributeError(f"module 'pad_data' has no attribute {name!r}")
    return getattr(importlib.import_module("pad_data.api"), name)
