"""Getting data in: problems (``pad ingest``) and programs made elsewhere (``pad import-programs``).

Sources: local ``.jsonl``/``.json``/``.parquet``/``.csv`` files, a local Hugging Face dataset
directory, or a Hub dataset name (``openai/gsm8k`` with ``config="main"``) via
``datasets.load_dataset``. A whole source is validated before anything is written, then
written in one transaction: a bad record anywhere means nothing from that source lands, and
the error names the file, line (or row) and field. Gold answers are read by the one answer
parser, :mod:`pad_data.answers`; ``update=True`` corrects the gold answers of problems already
stored and relabels their executions (:func:`pad_data.labels.relabel`).
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

from .answers import AnswerError, Gold, parse_answer
from .extract import extract_program
from .labels import relabel
from .options import did_you_mean
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


def parse_gold(rec: Record, field: str, value: Any, require_number: bool = False) -> Gold:
    """The gold answer of one record, by the one answer parser (:func:`pad_data.answers.parse_answer`)."""
    try:
        return parse_answer(value, require_number=require_number)
    except AnswerError as exc:
        raise IngestError(f"{rec.where}: field '{field}' {exc}" if not str(exc).startswith("answer ")
                          else f"{rec.where}: field '{field}': {exc}") from None


def problem_row(rec: Record, fmt: str, dataset: str, split: str, source: str,
                question_field: str | list[str] | None, answer_field: str | None) -> dict:
    """One ``problems`` row from a record, or an IngestError naming what is wrong.

    ``question_field`` may name several fields: their trimmed values joined with one space.
    An ``answer_field`` named explicitly must be in the record (its value may be null).
    """
    if fmt == "auto":
        fmt = detect_format(rec)
    qf = question_field or {"gsm8k": "question", "pal": "input"}.get(fmt) or _pick(rec, None, QUESTION_ALIASES)
    af = answer_field or {"gsm8k": "answer", "pal": "target"}.get(fmt) or _pick(rec, None, ANSWER_ALIASES)
    question = _question_text(rec, qf)
    if answer_field and answer_field not in rec.data:
        raise IngestError(f"{rec.where}: missing field '{answer_field}'")
    if fmt == "gsm8k":
        gold = parse_gold(rec, af, _text_field(rec, af), require_number=True)
    else:
        gold = parse_gold(rec, af, _field(rec, af, required=fmt == "pal"))
    return {"problem_id": problem_id(dataset, question), "dataset": dataset, "split": split,
            "question": question, "answer": gold.number, "answer_text": gold.text,
            "rationale": gold.rationale, "source": source}


def check_fields_exist(source: str | os.PathLike, records: list[Record], fields: dict[str, Any]) -> None:
    """Each field named explicitly (``{option: name or [names]}``) must be in some record: else
    an IngestError naming the field and the file, with the closest field name. (Question and
    program fields are required in every record anyway: a missing one names file:line.)"""
    seen: set[str] = set()
    for rec in records:
        seen.update(map(str, rec.data))
    for option, names in fields.items():
        for name in ([names] if isinstance(names, str) else names or []):
            if name not in seen:
                raise IngestError(f"{source}: no record has field '{name}' ({option})"
                                  f"{did_you_mean(name, seen) or '; fields: ' + ', '.join(sorted(seen)[:20])}")


def _conflicts(rows: list[dict], wheres: list[str]) -> dict[int, str]:
    """Records whose question is also elsewhere in the same file with another gold answer:
    ``{row index: "file:line: gold answer ... conflicts with file:line ..."}``, for every record of
    such a question, in file order (a conflict is reported, never resolved by picking one)."""
    by_problem: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_problem.setdefault(row["problem_id"], []).append(i)
    out: dict[int, str] = {}
    for idx in by_problem.values():
        golds = {_gold_key(rows[i]) for i in idx}
        if len(golds) < 2:
            continue
        for i in idx:
            j = next(k for k in idx if _gold_key(rows[k]) != _gold_key(rows[i]))
            out[i] = (f"{wheres[i]}: gold answer {rows[i]['answer_text']!r} conflicts with {wheres[j]} "
                      f"({rows[j]['answer_text']!r}) for the same question")
    return dict(sorted(out.items()))


def _first_later(conflicts: dict[int, str], rows: list[dict]) -> str:
    """The message of the first record whose gold answer differs from an earlier record of the
    same question (what strict mode reports)."""
    golds: dict[str, set] = {}
    for i, message in conflicts.items():
        seen = golds.setdefault(rows[i]["problem_id"], set())
        if seen and _gold_key(rows[i]) not in seen:
            return message
        seen.add(_gold_key(rows[i]))
    return next(iter(conflicts.values()))


def _gold_key(row: dict) -> tuple:
    text = row["answer_text"]
    return (row["answer"], None if row["answer"] is not None or text is None else " ".join(text.split()).lower())


def default_split(source: str | os.PathLike, fmt: str) -> str:
    stem = Path(str(source)).stem.lower()
    for split in ("train", "validation", "test"):
        if stem == split or stem.endswith("_" + split) or stem.startswith(split):
            return split
    if stem in ("dev", "valid", "val"):
        return "validation"
    return "test" if fmt == "pal" else "train"


# ---------------------------------------------------------------------- stages
def _write_problems(store: Store, df: pd.DataFrame, update: bool) -> dict:
    """Insert new problems; with ``update`` also replace the gold answer (and answer text,
    rationale) of problems already stored whose answer differs, and relabel their programs'
    executions. The caller owns the transaction. Returns ``added``, ``updated`` (gold changed),
    ``relabeled`` (executions whose label changed) and ``differ`` (stored with another gold
    answer and not updated)."""
    added = store.insert_new("problems", df, "problem_id")
    differ = store.update_gold(df, apply=update)
    relabeled = relabel(store, differ) if update and differ else 0
    return {"added": added, "updated": len(differ) if update else 0, "relabeled": relabeled,
            "differ": 0 if update else len(differ)}


def _warn_no_gold(rows: list[dict], dataset: str, source: str | os.PathLike) -> str | None:
    missing = sum(r["answer"] is None and r["answer_text"] is None for r in rows)
    if rows and missing == len(rows):
        return (f"{source}: none of the {missing} problems read has a gold answer (no field "
                f"{'/'.join(ANSWER_ALIASES)}? pass --answer-field); dataset {dataset!r} cannot be labeled "
                "correct or wrong")
    return None


def ingest(store: Store, source: str | os.PathLike, dataset: str, split: str | None = None,
           fmt: str = "auto", question_field: str | list[str] | None = None, answer_field: str | None = None,
           limit: int | None = None, config: str | None = None, update: bool = False) -> dict:
    """Add the problems in ``source`` to ``dataset``.

    With ``update``, problems already stored get the gold answer of the file (when it differs)
    and the executions of their programs are relabeled (no re-execution). A question that
    appears twice in the file with different gold answers is an IngestError.

    Returns ``read``, ``added``, ``updated``, ``relabeled``, ``differ`` (stored with another gold
    answer, not updated: pass ``update``), ``split`` and ``warning`` (all gold NULL) or None.
    """
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    records = read_records(source, limit=limit, config=config, hf_split=split)
    check_fields_exist(source, records, {"--answer-field": answer_field})
    split = split or records[0].split or default_split(
        source, fmt if fmt != "auto" else detect_format(records[0]))
    rows = [problem_row(r, fmt, dataset, split, str(source), question_field, answer_field)
            for r in records]
    conflicts = _conflicts(rows, [r.where for r in records])
    if conflicts:
        raise IngestError(_first_later(conflicts, rows))
    df = pd.DataFrame(rows).drop_duplicates(subset=["problem_id"])
    with store.transaction():
        r = _write_problems(store, df, update)
    return {"read": len(rows), **r, "split": split, "warning": _warn_no_gold(rows, dataset, source)}


def import_programs(store: Store, source: str | os.PathLike, dataset: str, split: str | None = None,
                    question_field: str | list[str] | None = None, program_field: str | None = None,
                    answer_field: str | None = None, teacher: str | None = None,
                    limit: int | None = None, skip_invalid: bool = False, update: bool = False) -> dict:
    """Add programs made elsewhere (creating their problems).

    ``question_field``: a field name, or a list of them whose values are joined with a space
    (e.g. ``["Body", "Question"]``). ``program_field`` holds a string (one sample) or a list
    of strings (one sample each); ``sample_idx`` counts up per problem across the file.
    Gold answers are read by the one answer parser (GSM8K's ``#### N`` included).
    Strict by default: the first bad record raises an IngestError naming file:line and field,
    and nothing is written. With ``skip_invalid`` the valid records are imported and every bad
    one (including lines that are not JSON) is listed in ``skipped_records`` as
    ``"file:line: reason"``, in file order. Records of one question with different gold
    answers are bad records (every one of them). ``update``: as for :func:`ingest`.

    Returns ``read`` (programs), ``records`` (records imported), ``added`` (new programs),
    ``problems_added``, ``updated``, ``relabeled``, ``differ``, ``skipped`` (records skipped),
    ``skipped_records``, ``split`` and ``warning``.
    """
    skipped: list[str] | None = [] if skip_invalid else None
    records = read_records(source, limit=limit, skipped=skipped)
    check_fields_exist(source, records, {"--answer-field": answer_field})
    split = split or records[0].split or default_split(source, detect_format(records[0]))
    parsed: list[tuple[Record, dict, list[str]]] = []
    for rec in records:
        try:
            pf = _pick(rec, program_field, PROGRAM_ALIASES)
            samples = _program_samples(rec, pf)
            qf = question_field or _pick(rec, None, QUESTION_ALIASES)
            prob = problem_row(rec, "jsonl", dataset, split, str(source), qf, answer_field)
        except IngestError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        parsed.append((rec, prob, samples))
    conflicts = _conflicts([p for _, p, _ in parsed], [r.where for r, _, _ in parsed])
    if conflicts:
        if skipped is None:
            raise IngestError(_first_later(conflicts, [p for _, p, _ in parsed]))
        skipped.extend(conflicts.values())
        bad_pids = {parsed[i][1]["problem_id"] for i in conflicts}
        parsed = [x for x in parsed if x[1]["problem_id"] not in bad_pids]
    problems, programs = [], []
    seen: dict[str, int] = {}
    for rec, prob, samples in parsed:
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
        r = _write_problems(store, pd.DataFrame(problems).drop_duplicates(subset=["problem_id"]), update)
        added = store.insert_new("programs", pd.DataFrame(programs), "program_id")
    return {"read": len(programs), "records": len(parsed), "added": added, "problems_added": r["added"],
            "updated": r["updated"], "relabeled": r["relabeled"], "differ": r["differ"],
            "skipped": len(bad), "skipped_records": bad, "split": split,
            "warning": _warn_no_gold(problems, dataset, source)}


def _line_of(message: str) -> int:
    """The line (or item/row) number in a ``"file:line: reason"`` message, for file order."""
    m = re.search(r":(?:item |row )?(\d+): ", message)
    return int(m.group(1)) if m else 0
