"""Where the store is, with nothing heavy imported (the `pad` command resolves it before loading
DuckDB, or even pathlib: see :mod:`pad_data.cli.entry`)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

DEFAULT_DB = "pad.duckdb"


def resolve_path(path: str | os.PathLike | None = None) -> Path:
    """``path``, else ``$PAD_DB``, else ``./pad.duckdb``."""
    from pathlib import Path

    return Path(path or os.environ.get("PAD_DB") or DEFAULT_DB)
