"""Getting data in: problems (``pad ingest``) and programs made elsewhere (``pad import-programs``).

Sources: local ``.jsonl``/``.json``/``.parquet``/``.csv`` files, a local Hugging Face dataset
directory, or a Hub dataset name (``openai/gsm8k`` with ``config="main"``) via
``datasets.load_dataset``. A whole source is validated before anything is written, then
written in one transaction: a bad record anywhere means nothing from that source lands, and
the error names the file, line (or row) and field. Gold answers are read by the one answer
parser, :mod:`pad_data.rules.answers`; ``update=True`` corrects the gold answers of problems already
stored and relabels their executions (:func:`pad_data.rules.labels.relabel`).

Reading is :mod:`pad_data.stages.sources`; JSONL is read in bulk by DuckDB (:mod:`pad_data.stages.bulk`),
which leaves to the record-by-record functions here every record it cannot be sure of, so
both paths give the same rows and the same errors. The store is written only at the end.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pad_data.rules.answers import AnswerError, Gold, choice_gold, looks_like_choice, parse_answer, parse_options
from pad_data.stages.bulk import (ANSWER_ALIASES, OPTIONS_FIELD, PROGRAM_ALIASES, QUESTION_ALIASES, SCRATCH_MEMORY,
                                  SourceRead, Spec)
from pad_data.rules.labels import relabel
from pad_data.rules.options import did_you_mean
from pad_data.stages.sources import IngestError, Record, field_names, lookup, read_preamble, read_records  # noqa: F401 - IngestError, read_records: public here too
from pad_data.store import Store, problem_id

FORMATS = ("auto", "gsm8k", "pal", "jsonl")


# ---------------------------------------------------------------------- interpreting
def _field(rec: Record, name: str, required: bool = True) -> Any:
    """The value of field ``name`` (a key, or a dotted path: :func:`lookup`); missing or null is an
    IngestError when ``required``, else None."""
    value = lookup(rec.data, name)[1]
    if value is None and required:
        raise IngestError(f"{rec.where}: missing field '{name}'")
    return value


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


def _program_samples(rec: Record, name: str) -> tuple[list[str], list[str]]:
    """The completions in field ``name`` (a string is one sample, a list of strings one per
    element) and a ``"file:line: ..."`` message for each empty element of a list: that sample
    is left out, the others kept (a list with nothing but empty samples is an error)."""
    value = _field(rec, name)
    if isinstance(value, str):
        return [_text_field(rec, name)], []
    if isinstance(value, (list, tuple)):
        if not value:
            raise IngestError(f"{rec.where}: field '{name}' is an empty list")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise IngestError(f"{rec.where}: field '{name}' element {i}: must be a string, "
                                  f"got {type(item).__name__}")
        samples = [item for item in value if item.strip()]
        if not samples:
            raise IngestError(f"{rec.where}: field '{name}' has only empty samples")
        return samples, [f"{rec.where}: field '{name}' element {i} is empty (that sample only)"
                         for i, item in enumerate(value) if not item.strip()]
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
    """The gold answer of one record, by the one answer parser (:func:`pad_data.rules.answers.parse_answer`)."""
    try:
        return parse_answer(value, require_number=require_number)
    except AnswerError as exc:
        raise IngestError(f"{rec.where}: field '{field}' {exc}" if not str(exc).startswith("answer ")
                          else f"{rec.where}: field '{field}': {exc}") from None


def parse_choices(rec: Record, options_field: str | None, gold: Gold) -> tuple[str, tuple[str, ...] | None]:
    """(the options field, the record's multiple-choice options or None), by the one answer reader
    (:func:`pad_data.rules.answers.parse_options`); the field is ``options_field``, else ``options``
    (whose value, when it is not options, is an error only for a gold that is a choice letter)."""
    of = options_field or OPTIONS_FIELD
    try:
        return of, parse_options(lookup(rec.data, of)[1])
    except AnswerError as exc:
        if options_field is None and not looks_like_choice(gold.text):
            return of, None
        raise IngestError(f"{rec.where}: field '{of}' {exc}") from None


def problem_row(rec: Record, fmt: str, dataset: str, split: str, source: str,
                question_field: str | list[str] | None, answer_field: str | None, no_gold: bool = False,
                options_field: str | None = None) -> dict:
    """One ``problems`` row from a record, or an IngestError naming what is wrong.

    ``question_field`` may name several fields: their trimmed values joined with one space.
    An ``answer_field`` named explicitly must be in the record (its value may be null).
    ``no_gold``: the problem has no gold answer, whatever the record holds. Options (field
    ``options_field``, else ``options``) make a choice-letter gold its option's value
    (:func:`pad_data.rules.answers.choice_gold`), the letter and the options kept.
    """
    if fmt == "auto":
        fmt = detect_format(rec)
    qf = question_field or {"gsm8k": "question", "pal": "input"}.get(fmt) or _pick(rec, None, QUESTION_ALIASES)
    af = answer_field or {"gsm8k": "answer", "pal": "target"}.get(fmt) or _pick(rec, None, ANSWER_ALIASES)
    question = _question_text(rec, qf)
    if no_gold:
        gold = Gold(None, None)
    elif answer_field and not lookup(rec.data, answer_field)[0]:
        raise IngestError(f"{rec.where}: missing field '{answer_field}'")
    elif fmt == "gsm8k":
        gold = parse_gold(rec, af, _text_field(rec, af), require_number=True)
    else:
        gold = parse_gold(rec, af, _field(rec, af, required=fmt == "pal"))
    of, options = parse_choices(rec, options_field, gold)
    try:
        gold = choice_gold(gold, options)
    except AnswerError as exc:
        raise IngestError(f"{rec.where}: field '{af}' {exc} in field '{of}'") from None
    return {"problem_id": problem_id(dataset, question), "dataset": dataset, "split": split,
            "question": question, "answer": gold.number, "answer_text": gold.text,
            "rationale": gold.rationale, "source": source, "choice": gold.choice,
            "options": list(gold.options) if gold.options else None}


def check_fields_exist(source: str | os.PathLike, records: list[Record], fields: dict[str, Any],
                       programs: bool = False) -> None:
    """Each field named explicitly (``{option: name or [names]}``; a dotted name may be a path
    into nested objects) must be in some record: else an IngestError naming the field and the
    file, with the closest field name or the fields there are. With ``programs`` and no
    ``--program-field``, some record must have one of :data:`PROGRAM_ALIASES`. (A field in some
    records only is an error naming file:line where it is required.)"""
    def missing(message: str, name: str | None = None) -> IngestError:
        seen: set[str] = set()
        for rec in records:
            seen.update(field_names(rec.data))
        hint = did_you_mean(name, seen) if name else ""
        top = sorted({f for f in seen if "." not in f})
        return IngestError(f"{source}: {message}{hint or '; fields: ' + ', '.join(top[:20])}"
                           + (", ..." if len(top) > 20 and not hint else ""))

    for option, names in fields.items():
        for name in ([names] if isinstance(names, str) else names or []):
            if not any(lookup(rec.data, name)[0] for rec in records):
                raise missing(f"no record has field '{name}' ({option})", name)
    if programs and not fields.get("--program-field") and \
            not any(a in rec.data for rec in records for a in PROGRAM_ALIASES):
        raise missing(f"no record has a program field ({', '.join(PROGRAM_ALIASES)}): name it with --program-field")


def check_field_options(question_field: str | list[str] | None, answer_field: str | None,
                        program_field: str | None = None, no_gold: bool = False,
                        options_field: str | None = None) -> None:
    """Field names given must not be empty (an empty one would silently mean the default), and
    ``no_gold`` (problems without gold answers) takes no ``answer_field``."""
    if options_field is not None and not options_field.strip():
        raise IngestError("--options-field is empty: name the field holding the multiple-choice options")
    if answer_field is not None and not answer_field.strip():
        raise IngestError("--answer-field is empty: to read the problems without gold answers, pass --no-gold")
    if no_gold and answer_field is not None:
        raise IngestError("--no-gold reads no gold answer: leave out --answer-field")
    if program_field is not None and not program_field.strip():
        raise IngestError("--program-field is empty: name the field holding the programs")
    names = [question_field] if isinstance(question_field, str) else question_field
    if names is not None and (not names or not all(n.strip() for n in names)):
        raise IngestError("--question-field is empty: name the field(s) holding the question")


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
def _write_problems(store: Store, problems: str, update: bool) -> dict:
    """Insert new problems (``problems``: a table the store reads, one row per problem_id); with
    ``update`` also replace the gold answer (and answer text, rationale) of problems already
    stored whose answer differs, and relabel their programs' executions. The caller owns the
    transaction. Returns ``added``, ``updated`` (gold changed), ``relabeled`` (executions whose
    label changed) and ``differ`` (stored with another gold answer and not updated)."""
    added = store.insert_rows("problems", problems, "problem_id")
    differ = store.update_gold(problems, apply=update)
    relabeled = relabel(store, differ) if update and differ else 0
    return {"added": added, "updated": len(differ) if update else 0, "relabeled": relabeled,
            "differ": 0 if update else len(differ)}


def _warn_no_gold(reading: SourceRead, dataset: str, source: str | os.PathLike, no_gold: bool) -> str | None:
    if no_gold:  # asked for
        return None
    rows, missing = reading.gold_counts()
    if rows and missing == rows:
        return (f"{source}: none of the {missing} problems read has a gold answer (no field "
                f"{'/'.join(ANSWER_ALIASES)}? pass --answer-field, or --no-gold to say so); dataset {dataset!r} "
                "cannot be labeled correct or wrong")
    return None


def _warn_letters(reading: SourceRead, source: str | os.PathLike, options_field: str | None) -> str | None:
    """A warning when text golds look like choice letters (``C``, ``(c)``) and no options were read
    with them: they would be compared as text, and no program returns them."""
    letters = {t: n for t, n in reading.short_text_golds().items() if looks_like_choice(t)}
    if not letters:
        return None
    shown = ", ".join(repr(t) for t in sorted(letters)[:5]) + (", ..." if len(letters) > 5 else "")
    n = sum(letters.values())
    return (f"{source}: {n:,} gold answer{'s' if n != 1 else ''} ({shown}) look{'' if n != 1 else 's'} like choice "
            f"letters but no options were read with {'them' if n != 1 else 'it'} (field "
            f"{options_field or OPTIONS_FIELD!r}), so they are compared as text: pass --options-field F to map "
            "each letter to its option's value")


def _problem_cols(prob: dict) -> dict:
    return {k: prob[k] for k in ("problem_id", "question", "answer", "answer_text", "rationale", "choice", "options")}


def _check_options_read(reading: SourceRead, source: str | os.PathLike, options_field: str | None) -> None:
    """An ``options_field`` named explicitly must be in some record: the bulk path reads records
    without it as sure, so :func:`check_fields_exist` may not have seen them."""
    if options_field and reading.fast and not reading.options_read():
        check_fields_exist(source, [reading.first] + [r for _, r in reading.slow], {"--options-field": options_field})


def _check_conflicts(reading: SourceRead, skipped: list[str] | None) -> None:
    """Questions of the source with different gold answers: an IngestError naming the first record
    that disagrees with an earlier one; with a ``skipped`` list, every record of such a question is
    listed there and dropped."""
    rows = reading.conflict_candidates()
    conflicts = _conflicts(rows, [r["where"] for r in rows])
    if not conflicts:
        return
    if skipped is None:
        raise IngestError(_first_later(conflicts, rows))
    skipped.extend(conflicts.values())
    reading.drop_problems({rows[i]["problem_id"] for i in conflicts})


def _fields(question_field: str | list[str] | None) -> list[str] | None:
    return [question_field] if isinstance(question_field, str) else (list(question_field) if question_field else None)


def _scratch(store: Store) -> dict:
    """Where a read's scratch database lives and how much memory it has: beside the store, half
    the store's budget (at most bulk.SCRATCH_MEMORY)."""
    return {"memory": store.share(0.5, at_most=SCRATCH_MEMORY), "folder": store.path.parent}


def ingest(store: Store, source: str | os.PathLike, dataset: str, split: str | None = None,
           fmt: str = "auto", question_field: str | list[str] | None = None, answer_field: str | None = None,
           limit: int | None = None, config: str | None = None, update: bool = False, no_gold: bool = False,
           options_field: str | None = None) -> dict:
    """Add the problems in ``source`` to ``dataset``.

    Fields are keys, or dotted paths into nested objects (``a.b``: the key ``a.b`` when a record
    has one). ``no_gold``: the problems have no gold answer (``pad vote`` can give them one).
    ``options_field`` (default ``options``, when a record has it): multiple-choice options; a
    gold that is a choice letter becomes its option's value (the letter and options kept), and
    a program returning the value or the letter is correct.

    With ``update``, problems already stored get the gold answer of the file (when it differs)
    and the executions of their programs are relabeled (no re-execution). A question that
    appears twice in the file with different gold answers is an IngestError.

    Returns ``read`` (records), ``repeated`` (records of a question an earlier record of the file
    has), ``added``, ``stored`` (questions of the file already stored), ``updated``, ``relabeled``,
    ``differ`` (stored with another gold answer, not updated: pass ``update``), ``split`` and
    ``warning`` (all gold NULL, or golds that look like choice letters with no options) or None.
    """
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    check_field_options(question_field, answer_field, no_gold=no_gold, options_field=options_field)
    spec = Spec(dataset, fmt, _fields(question_field), answer_field, no_gold=no_gold, options_field=options_field)
    with SourceRead(source, spec, limit=limit, config=config, hf_split=split, **_scratch(store)) as reading:
        if not reading.fast:
            check_fields_exist(source, [r for _, r in reading.slow],
                               {"--question-field": question_field, "--answer-field": answer_field,
                                "--options-field": options_field})
        split = split or reading.first.split or default_split(
            source, fmt if fmt != "auto" else detect_format(reading.first))
        reading.add_rows([{"ln": ln, "where_": rec.where, **_problem_cols(
            problem_row(rec, fmt, dataset, split, str(source), question_field, answer_field, no_gold, options_field))}
            for ln, rec in reading.slow])
        _check_options_read(reading, source, options_field)
        _check_conflicts(reading, None)
        read, questions = reading.records(), reading.problems()
        warning = _warn_no_gold(reading, dataset, source, no_gold) or _warn_letters(reading, source, options_field)
        reading.finish(split, str(source))
        with store.transaction(), reading.attached(store) as scratch:
            r = _write_problems(store, f"{scratch}.prob", update)
    return {"read": read, "repeated": read - questions, **r, "stored": questions - r["added"], "split": split,
            "warning": warning}


def _program_record(rec: Record, dataset: str, split: str, source: str, question_field: str | list[str] | None,
                    program_field: str | None, answer_field: str | None, teacher: str | None,
                    no_gold: bool = False, options_field: str | None = None) -> tuple[dict, list[str]]:
    """The row of one record for import-programs (``samples``: its raw completions) and the
    messages of the empty samples left out, or an IngestError naming what is wrong."""
    pf = _pick(rec, program_field, PROGRAM_ALIASES)
    samples, empty = _program_samples(rec, pf)
    qf = question_field or _pick(rec, None, QUESTION_ALIASES)
    prob = problem_row(rec, "jsonl", dataset, split, source, qf, answer_field, no_gold, options_field)
    t = str(teacher or rec.data.get("teacher") or rec.data.get("model") or "import")
    return {**_problem_cols(prob), "teacher": t, "samples": samples}, empty


def import_programs(store: Store, source: str | os.PathLike, dataset: str, split: str | None = None,
                    question_field: str | list[str] | None = None, program_field: str | None = None,
                    answer_field: str | None = None, teacher: str | None = None,
                    limit: int | None = None, skip_invalid: bool = False, update: bool = False,
                    no_gold: bool = False, options_field: str | None = None,
                    preamble: str | os.PathLike | None = None) -> dict:
    """Add programs made elsewhere (creating their problems).

    ``question_field``: a field name, or a list of them whose values are joined with a space
    (e.g. ``["Body", "Question"]``). ``program_field`` holds a string (one sample) or a list
    of strings (one sample each); ``sample_idx`` counts up per problem across the file. An empty
    element of a list is left out (and listed in ``skipped_samples``), the record's other samples
    kept. Fields may be dotted paths into nested objects, as for :func:`ingest`. Gold answers are read by the one answer parser (GSM8K's ``#### N`` included).
    Strict by default: the first bad record raises an IngestError naming file:line and field,
    and nothing is written. With ``skip_invalid`` the valid records are imported and every bad
    one (including lines that are not JSON) is listed in ``skipped_records`` as
    ``"file:line: reason"``, in file order. Records of one question with different gold
    answers are bad records (every one of them). ``update``, ``no_gold``, ``options_field``: as for
    :func:`ingest`. ``preamble``: a file of code each program runs after, in its namespace (the
    imports and helpers of the pipeline that wrote them: :func:`~pad_data.stages.sources.read_preamble`),
    stored once in ``preambles`` and named by every program; its id is part of the program ids.
    JSONL is read in bulk by DuckDB (:mod:`pad_data.stages.bulk`), with the same rules and messages.

    Returns ``read`` (programs), ``records`` (records imported), ``added`` (new programs),
    ``problems_added``, ``updated``, ``relabeled``, ``differ``, ``skipped`` (records skipped),
    ``skipped_records``, ``skipped_samples`` (``"file:line: ..."`` of each empty sample left out
    of a record imported), ``split``, ``warning`` and ``preamble`` (its id, or None).
    """
    check_field_options(question_field, answer_field, program_field, no_gold, options_field)
    pre = read_preamble(preamble) if preamble is not None else None
    skipped: list[str] | None = [] if skip_invalid else None
    spec = Spec(dataset, "jsonl", _fields(question_field), answer_field, programs=True,
                program_field=program_field, teacher=teacher, no_gold=no_gold, options_field=options_field)
    with SourceRead(source, spec, limit=limit, skipped=skipped, **_scratch(store)) as reading:
        if not reading.fast:
            check_fields_exist(source, [r for _, r in reading.slow],
                               {"--question-field": question_field, "--program-field": program_field,
                                "--answer-field": answer_field, "--options-field": options_field}, programs=True)
        split = split or reading.first.split or default_split(source, detect_format(reading.first))
        rows, empty = [], {}
        for ln, rec in reading.slow:
            try:
                row, empty[ln] = _program_record(rec, dataset, split, str(source), question_field, program_field,
                                                 answer_field, teacher, no_gold, options_field)
                rows.append({"ln": ln, "where_": rec.where, **row})
            except IngestError as exc:
                if skipped is None:
                    raise
                skipped.append(str(exc))
        reading.add_rows(rows)
        _check_options_read(reading, source, options_field)
        _check_conflicts(reading, skipped)
        bad = sorted(skipped or [], key=_line_of)
        kept = reading.kept_lines([ln for ln, messages in empty.items() if messages])
        empty_samples = [m for ln in sorted(kept) for m in empty[ln]]
        records = reading.records()
        warning = _warn_no_gold(reading, dataset, source, no_gold) or _warn_letters(reading, source, options_field)
        read = reading.finish(split, str(source), origin="import", preamble=pre and pre.preamble_id)
        if not read:
            raise IngestError(f"{source}: no valid records ({len(bad)} skipped; first: {bad[0]})")
        with store.transaction(), reading.attached(store) as scratch:
            r = _write_problems(store, f"{scratch}.prob", update)
            if pre is not None:
                store.insert_new("preambles", pd.DataFrame([pre.row()]), "preamble_id")
            added = store.insert_rows("programs", f"{scratch}.prog", "program_id")
    return {"read": read, "records": records, "added": added, "problems_added": r["added"],
            "updated": r["updated"], "relabeled": r["relabeled"], "differ": r["differ"],
            "skipped": len(bad), "skipped_records": bad, "skipped_samples": empty_samples, "split": split,
            "warning": warning, "preamble": pre and pre.preamble_id}


def _line_of(message: str) -> int:
    """The line (or item/row) number in a ``"file:line: reason"`` message, for file order."""
    m = re.search(r":(?:item |row )?(\d+): ", message)
    return int(m.group(1)) if m else 0
