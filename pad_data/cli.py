"""``pad``: the command line. Each command is a thin wrapper over the Python API.

Errors the user can fix (bad input, busy store, bad SQL) print one line ``error: ...`` and
exit 1; nothing already stored is touched by a failed command.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import decimal
import json
import math
import sys
from typing import Iterator, List, Optional

import duckdb
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import options as opt
from . import queries
from .labels import LABELS
from .options import check_numbers
from .store import Store, StoreError, resolve_path
from .teachers.base import TeacherError


class _LazyAPI:
    """:mod:`pad_data.api`, imported on first use: ``pad sql`` and ``pad stats`` (what one polls
    while a stage runs) start without loading the stages or pandas."""

    def __getattr__(self, name: str):
        from . import api as module

        return getattr(module, name)


api = _LazyAPI()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="pad: curate synthetic program datasets for Program-aided Distillation.")
# Piped output is not wrapped at 80 columns, so tables stay one row per line for grep/scripts.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
_state: dict = {"db": None}


@app.callback()
def _global(db: Optional[str] = typer.Option(None, "--db", envvar="PAD_DB",
                                             help="DuckDB store file [default: ./pad.duckdb]")) -> None:
    _state["db"] = db


@contextlib.contextmanager
def _cli_errors(interrupted: str = "interrupted: committed work is kept; rerun to continue") -> Iterator[None]:
    """Errors a user can fix (ValueError covers IngestError, CheckError, CurateError, ExportError)
    become one line ``error: ...`` and exit 1; Ctrl-C prints ``interrupted`` and exits 130."""
    try:
        yield
    except (ValueError, RuntimeError, StoreError, TeacherError, duckdb.Error) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err_console.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print(interrupted)
        raise typer.Exit(130) from None


def _store(read_only: bool = False) -> Store:
    if not read_only:  # a command that writes runs a stage: load it before taking the store, not while holding it
        import importlib

        importlib.import_module("pad_data.api")
    return Store(resolve_path(_state["db"]), read_only=read_only)


@contextlib.contextmanager
def _progress(description: str) -> Iterator:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                  console=err_console, transient=True) as prog:
        task = prog.add_task(description, total=None, rate="")
        start = [None]

        def update(done: int, total: int) -> None:
            import time

            now = time.perf_counter()
            start[0] = start[0] or now
            rate = done / (now - start[0]) if now > start[0] else 0
            prog.update(task, completed=done, total=total, rate=f"{rate:,.0f}/s" if rate else "")

        yield update


# ---------------------------------------------------------------------- commands
@app.command()
def ingest(source: str = typer.Argument(..., help="a .jsonl/.json/.parquet/.csv file, a dataset "
                                                  "directory, or a Hugging Face dataset name"),
           dataset: str = typer.Option(..., "--dataset", help="dataset name in the store"),
           split: Optional[str] = typer.Option(None, help="train/validation/test [default: from the file name]"),
           fmt: str = typer.Option("auto", "--format", help="auto|gsm8k|pal|jsonl"),
           question_field: Optional[str] = typer.Option(None, help="field holding the question"),
           answer_field: Optional[str] = typer.Option(None, help="field holding the gold answer"),
           config: Optional[str] = typer.Option(None, help="Hugging Face dataset config (e.g. main)"),
           limit: Optional[int] = typer.Option(None, help="read at most N records"),
           update: bool = typer.Option(False, "--update", help="replace the gold answer of problems already "
                                       "stored when the file's differs, and relabel their programs")) -> None:
    """Add problems (questions with gold answers) to the store."""
    with _cli_errors():
        check_numbers(("--limit", limit, opt.COUNT))
        with _store() as store:
            r = api.ingest(store, source, dataset, split=split, fmt=fmt, question_field=question_field,
                           answer_field=answer_field, limit=limit, config=config, update=update)
    console.print(f"{dataset}/{r['split']}: read {r['read']} problems, added {r['added']} "
                  f"({r['read'] - r['added']} already stored)" + _gold_changes(r), markup=False, highlight=False)
    _warn_gold(r)


def _gold_changes(r: dict) -> str:
    out = ""
    if r.get("updated"):
        out += f"; updated the gold answer of {r['updated']}, relabeled {r['relabeled']} executions"
    if r.get("differ"):
        out += (f"; {r['differ']} stored with a different gold answer were left as they are "
                "(pass --update to replace them)")
    return out


def _warn_gold(r: dict) -> None:
    if r.get("warning"):
        err_console.print(f"warning: {r['warning']}", markup=False, highlight=False, soft_wrap=True)


@app.command("import-programs")
def import_programs(file: str = typer.Argument(..., help="records with a question, a program and a gold answer"),
                    dataset: str = typer.Option(..., "--dataset"),
                    split: Optional[str] = typer.Option(None),
                    question_field: Optional[List[str]] = typer.Option(
                        None, help="field holding the question; several (repeat the option, or F1,F2) are "
                                   "joined with a space in that order (default: question or input)"),
                    program_field: Optional[str] = typer.Option(
                        None, help="field holding the program: a string, or a list of strings (one sample "
                                   "each) (default: program or code)"),
                    answer_field: Optional[str] = typer.Option(None, help="[default: answer or target]"),
                    teacher: Optional[str] = typer.Option(None, help="teacher/model name to record"),
                    limit: Optional[int] = typer.Option(None),
                    skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                                      help="import the valid records and list each skipped one "
                                                           "on stderr (default: the first bad record is an "
                                                           "error and nothing is written)"),
                    update: bool = typer.Option(False, "--update", help="replace the gold answer of problems "
                                                "already stored when the file's differs, and relabel their "
                                                "programs")) -> None:
    """Import programs generated elsewhere (fences and prose around the code are stripped)."""
    fields = [f.strip() for value in question_field or [] for f in value.split(",") if f.strip()]
    with _cli_errors():
        check_numbers(("--limit", limit, opt.COUNT))
        with _store() as store:
            r = api.import_programs(store, file, dataset, split=split, question_field=fields or None,
                                    program_field=program_field, answer_field=answer_field,
                                    teacher=teacher, limit=limit, skip_invalid=skip_invalid, update=update)
    for message in r["skipped_records"]:
        err_console.print(f"skipped {message}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"{dataset}: read {r['read']} programs from {r['records']} records, added {r['added']} "
                  f"(new problems: {r['problems_added']})"
                  + (f", skipped {r['skipped']} invalid records" if skip_invalid else "") + _gold_changes(r),
                  highlight=False, markup=False)
    _warn_gold(r)


@app.command()
def execute(dataset: Optional[str] = typer.Option(None, help="only this dataset"),
            timeout: float = typer.Option(2.0, help="seconds per program"),
            memory_mb: int = typer.Option(512, help="memory a program may use (MiB)"),
            workers: int = typer.Option(2, help="sandbox worker processes"),
            rerun: bool = typer.Option(False, help="execute again programs that already have a result"),
            limit: Optional[int] = typer.Option(None, help="at most N programs"),
            isolation: str = typer.Option("auto", help="auto|bwrap|unshare|process"),
            origin: Optional[str] = typer.Option(None, help="only programs of this origin (teacher, injected, ...)"),
            engine: str = typer.Option("local", help="local (this machine) | ray (Ray Data over Parquet shards)"),
            address: Optional[str] = typer.Option(None, help="ray: cluster address [default: start a local Ray]"),
            shards: Optional[str] = typer.Option(None, help="ray: shard folder, shared by all nodes "
                                                            "[default: beside the store, STORE.shards/]"),
            shard_size: int = typer.Option(5000, help="ray: programs per shard"),
            entry: Optional[str] = typer.Option(None, help="function to call or variable to read for the "
                                                           "answer [default: solution(), else ans]")) -> None:
    """Run programs that have no execution yet in the sandbox, and label them."""
    from .sandbox.isolation import WEAK_WARNING, resolve

    with _cli_errors():
        check_numbers(("--timeout", timeout, opt.TIMEOUT), ("--memory-mb", memory_mb, opt.MEMORY_MB),
                      ("--workers", workers, opt.WORKERS), ("--limit", limit, opt.COUNT),
                      ("--shard-size", shard_size, opt.COUNT))
        if origin is not None:
            opt.check_names("--origin", [origin], api.ORIGINS, "origin")
        level = resolve(isolation)
    warning = None if level == "bwrap" else WEAK_WARNING.format(level=level)
    if warning:
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    with _cli_errors(), _store() as store:
        if dataset is not None:
            opt.check_names("--dataset", [dataset], api.datasets(store), "dataset")
        if engine not in ("local", "ray"):
            raise ValueError(f"unknown --engine {engine!r}; choose local or ray")
        r = _run_execute(store, engine, dataset=dataset, timeout=timeout, memory_mb=memory_mb, workers=workers,
                         rerun=rerun, limit=limit, level=level, origin=origin, entry=entry, shards=shards,
                         address=address, shard_size=shard_size)
    _print_labels(r["labels"], title=f"executed {r['executed']} programs in {r['seconds']:.2f} s "
                                     f"({r['programs_per_s']:,.0f}/s, {r['executor']})")
    if warning:
        err_console.print(f"[yellow]warning:[/yellow] these labels were made with isolation {level!r}, "
                          "below the OS sandbox (see README, threat model)", highlight=False, soft_wrap=True)


def _run_execute(store: Store, engine: str, dataset, timeout, memory_mb, workers, rerun, limit, level, origin,
                 entry, shards, address, shard_size) -> dict:
    with _progress("executing") as progress:
        if engine == "ray":
            if rerun:
                raise ValueError("--rerun runs on --engine local only")
            from .ray_engine import execute_ray

            r = execute_ray(store, shards=shards, address=address, shard_size=shard_size, dataset=dataset,
                            origin=origin, limit=limit, timeout=timeout, memory_mb=memory_mb,
                            isolation_level=level, entry=entry, progress=progress)
        elif engine == "local":
            r = api.execute(store, dataset=dataset, timeout=timeout, memory_mb=memory_mb, workers=workers,
                            rerun=rerun, limit=limit, isolation_level=level, origin=origin, entry=entry,
                            progress=progress)
    return r


@app.command()
def generate(dataset: str = typer.Option(..., "--dataset", help="problems to write programs for"),
             model: str = typer.Option(..., "--model", help="model name (openai) or path/Hub name (hf)"),
             base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server, e.g. "
                                                    "http://localhost:8000/v1 [env OPENAI_BASE_URL]"),
             backend: str = typer.Option("openai", help="openai (any compatible server) | hf (local transformers)"),
             samples: int = typer.Option(4, help="programs per question"),
             temperature: float = typer.Option(0.7),
             max_tokens: int = typer.Option(512),
             concurrency: int = typer.Option(16, help="requests in flight"),
             max_retries: int = typer.Option(6, help="retries per request on 429/5xx/timeouts/bad responses"),
             timeout: float = typer.Option(120.0, help="seconds per request"),
             prompt: Optional[str] = typer.Option(None, help="arithmetic | coin_flip | last_letters | a file with {question}"),
             split: Optional[str] = typer.Option(None),
             limit: Optional[int] = typer.Option(None, help="at most N questions"),
             price_in: Optional[float] = typer.Option(None, help="USD per 1M prompt tokens (cost estimate)"),
             price_out: Optional[float] = typer.Option(None, help="USD per 1M completion tokens"),
             engine: str = typer.Option("local", help="local | ray (Ray Data tasks over Parquet shards)"),
             address: Optional[str] = typer.Option(None, help="ray: cluster address [default: start a local Ray]"),
             shards: Optional[str] = typer.Option(None, help="ray: shard folder shared by all nodes "
                                                            "[default: STORE.shards/]"),
             shard_size: int = typer.Option(500, help="ray: problems per shard")) -> None:
    """Ask a teacher LLM for programs (cached, resumable: a rerun only asks for what is missing).

    The API key comes from OPENAI_API_KEY.
    """
    from .generate import generate as run_generate, make_teacher

    with _cli_errors():
        check_numbers(("--samples", samples, opt.SAMPLES), ("--temperature", temperature, opt.TEMPERATURE),
                      ("--max-tokens", max_tokens, opt.MAX_TOKENS), ("--concurrency", concurrency, opt.CONCURRENCY),
                      ("--max-retries", max_retries, opt.RETRIES), ("--timeout", timeout, opt.REQUEST_TIMEOUT),
                      ("--limit", limit, opt.COUNT), ("--price-in", price_in, opt.PRICE),
                      ("--price-out", price_out, opt.PRICE), ("--shard-size", shard_size, opt.COUNT))
    prices = (price_in or 0.0, price_out or 0.0) if (price_in is not None or price_out is not None) else None
    if engine == "ray":
        from .ray_engine import generate_ray

        with _cli_errors(), _store() as store, _progress("generating") as progress:
            r = generate_ray(store, backend, model, dataset, base_url=base_url, samples=samples,
                             temperature=temperature, max_tokens=max_tokens, concurrency=concurrency, prompt=prompt,
                             split=split, limit=limit, prices=prices, max_retries=max_retries, timeout=timeout,
                             shards=shards, address=address, shard_size=shard_size, progress=progress)
        console.print(f"{r['teacher']} ({r['prompt']} prompt, ray, {r['shards']} shards): {r['added']} programs "
                      f"added, {r['cached']} already stored, {r['failed']} failed (retried next run), "
                      f"{r['seconds']:.1f} s ({r['programs_per_s']:,.1f} programs/s)")
        if r["failed"]:
            raise typer.Exit(3)
        return
    with _cli_errors(), _store() as store, _progress("generating") as progress:
        if engine != "local":
            raise ValueError(f"unknown --engine {engine!r}; choose local or ray")
        teacher = make_teacher(backend, model, base_url=base_url, max_retries=max_retries, timeout=timeout)
        r = run_generate(store, teacher, dataset, samples=samples, temperature=temperature,
                         max_tokens=max_tokens, concurrency=concurrency, prompt=prompt, split=split,
                         limit=limit, prices=prices, progress=progress)
    console.print(f"{r['teacher']} ({r['prompt']} prompt): {r['added']} programs added, "
                  f"{r['cached']} already stored, {r['failed']} failed (retried next run), "
                  f"{r['requests']} requests, {r['prompt_tokens'] + r['completion_tokens']:,} tokens, "
                  f"{r['seconds']:.1f} s ({r['programs_per_s']:,.1f} programs/s)")
    if r["failed"]:
        err_console.print(f"last error: {r['last_error']}", highlight=False, soft_wrap=True)
        raise typer.Exit(3)


@app.command()
def sql(query: str = typer.Argument(..., help="SQL over problems, programs, executions, labeled_programs"),
        fmt: str = typer.Option("table", "--format", help="table|csv|json"),
        max_rows: int = typer.Option(200, help="rows shown in table format"),
        read_files: bool = typer.Option(False, "--read-files", help="let the query read files (read_csv, "
                                        "read_parquet, 'file.csv'...); writing stays impossible")) -> None:
    """Run a read-only SQL query against the store (no writes anywhere; files only with --read-files)."""
    with _cli_errors():
        if fmt not in ("table", "csv", "json"):
            raise ValueError(f"--format: unknown format {fmt!r}; choose table, csv or json")
        check_numbers(("--max-rows", max_rows, opt.COUNT))
        with _store(read_only=True) as store:
            columns, rows = store.read_rows(query, read_files=read_files)
    rows = [[_plain(v) for v in row] for row in rows]
    if fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(columns)
        out.writerows([["" if v is None else v for v in row] for row in rows])
    elif fmt == "json":
        sys.stdout.write(json.dumps([dict(zip(columns, row)) for row in rows], ensure_ascii=False,
                                    default=_json_value) + "\n")
    else:
        table = _table(*[str(c) for c in columns])
        for row in rows[:max_rows]:
            _add_row(table, *["" if v is None else str(v) for v in row])
        console.print(table)
        if len(rows) > max_rows:
            console.print(f"... {len(rows) - max_rows} more rows (use --format csv or json)")


def _plain(v: object) -> object:
    """A value as `pad sql` prints it: NaN is missing, a decimal a float."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def _json_value(v: object) -> object:
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return str(v)


