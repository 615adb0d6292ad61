"""``pad export NAME``: a curated snapshot as a Hugging Face dataset, parquet or jsonl files.

Rows never pass through Python lists: DuckDB ``COPY``s each split straight to parquet/jsonl,
and the ``hf`` format loads those parquet files with ``datasets`` (memory-mapped Arrow) and
``save_to_disk``s a ``DatasetDict`` (train/validation/test), a fraction of the heap of
``Dataset.from_pandas`` (bench/README.md), though not perfectly flat.
Columns fit training directly: question, program, preamble (the code the program ran after, or
null: ``preamble + "\n" + program`` is what was executed), answer, answer_text, plus where the
answer came from (``gold_source``: gold, or consensus with its ``agreement``), ids, labels and
verdicts. The ``chat`` format is the ``hf`` layout with a ``messages`` column instead of question
and program (system, user question, assistant program; a refinement pair is a two-turn fix
conversation), built in SQL as well, for TRL's ``SFTTrainer`` and other chat trainers; the system
turn asks for the program's own style (:data:`STYLE_SQL`) and shows its preamble, which the
assistant's program uses without repeating it (:data:`CHAT_PREAMBLE`).
A dataset card (README.md) describes the data as it is: provenance, teachers, gold vs consensus
answers, program styles, preambles, label counts before/after filtering, the latest check
results, the license, and for ``chat`` how to train on it. Folders and files get the modes the
umask gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

from pad_data.stages.curate import TASK_TABLES, label_counts_with_unexecuted, snapshot_task
from pad_data.rules.display import visible
from pad_data.rules.options import did_you_mean
from pad_data.store import Store, sql_literal

FORMATS = ("hf", "parquet", "jsonl", "chat")
SPLITS = ("train", "validation", "test")
COLUMNS = {
    "program": ("question", "program", "preamble", "answer", "answer_text", "gold_source", "agreement",
                "problem_id", "program_id", "dataset", "label", "teacher", "origin", "verdict"),
    # refinement pairs: input = question + faulty_program + feedback, target = program (both ran after preamble)
    "refine": ("question", "faulty_program", "feedback", "program", "preamble", "answer", "answer_text",
               "gold_source", "agreement", "problem_id", "faulty_program_id", "program_id", "dataset", "label",
               "injection_kind", "teacher", "origin", "verdict"),
}
# A program's style, read from its text ({p}): `function` (PAL: a top-level `def solution(`, which the
# sandbox calls), `script` (PoT: top-level statements that set `ans`, which the sandbox reads), `other`.
STYLE_SQL = (r"CASE WHEN regexp_matches({p}, '(?m)^def\s+solution\s*\(') THEN 'function' "
             r"WHEN regexp_matches({p}, '(?m)^ans\s*=([^=]|$)') THEN 'script' ELSE 'other' END")
STYLE_NAMES = {"function": "`def solution(): ... return result` functions (PAL style)",
               "script": "scripts that assign the answer to `ans` (PoT style)",
               "other": "other programs (neither a `solution()` function nor an `ans =` script)"}
# the chat format: what the student is told (for the style of the program it is to write), and
# (refine) how the execution feedback is put to it
CHAT_SYSTEMS = {
    "function": ("Solve the problem by writing a Python program: a function solution() that computes the "
                 "answer and returns it. Reply with the program only."),
    "script": ("Solve the problem by writing a Python script that computes the answer and assigns it to a "
               "variable named ans. Reply with the program only."),
    "other": "Solve the problem by writing a Python program that computes the answer. Reply with the program only.",
}
CHAT_FIX = "Running your program gave: {feedback}\nFix the program."
# after the system turn of a program that ran after a preamble: the preamble (the program uses its
# names; the assistant turn is the program alone, as the student is to write it)
CHAT_PREAMBLE = "\n\nThe program runs after this code, whose imports and helpers it may use without repeating them:\n"


def _system_sql(program: str, preambles: dict[str, str]) -> str:
    """The chat system turn for the style of ``program`` (a column) and the row's preamble
    (``preambles``: id -> text), as a SQL expression."""
    style = STYLE_SQL.format(p=program)
    cases = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in CHAT_SYSTEMS.items())
    if not preambles:
        return f"CASE {style} {cases} END"
    shown = " ".join(f"WHEN {sql_literal(pid)} THEN {sql_literal(CHAT_PREAMBLE + fenced(text, 'python'))}"
                     for pid, text in preambles.items())
    return f"CASE {style} {cases} END || CASE preamble_id {shown} ELSE '' END"


def _preamble_sql(preambles: dict[str, str]) -> str:
    """A row's preamble text (``preambles``: id -> text), as a SQL expression over ``preamble_id``
    (a CASE of literals: the scan stays one table's, in its stored order)."""
    if not preambles:
        return "NULL::VARCHAR AS preamble"
    cases = " ".join(f"WHEN {sql_literal(pid)} THEN {sql_literal(text)}" for pid, text in preambles.items())
    return f"CASE preamble_id {cases} END AS preamble"


def _select(task: str, preambles: dict[str, str], chat: bool) -> list[str]:
    """SELECT expressions of an export (``chat``: ``messages``, a list of {role, content} structs
    made by DuckDB, instead of question and programs)."""
    columns = [_preamble_sql(preambles) if c == "preamble" else c for c in COLUMNS[task]]
    if not chat:
        return columns

    def msg(role: str, content: str) -> str:
        return f"{{'role': '{role}', 'content': {content}}}"

    turns = [msg("system", _system_sql("program", preambles)), msg("user", "question")]
    if task == "refine":
        before, after = CHAT_FIX.split("{feedback}")
        turns += [msg("assistant", "faulty_program"),
                  msg("user", f"{sql_literal(before)} || coalesce(feedback, '') || {sql_literal(after)}")]
    turns.append(msg("assistant", "program"))
    keep = [e for c, e in zip(COLUMNS[task], columns) if c not in ("question", "program", "faulty_program", "feedback")]
    return [f"[{', '.join(turns)}] AS messages"] + keep


def fenced(text: str, info: str = "") -> str:
    """``text`` as a Markdown code block whose fence is longer than any run of backticks in it
    (so no line of the text can close it), control characters written out."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{visible(text).rstrip(chr(10))}\n{fence}"


def snapshot_preambles(store: Store, name: str, task: str) -> dict[str, str]:
    """``{preamble_id: text}`` of the preambles snapshot ``name``'s rows ran after."""
    return dict(store.con.execute(
        f"SELECT preamble_id, text FROM preambles WHERE preamble_id IN "
        f"(SELECT DISTINCT preamble_id FROM {TASK_TABLES[task]} WHERE name = ?) ORDER BY name, preamble_id",
        [name]).fetchall())


class ExportError(ValueError):
    pass


def _copy(store: Store, name: str, split: str, path: Path, fmt: str, task: str = "program",
          chat: bool = False, preambles: dict[str, str] | None = None) -> int:
    """COPY one split to a file, streaming: memory stays flat however many rows there are.

    Runs under :func:`_bounded` (one thread: parallel writers buffer batches to keep the
    insertion order) with 20k-row groups. No ORDER BY either (a sort holds every row): rows
    come out in insertion order, which `pad curate` made (split, program_id), so exports stay
    deterministic.
    """
    table = TASK_TABLES[task]
    n = store.scalar(f"SELECT count(*) FROM {table} WHERE name = ? AND split = ?", [name, split])
    opts = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 20000" if fmt == "parquet" else "FORMAT json"
    columns = _select(task, preambles or {}, chat)
    store.con.execute(f"COPY (SELECT {', '.join(columns)} FROM {table} WHERE name = {sql_literal(name)} "
                      f"AND split = {sql_literal(split)}) TO {sql_literal(str(path))} ({opts})")
    return n


EXPORT_MEMORY = "256MB"  # the export's DuckDB memory (or the store's budget, when lower): COPY needs a few blocks


@contextlib.contextmanager
def _bounded(store: Store):
    """One DuckDB thread and :data:`EXPORT_MEMORY` (``Store.capped``) while exporting, restored afterwards.

    DuckDB caches the blocks it scans up to its cap and its parallel writers buffer batches to
    keep insertion order: both would make the export's memory grow with the snapshot.
    """
    threads = store.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    store.con.execute("SET threads = 1")
    try:
        with store.capped(EXPORT_MEMORY):
            yield
    finally:
        store.con.execute(f"SET threads = {int(threads)}")


def dataset_card(store: Store, name: str, counts: dict[str, int], fmt: str, license: str) -> str:
    info = store.con.execute("SELECT params, content_hash, created_at, counts FROM curations WHERE name = ?",
                             [name]).fetchall()[0]
    params = json.loads(info[0])
    task = params.get("task", "program")
    table = TASK_TABLES[task]
    datasets = [r[0] for r in store.con.execute(
        f"SELECT DISTINCT dataset FROM {table} WHERE name = ? ORDER BY 1", [name]).fetchall()]
    teachers = store.con.execute(f"SELECT teacher, origin, count(*) FROM {table} WHERE name = ? "
                                 "GROUP BY ALL ORDER BY 3 DESC", [name]).fetchall()
    before = list(label_counts_with_unexecuted(store, datasets).items()) if datasets else []
    after = store.con.execute(f"SELECT label, count(*) FROM {table} WHERE name = ? GROUP BY 1 "
                              "ORDER BY 2 DESC", [name]).fetchall()
    run = store.con.execute("SELECT run_id, success, critical_failures, checks, created_at FROM check_runs "
                            "ORDER BY created_at DESC LIMIT 1").fetchall()
    sources = store.con.execute(
        f"SELECT coalesce(gold_source, 'none'), count(*), count(DISTINCT problem_id), min(agreement), "
        f"avg(agreement) FROM {table} WHERE name = ? GROUP BY 1 ORDER BY 1", [name]).fetchall()
    styles = dict(store.con.execute(f"SELECT {STYLE_SQL.format(p='program')}, count(*) FROM {table} "
                                    "WHERE name = ? GROUP BY 1", [name]).fetchall())
    needs = dict(store.con.execute(f"SELECT preamble_id, count(*) FROM {table} WHERE name = ? "
                                   "AND preamble_id IS NOT NULL GROUP BY 1", [name]).fetchall())
    lines = [
        "---", f"license: {license}", "task_categories:", "- text-generation", "tags:", "- pad",
        "- program-aided-distillation", "- synthetic", "- math-word-problems"]
    # where each split's files are, so the Hub (and datasets.load_dataset) reads the folder as it is;
    # save_to_disk (hf, chat) writes SPLIT/data-NNNNN-of-NNNNN.arrow
    paths = {"hf": "{split}/data-*.arrow", "chat": "{split}/data-*.arrow", "parquet": "{split}.parquet",
             "jsonl": "{split}.jsonl"}[fmt]
    files = [f"  - split: {split}\n    path: {paths.format(split=split)}" for split in SPLITS if counts.get(split)]
    if files:
        lines += ["configs:", "- config_name: default", "  data_files:", *files]
    lines += ["---", "", f"# {name}", "",
              ("Question -> Python program pairs" if task == "program" else
               "Self-refinement pairs (question + faulty program + execution feedback -> correct program)")
              + (" as chat conversations" if fmt == "chat" else "")
              + " curated with pad, a toolkit for Program-aided Distillation (PaD): every program was "
              "executed in pad's sandbox and labeled by its outcome against its problem's answer.", "",
              *_answers_section(sources), *_styles_section(styles),
              *_preambles_section(store, needs, sum(counts.values()), fmt),
              "## Provenance", "",
              f"- snapshot `{name}`, content hash `{info[1]}`, created {str(info[2])[:19]}",
              f"- source datasets: {', '.join(datasets) or '-'}",
              f"- curation parameters: `{json.dumps(params, sort_keys=True)}`", "",
              "## Teachers", "", "| teacher | origin | programs |", "|---|---|---|"]
    lines += [f"| {t} | {o} | {n} |" for t, o, n in teachers]
    lines += ["", "## Splits", "", "| split | programs |", "|---|---|"]
    lines += [f"| {s} | {counts.get(s, 0)} |" for s in SPLITS]
    lines += ["", "## Labels before and after filtering", "",
              "Before: every program of the source datasets (latest execution). After: this snapshot.", "",
              "| label | before | after |", "|---|---|---|"]
    after_d = dict(after)
    lines += [f"| {label} | {n} | {after_d.get(label, 0)} |" for label, n in before]
    lines += ["", "## Quality checks", ""]
    if run:
        rid, ok, crit, n, at = run[0]
        lines.append(f"Latest `pad check` run `{rid}` ({at}): {'passed' if ok else 'FAILED'}, "
                     f"{n} expectations, {crit} critical failures.")
        failed = store.con.execute("SELECT table_name, expectation, column_name, observed FROM check_results "
                                   "WHERE run_id = ? AND NOT success", [rid]).fetchall()
        if failed:
            lines += ["", "| table | expectation | column | observed |", "|---|---|---|---|"]
            lines += [f"| {t} | {e} | {c or ''} | {o} |" for t, e, c, o in failed]
    else:
        lines.append("No `pad check` run recorded for this store.")
    answer = ("`answer` (float or null) and `answer_text`: the problem's answer the label was judged against, "
              "`gold_source` (`gold`: the dataset's gold answer; `consensus`: the majority answer of the "
              "problem's programs (`pad vote`), not a verified fact; null: none), `agreement` (for a consensus: "
              "the share of the problem's numeric results that agreed with it)")
    preamble = ("`preamble` (the code the program ran after, or null: run `preamble + \"\\n\" + program`; see "
                "Preambles)")
    columns = (f"`question`, `program` (Python: {_styles_text(styles)}), {preamble}, {answer}, `problem_id`, "
               "`program_id`, "
               "`dataset`, `label`, `teacher`, `origin`, `verdict` (reviewers' verdict when the snapshot was made: "
               "accept, reject, needs-fix, or null).")
    if task == "refine":
        columns = ("`question`, `faulty_program`, `feedback` (what executing it said: error type, message and "
                   f"line, or `returned X`), `program` (the correct target; {_styles_text(styles)}), {preamble} "
                   f"(both programs ran after it), {answer}, "
                   "`problem_id`, `faulty_program_id`, `program_id`, `dataset`, `label` (of the faulty program), "
                   "`injection_kind` (for injected errors), `teacher`, `origin`, `verdict` (reviewers' verdict when "
                   "the snapshot was made, or null) (of the faulty program).")
    if fmt == "chat":
        columns = _chat_card(task, styles, bool(needs))
    lines += ["", "## Columns", "", columns, "", "## License", "",
              f"`{license}`. Check the licenses of the source datasets and the teacher's terms of use.", ""]
    return "\n".join(lines)


def _answers_section(sources: list[tuple]) -> list[str]:
    """The card's account of where the answers come from (rows of gold_source, rows, problems,
    min and mean agreement)."""
    what = {"gold": "the dataset's gold answer", "consensus": "a consensus (`pad vote`: the majority answer of "
            "the problem's programs; not a verified gold)", "none": "no answer"}
    lines = ["## Answers", "", "| answer | rows | problems | agreement (min / mean) |", "|---|---|---|---|"]
    for src, rows, problems, low, mean in sources:
        agreement = f"{low:.2f} / {mean:.2f}" if low is not None else "-"
        lines.append(f"| {what.get(src, src)} | {rows} | {problems} | {agreement} |")
    consensus = sum(r[1] for r in sources if r[0] == "consensus")
    if consensus:
        lines += ["", f"{consensus} rows are labeled against a consensus answer (`gold_source` = `consensus`): "
                      "the program agrees with the majority of its problem's programs, which can be wrong together; "
                      "filter on `gold_source` and `agreement` to keep only gold-verified rows."]
    return lines + [""]


def _styles_section(styles: dict[str, int]) -> list[str]:
    """The card's count of program styles (read from the programs: :data:`STYLE_SQL`)."""
    lines = ["## Program style", "", "| style | programs |", "|---|---|"]
    lines += [f"| {STYLE_NAMES[k]} | {styles[k]} |" for k in STYLE_NAMES if styles.get(k)]
    return lines + [""]


def _preambles_section(store: Store, needs: dict[str, int], rows: int, fmt: str) -> list[str]:
    """The card's account of the preambles (``needs``: rows per preamble id) the programs ran
    after, each shown whole: a program that uses its names runs only after it."""
    if not needs:
        return ["## Preambles", "", f"None: every program runs as it is ({rows} rows).", ""]
    texts = {pid: (n, text) for pid, n, text in store.con.execute(
        "SELECT preamble_id, name, text FROM preambles WHERE preamble_id = ANY(?) ORDER BY name, preamble_id",
        [list(needs)]).fetchall()}
    where = ("the system turn shows it (the assistant turn is the program alone) and the `preamble` column holds "
             "it" if fmt == "chat" else "the `preamble` column holds it")
    lines = ["## Preambles", "",
             f"{sum(needs.values())} of {rows} rows hold a program that ran after a preamble (code run before it "
             "in its namespace: imports and helpers the programs' source pipeline provided) and needs it to run: "
             f"execute `preamble + \"\\n\" + program`; {where}.", ""]
    for pid in sorted(needs, key=lambda i: (texts.get(i, ("", ""))[0] or "", i)):
        label, text = texts.get(pid, (None, None))
        lines += [f"### `{visible(label or '')}` (`{pid}`): {needs[pid]} rows", ""]
        lines += [fenced(text, "python") if text is not None else "(its text is not in the store)", ""]
    return lines


def _styles_text(styles: dict[str, int]) -> str:
    present = [k for k in STYLE_NAMES if styles.get(k)]
    if len(present) == 1:
        return {"function": "a `def solution(): ... return result` function",
                "script": "a script that assigns the answer to `ans`",
                "other": "a program"}[present[0]]
    return ", ".join(f"{styles[k]} {STYLE_NAMES[k]}" for k in present) or "none"


def _chat_card(task: str, styles: dict[str, int], preamble: bool = False) -> str:
    """The chat format's columns, and how to train on them with TRL."""
    present = [k for k in CHAT_SYSTEMS if styles.get(k)] or ["function"]
    if len(present) == 1:
        system = f"The system turn says: \"{CHAT_SYSTEMS[present[0]]}\""
    else:
        system = "The system turn asks for the style of the program in the last turn: " + "; ".join(
            f"for {STYLE_NAMES[k]} ({styles[k]}): \"{CHAT_SYSTEMS[k]}\"" for k in present)
    if preamble:
        system += (", and for a program that ran after a preamble (see Preambles) it goes on: "
                   f"\"{CHAT_PREAMBLE.strip()}\" and the preamble's code. The assistant turn is the program "
                   "alone, as written; to run it, or a student's answer to the same conversation, execute "
                   "`preamble + \"\\n\" + program`.")
    if task == "refine":
        turns = ("`system`, `user` (the question), `assistant` (the faulty program), `user` (what running it "
                 "gave, as in `pad`'s feedback, then \"Fix the program.\"), `assistant` (the correct program)")
        rest = ("`preamble`, `answer`, `answer_text`, `gold_source`, `agreement`, `problem_id`, `faulty_program_id`, "
                "`program_id`, `dataset`, `label` (of the faulty program), `injection_kind`, `teacher`, `origin`, "
                "`verdict`")
    else:
        turns = f"`system`, `user` (the question), `assistant` ({_styles_text(styles)})"
        rest = ("`preamble`, `answer`, `answer_text`, `gold_source`, `agreement`, `problem_id`, `program_id`, "
                "`dataset`, `label`, `teacher`, `origin`, `verdict`")
    code = ['from datasets import load_from_disk', 'from trl import SFTConfig, SFTTrainer', '',
            'dd = load_from_disk("path/to/this/folder")  # from the Hub: datasets.load_dataset("USER/REPO")']
    if task == "refine":
        code += ['# learn the fix only, not the faulty first answer: the last turn is the completion',
                 'dd = dd.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]},',
                 '            remove_columns=["messages"])']
    code += ['trainer = SFTTrainer(model="Qwen/Qwen2.5-0.5B-Instruct", train_dataset=dd["train"],',
             '                     eval_dataset=dd.get("validation"), args=SFTConfig(output_dir="student"))',
             'trainer.train()']
    loss = ("On `messages` SFTTrainer trains on every turn; `SFTConfig(assistant_only_loss=True)` limits the "
            "loss to the assistant turns where the model's chat template marks them (`{% generation %}`)."
            if task == "program" else
            "Trained on `messages` as they are, a student would also learn the faulty program of the first "
            "assistant turn: the prompt/completion split above makes SFTTrainer train on the fix only.")
    return "\n".join([f"`messages`: a list of `{{role, content}}` turns: {turns}. {system}", "",
                      f"Also: {rest}.", "", "## Training on it", "",
                      "A conversational dataset as TRL's `SFTTrainer` takes it (the model's tokenizer needs a "
                      "chat template; the other columns are left alone):", "", "```python", *code, "```", "",
                      loss])


MARKER = ".pad-export"  # written into every folder pad export makes: only such a folder is ever replaced


@contextlib.contextmanager
def _building(out: str | Path, overwrite: bool, what: str) -> Iterator[Path]:
    """A fresh temporary folder beside ``out`` to build the export in; swapped into place at the
    end, so a failed export leaves what was there before untouched (and no temporary folder).

    An existing ``out`` must be empty, or, with ``overwrite``, a folder an earlier pad export
    wrote (it holds the :data:`MARKER` file): pad never deletes a folder it did not write.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    replace = out.exists() and any(out.iterdir())
    if replace and not overwrite:
        raise ExportError(f"{out}: exists and is not empty (pass --overwrite to replace an earlier pad export)")
    if replace and not (out / MARKER).is_file():
        raise ExportError(f"{out}: not a folder pad export wrote (no {MARKER} file in it); refusing to replace "
                          "it: choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_folder(out.parent, f".{out.name}.pad-export-")
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"what": what, "written_by": "pad export"}) + "\n")
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.pad-old-", dir=out.parent))
            os.replace(out, old / "out")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _new_folder(parent: Path, prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` with the mode the umask gives (``tempfile.mkdtemp``
    makes it 700, which the export would keep once moved into place)."""
    while True:
        path = parent / f"{prefix}{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir(mode=0o777)
            return path
        except FileExistsError:
            continue


def export(store: Store, name: str, out: str | Path, fmt: str = "hf", license: str = "other",
           push_to_hub: str | None = None, overwrite: bool = False) -> dict:
    """Write snapshot ``name`` to ``out``; returns ``{"counts", "out", "pushed"}``.

    Built in a temporary folder beside ``out`` and moved into place when complete;
    ``overwrite`` replaces only a folder an earlier pad export wrote."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r}{did_you_mean(fmt, FORMATS)}; choose from "
                          f"{', '.join(FORMATS)}")
    if not store.con.execute("SELECT 1 FROM curations WHERE name = ?", [name]).fetchall():
        raise ExportError(f"no curated snapshot named {name!r} (see `pad curate --list`)")
    with _building(out, overwrite, f"snapshot {name} ({fmt})") as tmp:
        with _bounded(store):
            counts = _write_splits(store, name, tmp, fmt)
            card = dataset_card(store, name, counts, fmt, license)
        (tmp / "README.md").write_text(card)
    out = Path(out).expanduser()
    pushed = None
    if push_to_hub:
        pushed = _push(out, push_to_hub)
    return {"counts": counts, "out": str(out), "pushed": pushed}


def _write_splits(store: Store, name: str, out: Path, fmt: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    task = snapshot_task(store, name)
    chat = fmt == "chat"
    preambles = snapshot_preambles(store, name, task)
    if fmt in ("parquet", "jsonl"):
        for split in SPLITS:
            counts[split] = _copy(store, name, split, out / f"{split}.{fmt}", fmt, task, preambles=preambles)
    else:
        import datasets

        datasets.disable_progress_bars()
        with tempfile.TemporaryDirectory(prefix="pad-export-") as tmp:
            parts = {}
            for split in SPLITS:
                path = Path(tmp) / f"{split}.parquet"
                counts[split] = _copy(store, name, split, path, "parquet", task, chat=chat, preambles=preambles)
                if counts[split] == 0:  # from_parquet fails on an empty file (and an empty split cannot
                    continue            # be loaded back from disk): the DatasetDict leaves it out
                parts[split] = datasets.Dataset.from_parquet(str(path), cache_dir=str(Path(tmp) / "cache"),
                                                             keep_in_memory=False)
            datasets.DatasetDict(parts).save_to_disk(str(out))
    return counts


def export_parquet_shards(src: str | Path, out: str | Path, overwrite: bool = False,
                          push_to_hub: str | None = None) -> dict:
    """``pad export --from-parquet DIR``: Parquet shards straight into a ``DatasetDict``.

    Files are assigned to splits by name (``train*.parquet``, ``validation*``/``val*``,
    ``test*``; any other name is train). ``datasets`` converts them record batch by record
    batch into memory-mapped Arrow files, so no split is ever held in memory whole.
    """
    import datasets

    src = Path(src)
    files = sorted(src.glob("*.parquet")) if src.is_dir() else []
    if not files:
        raise ExportError(f"{src}: no .parquet files")
    by_split: dict[str, list[str]] = {}
    for f in files:
        split = next((s for s, prefixes in (("validation", ("validation", "val")), ("test", ("test",)))
                      if f.name.startswith(prefixes)), "train")
        by_split.setdefault(split, []).append(str(f))
    datasets.disable_progress_bars()
    with _building(out, overwrite, f"parquet shards {src}") as build, \
            tempfile.TemporaryDirectory(prefix="pad-export-") as tmp:
        try:
            parts = {split: datasets.Dataset.from_parquet(paths, cache_dir=str(Path(tmp) / "cache"),
                                                          keep_in_memory=False)
                     for split, paths in by_split.items()}
        except Exception as exc:  # noqa: BLE001 - schema mismatch between shards, a corrupt file: one line
            raise ExportError(f"{src}: cannot read the shards: {str(exc).splitlines()[0][:300]}") from None
        datasets.DatasetDict(parts).save_to_disk(str(build))
        counts = {split: len(d) for split, d in parts.items()}
    out = Path(out).expanduser()
    return {"counts": counts, "out": str(out), "pushed": _push(out, push_to_hub) if push_to_hub else None}


def _push(folder: Path, repo: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                                 commit_message="pad export", ignore_patterns=[MARKER])
    except Exception as exc:  # noqa: BLE001 - offline, auth, network: one clear line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"push to the Hugging Face Hub ({repo}) failed: {type(exc).__name__}: {first[:200]} "
                          f"(the export itself is complete in {folder})") from None
    return str(getattr(info, "commit_url", repo))
