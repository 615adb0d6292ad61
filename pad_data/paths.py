"""Where the store is, with nothing heavy imported (the `pad` command resolves it before loading DuckDB)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DB = "pad.duckdb"


def resolve_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$PAD_DB``, else ``./pad.duckdb``."""
    return Path(path or os.environ.get("PAD_DB") or DEFAULT_DB)