def _table(*columns: str, title: str | None = None) -> Table:
    """A table whose headers and cells are shown verbatim (never read as Rich markup or emoji codes)."""
    table = Table(title=Text(title) if title else None)
    for c in columns:
        table.add_column(Text(c), overflow="fold")
    return table


def _add_row(table: Table, *cells: object, style: str | None = None) -> None:
    table.add_row(*[c if isinstance(c, Text) else Text(str(c)) for c in cells], style=style)


@app.command()
def stats() -> None:
    """Counts of problems and programs per dataset, and labels."""
    with _cli_errors(), _store(read_only=True) as store:
        s = queries.stats(store)
    table = _table("dataset", "problems", "with gold", "programs", "executed",
                   title=f"{resolve_path(_state['db'])}")
    for row in s["rows"]:
        _add_row(table, *row[:5])
    console.print(table)
    by_label = _table("dataset", "label", "programs", "share", title="labels (latest execution)")
    for row in s["rows"]:
        executed = row[4] or 1
        for label, n in zip(s["labels"], row[5:]):
            if n:
                _add_row(by_label, row[0], label, n, f"{100 * n / executed:.1f}%")
    console.print(by_label)
    if s["teachers"]:
        teachers = _table("teacher", "origin", "programs", "prompt tokens", "completion tokens",
                          "est. cost (USD)", "failed, to retry", title="teachers")
        for t in s["teachers"]:
            _add_row(teachers, t[0], t[1], t[2], f"{t[3]:,.0f}", f"{t[4]:,.0f}",
                     "" if t[5] is None else f"{t[5]:.4f}", t[6])
        console.print(teachers)


