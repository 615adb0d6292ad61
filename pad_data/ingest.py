"""Getting data in: problems (``pad ingest``) and programs made elsewhere (``pad import-programs``).

Sources: local ``.jsonl``/``.json``/``.parquet``/``.csv`` files, a local Hugging Face dataset
directory, or a Hub dataset name (``openai/gsm8k`` with ``config="main"``) via
``datasets.load_dataset``. A whole source is validated before anything is written, then
written in one transaction: a bad record anywhere means nothing from that source lands, and
the error names the file, line (or row) and field.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .extract import extract_program
from .labels import parse_number
from .store import Store, problem_id, program_id

FORMATS = ("auto", "gsm8k", "pal", "jsonl")
QUESTION_ALIASES = ("question", "input", "problem")
ANSWER_ALIASES = ("answer", "target", "gold")
PROGRAM_ALIASES = ("program", "code", "generation", "completion")


class IngestError(ValueError):
    """Bad input; the message is one line naming file, line/row and field."""


@dataclass
class Record:
    where: str  # "file:line" or "file:row N"
    data: dict
    split: str | None = None  # the Hugging Face split it came from, if any


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
                rec = _jsonl_record(path, lineno, raw)
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


def _jsonl_record(path: Path, lineno: int, raw: bytes) -> Record | None:
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


# ---------------------------------------------------------------------- interpreting
def _field(rec: Record, name: str, required: bool = True) -> Any:
    if name not in rec.data or rec.data[name] is None:
        if required:
            raise IngestError(f"{rec.where}: missing field '{name}'")
        return None
    return rec.data[name]


def _text_field(rec: Record, name: str) -> str:
    value = _field(rec, name)
    if not isinstance(value, str):
        raise IngestError(f"{rec.where}: field '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise IngestError(f"{rec.where}: field '{name}' is empty")
    return value


def _question_text(rec: Record, fields: str | list[str]) -> str:
    """The question: one field as is, or several fields' values, each trimmed, joined with a space."""
    if isinstance(fields, str):
        fields = [fields]
    if len(fields) == 1:
        return _text_field(rec, fields[0])
    parts = []
    for name in fields:
        value = _field(rec, name)
        if not isinstance(value, str):
            raise IngestError(f"{rec.where}: field '{name}' must be a string, got {type(value).__name__}")
        parts.append(value.strip())
    question = " ".join(p for p in parts if p)
    if not question:
        raise IngestError(f"{rec.where}: fields {', '.join(repr(f) for f in fields)} are all empty")
    return question


def _program_samples(rec: Record, name: str) -> list[str]:
    """The completions in field ``name``: a string is one sample, a list of strings one per element."""
    value = _field(rec, name)
    if isinstance(value, str):
        return [_text_field(rec, name)]
    if isinstance(value, (list, tuple)):
        if not value:
            raise IngestError(f"{rec.where}: field '{name}' is an empty list")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise IngestError(f"{rec.where}: field '{name}' element {i}: must be a string, "
                                  f"got {type(item).__name__}")
            if not item.strip():
                raise IngestError(f"{rec.where}: field '{name}' element {i} is empty")
        return list(value)
    raise IngestError(f"{rec.where}: field '{name}' must be a string or a list of strings, "
                      f"got {type(value).__name__}")


def _pick(rec: Record, explicit: str | None, aliases: tuple[str, ...]) -> str:
    if explicit:
        return explicit
    return next((a for a in aliases if a in rec.data), aliases[0])


def detect_format(rec: Record) -> str:
    d = rec.data
    if "question" in d and isinstance(d.get("answer"), str) and "####" in d["answer"]:
        return "gsm8k"
    if "input" in d and "target" in d:
        return "pal"
    return "jsonl"


