"""The generate journal: teacher responses that could not be committed wait here for the next run.

One JSON line per item (``{"kind": "ok" | "fail", "rows": [...]}``: ``programs`` rows or
``generation_failures`` rows), appended in one write and fsync'd, so a response paid for is
never lost to a busy store or a crash. :meth:`pad_data.store.Store.replay_journal` stores them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pad_data.store.connection import StoreError

KINDS = ("ok", "fail")


def journal_path(store_path: Path) -> Path:
    """Where a store's journal is: ``<store>.journal.jsonl`` beside it."""
    return store_path.with_name(store_path.name + ".journal.jsonl")


def append(path: Path, items: list[tuple[str, list[dict]]]) -> int:
    """Append ``(kind, rows)`` items to the journal at ``path`` in one write, and fsync it (and,
    when it is new, its folder). Returns the rows written."""
    new = not path.exists()
    data = "".join(json.dumps({"kind": kind, "rows": rows}, default=str) + "\n" for kind, rows in items)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data.encode("utf-8"))
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        _fsync_dir(path.parent)
    return sum(len(rows) for _, rows in items)


def read(path: Path) -> tuple[list[dict], list[dict]]:
    """The ``(programs, failures)`` rows waiting in the journal at ``path``.

    A last line cut short by a crash while it was written is ignored (it was never fsync'd
    whole); any other unreadable line is a StoreError."""
    lines = path.read_text(encoding="utf-8").split("\n")
    programs, failures = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            kind, rows = entry["kind"], entry["rows"]
            if kind not in KINDS or not isinstance(rows, list):
                raise ValueError(f"unknown entry kind {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            if n == len(lines):  # no newline after it: torn by a crash mid-write
                break
            raise StoreError(f"{path}:{n}: unreadable journal entry ({exc}); "
                             "fix or move the file to open the store") from None
        (programs if kind == "ok" else failures).extend(rows)
    return programs, failures


def remove(path: Path) -> None:
    """Delete the journal, durably."""
    path.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a file's creation or removal in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