@app.command()
def check(reference: Optional[str] = typer.Option(None, help="benchmark file whose questions must not be in "
                                                             "a train split (e.g. gsm8k/test.jsonl)"),
          expectations: Optional[str] = typer.Option(None, help="YAML/JSON file with more expectations"),
          docs: Optional[str] = typer.Option(None, help="write Great Expectations Data Docs HTML here"),
          min_correct: float = typer.Option(0.05, help="warning when the share of correct programs is lower"),
          contamination: float = typer.Option(0.8, help="max share of a train question's words covered by "
                                                        "reference 8-grams")) -> None:
    """Run the data quality suite (Great Expectations); exit 1 when a critical check fails."""
    from .check import Bounds, run_checks

    with _cli_errors(), _store() as store:
        check_numbers(("--min-correct", min_correct, opt.FRACTION),
                      ("--contamination", contamination, opt.FRACTION_OPEN))
        r = run_checks(store, reference=reference, expectations_file=expectations, docs_dir=docs,
                       bounds=Bounds(min_correct=min_correct, contamination=contamination))
    table = Table("table", "expectation", "column", "observed", "result", title=f"pad check {r['run_id']}")
    for res in r["results"]:
        verdict = "[green]pass[/green]" if res.success else ("[red]FAIL[/red]" if res.check.critical
                                                             else "[yellow]warn[/yellow]")
        table.add_row(res.check.table, res.check.expectation.removeprefix("expect_"),
                      str(res.check.kwargs.get("column", "")), res.observed, verdict)
    console.print(table)
    if r["docs"]:
        console.print(f"Data Docs: {r['docs']}")
    if not r["success"]:
        err_console.print(f"[red]error:[/red] {r['critical_failures']} critical check(s) failed")
        raise typer.Exit(1)


