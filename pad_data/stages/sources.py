"""Reading sources for ``pad ingest`` and ``pad import-programs``: records with their location,
and preamble files (``--preamble``).

Local ``.jsonl``/``.json``/``.parquet``/``.csv`` files, a local Hugging Face dataset directory,
or a Hub dataset name (``openai/gsm8k`` with ``config="main"``) via ``datasets.load_dataset``.
Every record keeps where it came from (``file:line``, ``file:item N``, ``name:row N``) so an
error can name it. (JSONL files are read in bulk by :mod:`pad_data.stages.bulk`, which hands only the
lines it cannot be sure of to :func:`jsonl_record`.)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pad_data.store.ids import preamble_id


class IngestError(ValueError):
    """Bad input; the message is one line naming file, line/row and field."""


@dataclass(frozen=True)
class Preamble:
    """Code run before each program, in the program's namespace and sandbox (``--preamble FILE``):
    the imports and helpers the pipeline that wrote the programs ran them with."""

    name: str
    text: str

    @property
    def preamble_id(self) -> str:
        return preamble_id(self.text)

    def row(self) -> dict:
        """Its ``preambles`` row."""
        return {"preamble_id": self.preamble_id, "name": self.name, "text": self.text}


def read_preamble(path: str | os.PathLike) -> Preamble:
    """The preamble in file ``path``: UTF-8 Python that compiles, else an IngestError naming the
    file (and line)."""
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"{path}: no such preamble file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise IngestError(f"{path}: the preamble is empty")
    try:
        compile(text, str(p), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise IngestError(f"{path}:{exc.lineno}: the preamble does not compile: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # a NUL byte, nesting too deep
        raise IngestError(f"{path}: the preamble does not compile: {exc}") from None
    return Preamble(p.stem, text)


@dataclass
class Record:
    where: str  # "file:line" or "file:row N"
    data: dict
    split: str | None = None  # the Hugging Face split it came from, if any


def lookup(data: dict, name: str) -> tuple[bool, Any]:
    """``(found, value)`` of field ``name`` of a record: the key ``name`` itself when the record
    has it, else a dotted path through nested objects (``175b_verification.solution``; a list on
    the way, or an empty part, is not a path). A null value is found (and None)."""
    if name in data:
        return True, data[name]
    parts = name.split(".")
    if len(parts) < 2 or not all(parts):
        return False, None
    value: Any = data
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def field_names(data: dict, depth: int = 3) -> set[str]:
    """The fields of a record, nested objects' ones as dotted paths (``a.b``), ``depth`` levels down."""
    out = set()
    for key, value in data.items():
        out.add(str(key))
        if depth > 1 and isinstance(value, dict):
            out.update(f"{key}.{sub}" for sub in field_names(value, depth - 1))
    return out


# ---------------------------------------------------------------------- reading
def read_records(source: str | os.PathLike, limit: int | None = None, config: str | None = None,
                 hf_split: str | None = None, skipped: list[str] | None = None) -> list[Record]:
    """All records of ``source`` (a file, a dataset dir, or a Hub name), each with its location.

    With a ``skipped`` list, JSONL lines that are not valid UTF-8, not valid JSON or not an
    object (and such items of a JSON array) are appended to it as ``"file:line: reason"``
    instead of raising; without one, the first of them raises an IngestError.
    """
    path = Path(source)
    if path.is_dir():
        return _read_hf(str(path), config, hf_split, limit, local=True)
    if not path.exists():
        if path.suffix or str(source).startswith((".", "/", "~")):
            raise IngestError(f"{source}: no such file")
        return _read_hf(str(source), config, hf_split, limit, local=False)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = _read_jsonl(path, limit, skipped)
    elif suffix == ".json":
        records = _read_json(path, limit, skipped)
    elif suffix in (".parquet", ".csv"):
        try:
            df = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path, encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many kinds
            raise IngestError(f"{path}: cannot read {suffix[1:]}: {str(exc).splitlines()[0]}") from None
        if limit is not None:
            df = df.head(limit)
        records = [Record(f"{path}:row {i + 1}", {k: _py(v) for k, v in row.items()})
                   for i, row in enumerate(df.to_dict("records"))]
    else:
        raise IngestError(f"{path}: unsupported file type {suffix or '(none)'}; "
                          "use .jsonl, .json, .parquet or .csv")
    if not records:
        if skipped:
            raise IngestError(f"{path}: no valid records ({len(skipped)} skipped; first: {skipped[0]})")
        raise IngestError(f"{path}: empty, no records")
    return records


def _py(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if type(v).__name__ == "ndarray":  # a list column of a Parquet file (e.g. several samples)
        return [_py(x) for x in v.tolist()]
    return v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v


def _read_jsonl(path: Path, limit: int | None, skipped: list[str] | None = None) -> list[Record]:
    out = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                rec = jsonl_record(path, lineno, raw)
            except IngestError as exc:
                if skipped is None:
                    raise
                skipped.append(str(exc))
                continue
            if rec is None:  # a blank line
                continue
            out.append(rec)
            if limit is not None and len(out) >= limit:
                break
    return out


def jsonl_record(path: Path, lineno: int, raw: bytes) -> Record | None:
    """The record on one JSONL line, None for a blank line, or an IngestError."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start})") from None
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(data, dict):
        raise IngestError(f"{path}:{lineno}: expected a JSON object, got {type(data).__name__}")
    return Record(f"{path}:{lineno}", data)


def _read_json(path: Path, limit: int | None, skipped: list[str] | None = None) -> list[Record]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None)
    if not isinstance(data, list):
        raise IngestError(f"{path}: expected a JSON array of objects (or an object holding one)")
    out = []
    for i, item in enumerate(data):
        if limit and len(out) >= limit:
            break
        if not isinstance(item, dict):
            msg = f"{path}:item {i + 1}: expected a JSON object, got {type(item).__name__}"
            if skipped is None:
                raise IngestError(msg)
            skipped.append(msg)
            continue
        out.append(Record(f"{path}:item {i + 1}", item))
    return out


def _read_hf(name: str, config: str | None, split: str | None, limit: int | None,
             local: bool) -> list[Record]:
    """Rows of a Hugging Face dataset (local directory or Hub name) via ``datasets``."""
    import datasets

    try:
        if local and any((Path(name) / f).exists() for f in ("dataset_dict.json", "state.json")):
            ds = datasets.load_from_disk(name)
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - network, auth, missing config...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if local else " (no network? download it elsewhere and pass the local file or directory)"
        raise IngestError(f"{name}: cannot load Hugging Face dataset: {first[:300]}{hint}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            if len(ds) != 1:
                raise IngestError(f"{name}: has splits {sorted(ds)}; choose one with --split")
            split = next(iter(ds))
        ds = ds[split]
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return [Record(f"{name}:row {i + 1}", row, split) for i, row in enumerate(ds)]