def parse_gold(rec: Record, field: str, value: Any) -> tuple[float | None, str | None]:
    """``(numeric gold or None, answer text)`` from a raw answer value."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, "yes" if value else "no"
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise IngestError(f"{rec.where}: field '{field}' is not a finite number")
        return float(value), _fmt_number(value)
    if isinstance(value, str):
        num = parse_number(value)
        return num, value.strip()
    raise IngestError(f"{rec.where}: field '{field}' must be a number or string, got {type(value).__name__}")


def _fmt_number(v: float | int) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def problem_row(rec: Record, fmt: str, dataset: str, split: str, source: str,
                question_field: str | list[str] | None, answer_field: str | None) -> dict:
    """One ``problems`` row from a record, or an IngestError naming what is wrong.

    ``question_field`` may name several fields: their trimmed values joined with one space.
    """
    if fmt == "auto":
        fmt = detect_format(rec)
    qf = question_field or {"gsm8k": "question", "pal": "input"}.get(fmt) or _pick(rec, None, QUESTION_ALIASES)
    af = answer_field or {"gsm8k": "answer", "pal": "target"}.get(fmt) or _pick(rec, None, ANSWER_ALIASES)
    question = _question_text(rec, qf)
    rationale = None
    if fmt == "gsm8k":
        raw = _text_field(rec, af)
        if "####" not in raw:
            raise IngestError(f"{rec.where}: field '{af}' has no '#### <answer>' line")
        rationale, _, final = raw.rpartition("####")
        final = final.strip().replace(",", "")
        gold = parse_number(final)
        if gold is None:
            raise IngestError(f"{rec.where}: field '{af}': answer after '####' is not a number: {final!r}")
        answer_text, rationale = final, rationale.strip()
    else:
        gold, answer_text = parse_gold(rec, af, _field(rec, af, required=fmt == "pal"))
    return {"problem_id": problem_id(dataset, question), "dataset": dataset, "split": split,
            "question": question, "answer": gold, "answer_text": answer_text,
            "rationale": rationale, "source": source}


def default_split(source: str | os.PathLike, fmt: str) -> str:
    stem = Path(str(source)).stem.lower()
    for split in ("train", "validation", "test"):
        if stem == split or stem.endswith("_" + split) or stem.startswith(split):
            return split
    if stem in ("dev", "valid", "val"):
        return "validation"
    return "test" if fmt == "pal" else "train"


# ---------------------------------------------------------------------- stages
def ingest(store: Store, source: str | os.PathLike, dataset: str, split: str | None = None,
           fmt: str = "auto", question_field: str | None = None, answer_field: str | None = None,
           limit: int | None = None, config: str | None = None) -> dict:
    """Add the problems in ``source`` to ``dataset``; returns ``{"read": n, "added": m}``."""
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    records = read_records(source, limit=limit, config=config, hf_split=split)
    split = split or records[0].split or default_split(
        source, fmt if fmt != "auto" else detect_format(records[0]))
    rows = [problem_row(r, fmt, dataset, split, str(source), question_field, answer_field)
            for r in records]
    df = pd.DataFrame(rows)
    with store.transaction():
        added = store.insert_new("problems", df, "problem_id")
    return {"read": len(rows), "added": added, "split": split}


def import_programs(store: Store, source: str | os.PathLike, dataset: str, split: str | None = None,
                    question_field: str | list[str] | None = None, program_field: str | None = None,
                    answer_field: str | None = None, teacher: str | None = None,
                    limit: int | None = None, skip_invalid: bool = False) -> dict:
    """Add programs made elsewhere (creating their problems).

    ``question_field``: a field name, or a list of them whose values are joined with a space
    (e.g. ``["Body", "Question"]``). ``program_field`` holds a string (one sample) or a list
    of strings (one sample each); ``sample_idx`` counts up per problem across the file.
    Strict by default: the first bad record raises an IngestError naming file:line and field,
    and nothing is written. With ``skip_invalid`` the valid records are imported and every bad
    one (including lines that are not JSON) is listed in ``skipped_records`` as
    ``"file:line: reason"``, in file order.

    Returns ``read`` (programs), ``records`` (records imported), ``added`` (new programs),
    ``problems_added``, ``skipped`` (records skipped), ``skipped_records`` and ``split``.
    """
    skipped: list[str] | None = [] if skip_invalid else None
    records = read_records(source, limit=limit, skipped=skipped)
    split = split or records[0].split or default_split(source, detect_format(records[0]))
    problems, programs = [], []
    seen: dict[str, int] = {}
    imported = 0
    for rec in records:
        try:
            pf = _pick(rec, program_field, PROGRAM_ALIASES)
            samples = _program_samples(rec, pf)
            qf = question_field or _pick(rec, None, QUESTION_ALIASES)
            af = _pick(rec, answer_field, ANSWER_ALIASES)
            prob = problem_row(rec, "jsonl", dataset, split, str(source), qf, af)
        except IngestError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        imported += 1
        problems.append(prob)
        pid = prob["problem_id"]
        first = seen.get(pid, 0)
        seen[pid] = first + len(samples)
        t = str(teacher or rec.data.get("teacher") or rec.data.get("model") or "import")
        for idx, raw in enumerate(samples, first):
            code = extract_program(raw)
            programs.append({"program_id": program_id(pid, code, t, idx, "import"),
                             "problem_id": pid, "origin": "import", "teacher": t,
                             "sample_idx": idx, "program": code, "completion": raw})
    bad = sorted(skipped or [], key=_line_of)
    if not programs:
        raise IngestError(f"{source}: no valid records ({len(bad)} skipped; first: {bad[0]})")
    with store.transaction():
        added_problems = store.insert_new("problems", pd.DataFrame(problems), "problem_id")
        added = store.insert_new("programs", pd.DataFrame(programs), "program_id")
    return {"read": len(programs), "records": imported, "added": added, "problems_added": added_problems,
            "skipped": len(bad), "skipped_records": bad, "split": split}


def _line_of(message: str) -> int:
    """The line (or item/row) number in a ``"file:line: reason"`` message, for file order."""
    m = re.search(r":(?:item |row )?(\d+): ", message)
    return int(m.group(1)) if m else 0