@app.command("inject-errors")
def inject_errors(per_program: int = typer.Option(2, help="variants per correct program"),
                  kinds: Optional[str] = typer.Option(None, help="comma-separated kinds [default: all; see --list]"),
                  seed: int = typer.Option(0),
                  dataset: Optional[str] = typer.Option(None, help="only programs of this dataset"),
                  limit: Optional[int] = typer.Option(None, help="at most N source programs"),
                  timeout: float = typer.Option(2.0, help="seconds per program when executing the variants"),
                  workers: int = typer.Option(2, help="sandbox worker processes"),
                  list_: bool = typer.Option(False, "--list", help="list the injection kinds")) -> None:
    """Make faulty variants of correct programs (AST edits), then execute and label them."""
    from .inject import KINDS, inject_errors as run_inject

    if list_:
        table = Table("kind", "what it does")
        for kind, what in KINDS.items():
            table.add_row(kind, what)
        console.print(table)
        return
    with _cli_errors():
        check_numbers(("--per-program", per_program, opt.SAMPLES), ("--seed", seed, opt.SEED),
                      ("--limit", limit, opt.COUNT), ("--timeout", timeout, opt.TIMEOUT),
                      ("--workers", workers, opt.WORKERS))
    with _cli_errors(), _store() as store:
        if dataset is not None:
            opt.check_names("--dataset", [dataset], api.datasets(store), "dataset")
        with _progress("injecting") as progress:
            r = run_inject(store, per_program=per_program, kinds=_csv(kinds), seed=seed, dataset=dataset, limit=limit,
                           timeout=timeout, workers=workers, progress=progress)
    console.print(f"{r['sources']} correct programs -> {r['variants']} variants, {r['added']} new "
                  f"({r['variants'] - r['added']} already stored); executed {r['executed']}")
    table = Table("injection kind", "variants", "loud (raise)", "silent (wrong answer)", "unchanged (correct)",
                  "not executed", title="every injected program in the store (view injection_outcomes)")
    for row in r["outcomes"].itertuples(index=False):
        table.add_row(*[str(v) for v in row])
    console.print(table)


def _csv(value: Optional[str]) -> Optional[list[str]]:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


@app.command()
def curate(name: Optional[str] = typer.Argument(None, help="snapshot name (immutable)"),
           task: str = typer.Option("program", help="program: question -> program; refine: question + faulty "
                                                    "program + feedback -> correct program"),
           labels_: Optional[str] = typer.Option(None, "--labels", help="comma-separated labels to keep "
                                                 "[default: correct; for refine, every faulty label]"),
           siblings: bool = typer.Option(False, help="refine: also pair faulty programs with a correct sibling"),
           datasets: Optional[str] = typer.Option(None, help="comma-separated datasets [default: all]"),
           origins: Optional[str] = typer.Option(None, help="comma-separated origins [default: teacher,import,"
                                                  "human; for refine, all] (injected only when named)"),
           dedup: str = typer.Option("ast", help="none | exact | ast"),
           max_per_problem: int = typer.Option(4, help="at most K programs per problem (shortest first)"),
           validation: float = typer.Option(0.05, help="share of train problems for validation"),
           test: float = typer.Option(0.05, help="share of train problems for test"),
           seed: int = typer.Option(0),
           list_: bool = typer.Option(False, "--list", help="list snapshots")) -> None:
    """Build a named, immutable, reproducible snapshot of train/validation/test splits."""
    from .curate import CurateParams, curate as run_curate, list_curations

    with _cli_errors(), _store(read_only=list_) as store:
        if list_:
            df = list_curations(store)
            table = _table("name", "hash", "created", "counts")
            for row in df.itertuples(index=False):
                _add_row(table, row.name, row.content_hash, row.created_at, row.counts)
            console.print(table)
            return
        if not name:
            raise ValueError("give a snapshot NAME (or --list)")
        params = CurateParams(labels=_csv(labels_), datasets=_csv(datasets), origins=_csv(origins), dedup=dedup,
                              max_per_problem=max_per_problem, validation_fraction=validation,
                              test_fraction=test, seed=seed, task=task, siblings=siblings)
        r = run_curate(store, name, params)
    state = "created" if r["created"] else "unchanged (same parameters and data)"
    what = "refinement pairs" if task == "refine" else "programs"
    console.print(f"snapshot {r['name']} {state}: hash {r['content_hash']}, {r['programs']} {what} over "
                  f"{r['problems']} problems, splits {r['splits']}", markup=False, highlight=False)


@app.command()
def export(name: Optional[str] = typer.Argument(None, help="curated snapshot"),
           out: str = typer.Option(..., "--out", help="output directory"),
           fmt: str = typer.Option("hf", "--format", help="hf (DatasetDict.save_to_disk) | parquet | jsonl"),
           license_: str = typer.Option("other", "--license", help="license field of the dataset card"),
           push_to_hub: Optional[str] = typer.Option(None, help="also upload to this Hub dataset repo"),
           overwrite: bool = typer.Option(False, help="replace --out when an earlier pad export wrote it "
                                                      "(it holds a .pad-export file); other folders are never "
                                                      "deleted"),
           from_parquet: Optional[str] = typer.Option(None, help="instead of a snapshot: a folder of Parquet "
                                                      "shards (train*.parquet, validation*, test*) to stream "
                                                      "into a Hugging Face dataset")) -> None:
    """Export a curated snapshot with a generated dataset card (or Parquet shards as an HF dataset)."""
    from .export import export as run_export, export_parquet_shards

    with _cli_errors():
        if from_parquet:
            if name or fmt != "hf":
                raise ValueError("--from-parquet takes no snapshot NAME and writes --format hf")
            r = export_parquet_shards(from_parquet, out, overwrite=overwrite, push_to_hub=push_to_hub)
            console.print(f"exported {from_parquet} to {r['out']} (hf): {r['counts']}"
                          + (f"; pushed {r['pushed']}" if r["pushed"] else ""))
            return
        if not name:
            raise ValueError("give a snapshot NAME (or --from-parquet DIR)")
        with _store() as store:
            r = run_export(store, name, out, fmt=fmt, license=license_, push_to_hub=push_to_hub,
                           overwrite=overwrite)
    console.print(f"exported {name} to {r['out']} ({fmt}): {r['counts']}"
                  + (f"; pushed {r['pushed']}" if r["pushed"] else ""))


@app.command()
def review(port: int = typer.Option(8501, help="port to serve on"),
           host: str = typer.Option("127.0.0.1", help="address to bind (127.0.0.1: this machine only)")) -> None:
    """Open the review app (Streamlit) on the store: find, read, annotate and fix faulty programs."""
    import os
    import subprocess
    from pathlib import Path

    with _cli_errors():
        check_numbers(("--port", port, opt.PORT))
    app_file = Path(__file__).resolve().parents[1] / "apps" / "review.py"
    if not app_file.exists():
        err_console.print(f"[red]error:[/red] {app_file}: the review app ships with pad's source tree")
        raise typer.Exit(1)
    db = resolve_path(_state["db"]).resolve()
    if not db.exists():
        err_console.print(f"[red]error:[/red] {db}: no such store (run `pad run` first)")
        raise typer.Exit(1)
    console.print(f"pad review on http://{host}:{port} (store {db}); Ctrl-C to stop")
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.port", str(port),
           "--server.address", host, "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--", "--db", str(db)]
    try:
        raise typer.Exit(subprocess.call(cmd, env=dict(os.environ, PAD_DB=str(db))))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def labels() -> None:
    """The label vocabulary."""
    table = Table("label", "meaning")
    for k, v in LABELS.items():
        table.add_row(k, v)
    console.print(table)


@app.command()
def run(source: Optional[str] = typer.Option(None, help="ingest this problem file instead of the embedded set"),
        dataset: Optional[str] = typer.Option(None, help="dataset name for --source"),
        programs: Optional[str] = typer.Option(None, help="import programs from this file"),
        model: Optional[str] = typer.Option(None, help="a real teacher instead of the offline one "
                                                       "(see `pad generate`; key from OPENAI_API_KEY)"),
        base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server for --model"),
        backend: str = typer.Option("openai", help="openai | hf (with --model)"),
        samples: int = typer.Option(4, help="programs per problem"),
        seed: int = typer.Option(0),
        timeout: float = typer.Option(2.0),
        memory_mb: int = typer.Option(512),
        workers: int = typer.Option(2)) -> None:
    """The whole pipeline: problems -> programs -> sandboxed execution -> labels -> summary.

    With no options: pad's embedded problems and the offline template teacher (no network).
    `--source FILE --dataset NAME` uses your problems; `--model M [--base-url URL]` a real teacher;
    `--programs FILE` programs made elsewhere.
    """
    with _cli_errors():
        check_numbers(("--samples", samples, opt.SAMPLES), ("--seed", seed, opt.SEED),
                      ("--timeout", timeout, opt.TIMEOUT), ("--memory-mb", memory_mb, opt.MEMORY_MB),
                      ("--workers", workers, opt.WORKERS))
    with _cli_errors(), _store() as store, _progress("executing") as progress:
        steps = api.default_steps(source=source, dataset=dataset, programs=programs, samples=samples,
                                  seed=seed, timeout=timeout, memory_mb=memory_mb, workers=workers,
                                  progress=progress, model=model, base_url=base_url, backend=backend)

        def report(step, result, seconds):
            brief = {k: v for k, v in result.items() if k not in ("labels", "pool")}
            console.print(f"[green]✓[/green] {step.name} ({seconds:.2f} s): {brief}", highlight=False)

        results = api.run_pipeline(store, steps, on_step=report)
        summary = api.label_counts(store)
    exec_result = dict(results)[steps[-1].name]
    _print_labels(summary, title=f"labels in {store.path} (this run executed "
                                 f"{exec_result['executed']} programs at "
                                 f"{exec_result['programs_per_s']:,.0f}/s)")


def _print_labels(counts: dict, title: str) -> None:
    total = sum(counts.values()) or 1
    table = Table("label", "programs", "share", title=title)
    for label in LABELS:
        if counts.get(label):
            table.add_row(label, str(counts[label]), f"{100 * counts[label] / total:.1f}%")
    table.add_row("total", str(sum(counts.values())), "", style="bold")
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
