"""``pad``'s commands (typer), each a thin wrapper over the Python API.

Stages and engines are reached only through :mod:`pad_data.api`; besides it the commands check
their options (:mod:`pad_data.rules.options`), open the store, print through
:mod:`pad_data.store.render`, and check what must fail before a store is opened (the sandbox's
isolation, a teacher's API key). Errors the user can fix (bad input, busy store, bad SQL) print
one line ``error: ...`` and exit 1; nothing already stored is touched by a failed command.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional

import duckdb
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pad_data.rules import options as opt
from pad_data.rules.labels import LABELS
from pad_data.rules.options import check_numbers
from pad_data.store import SCHEMA_VERSION, Store, StoreError, queries, resolve_path
from pad_data.store.render import (add_row, check_sql_options, error_line, memory_option, plain_table,
                                   print_rows, print_stats, say, sql_params)
from pad_data.teachers.base import TeacherError

if TYPE_CHECKING:
    import pandas as pd


class _LazyAPI:
    """:mod:`pad_data.api`, imported on first use: ``pad sql`` and ``pad stats`` (what one polls
    while a stage runs) start without loading the stages or pandas."""

    def __getattr__(self, name: str):
        from pad_data import api as module

        return getattr(module, name)


api = _LazyAPI()

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="pad: curate synthetic program datasets for Program-aided Distillation.")
# Piped output is not wrapped at 80 columns, so tables stay one row per line for grep/scripts.
# No emoji codes: `:smile:` in a name or question is shown as written (see say).
console = Console(width=None if sys.stdout.isatty() else 200, emoji=False)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200, emoji=False)
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
        say(err_console, ("error:", "red"), f" {error_line(exc)}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print(interrupted)
        raise typer.Exit(130) from None


def plural(n: int, word: str) -> str:
    """``1 problem``, ``2 problems``, ``1,000 programs``."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _warn(message: str) -> None:
    say(err_console, ("warning:", "yellow"), f" {message}", soft_wrap=True)


def _store(read_only: bool = False, memory: Optional[str] = None) -> Store:
    path = resolve_path(_state["db"])
    # a command that writes runs a stage: the API (and the stages) load here, not while the store is held
    torn = 0 if read_only else api.torn_journal_bytes(path)
    store = Store(path, read_only=read_only, memory=memory)
    if store.recovered:
        say(err_console, f"stored {store.recovered} programs that waited in {store.journal_path} "
                          "(from a `pad generate` whose commit failed)", soft_wrap=True)
    if torn and not store.journal_path.exists():
        _warn(f"the last line of {store.journal_path} was cut short ({plural(torn, 'byte')}, left by a run "
              "stopped while writing it): the responses in it are lost and the next `pad generate` asks "
              "for them again")
    return store


PROGRESS_ENV = "PAD_PROGRESS_INTERVAL"
_PROGRESS_INTERVAL = opt.Range(0, 86400, unit="seconds")


def progress_interval() -> float:
    """Seconds between plain progress lines: ``PAD_PROGRESS_INTERVAL``, 10 by default."""
    import os

    text = os.environ.get(PROGRESS_ENV, "").strip()
    if not text:
        return 10.0
    try:
        value = float(text)
    except ValueError:
        value = text  # reported as given
    check_numbers((PROGRESS_ENV, value, _PROGRESS_INTERVAL))
    return float(value)


def _duration(seconds: float) -> str:
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class PlainProgress:
    """Progress as plain lines for a log file or CI, where a live bar would print nothing: at most one line
    every ``interval`` seconds (``executing: 12,000/100,000 (12%), 3,400/s, ~26 s left``), and a last one
    from :meth:`finish`. Callable as a stage's ``progress(done, total)``; thread-safe."""

    def __init__(self, description: str, interval: float | None = None, stream: Any = None,
                 clock: Any = None) -> None:
        import threading
        import time

        self.description = description
        self.interval = progress_interval() if interval is None else interval
        self.stream = stream
        self.clock = clock or time.monotonic
        self.started = self.clock()
        self._lock = threading.Lock()
        self._first: tuple[float, int] | None = None  # (time, done) of the first report: the rate's origin
        self._last: tuple[int, int | None, str] | None = None
        self._printed = float("-inf")

    def _rate(self, now: float, done: int) -> float | None:
        if self._first is None or now <= self._first[0] or done <= self._first[1]:
            return None
        return (done - self._first[1]) / (now - self._first[0])

    def _line(self, now: float, done: int, total: int | None, info: str, final: bool) -> str:
        parts = [f"{done:,}/{total:,} ({100 * done / total:.0f}%)" if total else f"{done:,}"]
        rate = self._rate(now, done)
        if rate:
            parts.append(f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s")
        if final:
            parts.append(f"done in {_duration(now - self.started)}")
        elif rate and total and total > done:
            parts.append(f"~{_duration((total - done) / rate)} left")
        if info:
            parts.append(info)
        return f"{self.description}: " + ", ".join(parts)

    def _write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def __call__(self, done: int, total: int | None = None, info: str = "") -> None:
        with self._lock:
            now = self.clock()
            if self._first is None:
                self._first = (now, done)
            self._last = (done, total, info)
            if now - self._printed >= self.interval:
                self._printed = now
                self._write(self._line(now, done, total, info, final=False))

    def finish(self) -> None:
        """The last line (if anything was reported): where the work ended, and how long it took."""
        with self._lock:
            if self._last is not None:
                self._write(self._line(self.clock(), *self._last, final=True))
                self._last = None


@contextlib.contextmanager
def _progress(description: str) -> Iterator[Callable[..., None]]:
    """``progress(done, total, info="")`` for a long stage: a live bar on a terminal, plain lines
    (:class:`PlainProgress`) when stderr is a file or a pipe."""
    if not err_console.is_interactive:
        plain = PlainProgress(description)
        yield plain
        plain.finish()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}", markup=False), TimeRemainingColumn(),
                  console=err_console, transient=True) as prog:
        task = prog.add_task(description, total=None, rate="")
        start = [None]

        def update(done: int, total: int | None = None, info: str = "") -> None:
            import time

            now = time.perf_counter()
            start[0] = start[0] or now
            rate = done / (now - start[0]) if now > start[0] else 0
            shown = ", ".join(x for x in (f"{rate:,.0f}/s" if rate else "", info) if x)
            prog.update(task, completed=done, total=total, rate=shown)

        yield update


def _engine_option() -> Any:
    return typer.Option("local", help="local (this machine) | ray (Ray Data tasks over Parquet shards)")


def _address_option() -> Any:
    return typer.Option(None, help="ray: cluster address [default: start a local Ray]")


def _shards_option() -> Any:
    return typer.Option(None, help="ray: shard folder, shared by all nodes [default: beside the store, STORE.shards/]")


def _shard_size_option(default: int, unit: str) -> Any:
    return typer.Option(default, help=f"ray: {unit} per shard")


# ---------------------------------------------------------------------- commands
OPTIONS_HELP = ("field holding multiple-choice options ([\"A)21\", \"B)21.5\"] or \"a ) 21 , b ) 21.5\"): a gold "
                "letter becomes its option's value [default: options]")
PREAMBLE_HELP = ("a Python file run before each program, in its namespace and sandbox (imports and helpers "
                 "the programs' own runner gave them); stored with the programs, its hash in their ids")


@app.command()
def ingest(source: str = typer.Argument(..., help="a .jsonl/.json/.parquet/.csv file, a dataset "
                                                  "directory, or a Hugging Face dataset name"),
           dataset: str = typer.Option(..., "--dataset", help="dataset name in the store"),
           split: Optional[str] = typer.Option(None, help="train/validation/test [default: from the file name]"),
           fmt: str = typer.Option("auto", "--format", help="auto|gsm8k|pal|jsonl"),
           question_field: Optional[str] = typer.Option(None, help="field holding the question (a.b: field b "
                                                        "of object a)"),
           answer_field: Optional[str] = typer.Option(None, help="field holding the gold answer (a.b: field b "
                                                      "of object a)"),
           no_gold: bool = typer.Option(False, "--no-gold", help="the problems have no gold answer (pad vote "
                                        "can give them a consensus)"),
           options_field: Optional[str] = typer.Option(None, help=OPTIONS_HELP),
           config: Optional[str] = typer.Option(None, help="Hugging Face dataset config (e.g. main)"),
           limit: Optional[int] = typer.Option(None, help="read at most N records"),
           update: bool = typer.Option(False, "--update", help="replace the gold answer of problems already "
                                       "stored when the file's differs, and relabel their programs"),
           memory_limit: Optional[str] = memory_option()) -> None:
    """Add problems (questions with gold answers) to the store."""
    with _cli_errors():
        check_numbers(("--limit", limit, opt.COUNT))
        opt.check_split(split)
        with _store(memory=memory_limit) as store:
            r = api.ingest(store, source, dataset, split=split, fmt=fmt, question_field=question_field,
                           answer_field=answer_field, limit=limit, config=config, update=update, no_gold=no_gold,
                           options_field=options_field)
    repeated = f", {r['repeated']:,} repeated within the file" if r["repeated"] else ""
    say(console, f"{dataset}/{r['split']}: read {plural(r['read'], 'problem')}, added {r['added']:,} "
                  f"({r['stored']:,} already stored{repeated})" + _gold_changes(r))
    _warn_gold(r)


def _gold_changes(r: dict) -> str:
    out = ""
    if r.get("updated"):
        out += f"; updated the gold answer of {r['updated']:,}, relabeled {plural(r['relabeled'], 'execution')}"
    if r.get("differ"):
        out += (f"; {r['differ']} stored with a different gold answer were left as they are "
                "(pass --update to replace them)")
    return out


def _warn_gold(r: dict) -> None:
    if r.get("warning"):
        say(err_console, f"warning: {r['warning']}", soft_wrap=True)


@app.command("import-programs")
def import_programs(file: str = typer.Argument(..., help="records with a question, a program and a gold answer"),
                    dataset: str = typer.Option(..., "--dataset"),
                    split: Optional[str] = typer.Option(None),
                    question_field: Optional[List[str]] = typer.Option(
                        None, help="field holding the question; several (repeat the option, or F1,F2) are "
                                   "joined with a space in that order (default: question or input); a.b: "
                                   "field b of object a"),
                    program_field: Optional[str] = typer.Option(
                        None, help="field holding the program: a string, or a list of strings (one sample "
                                   "each; an empty one is skipped) (default: program or code)"),
                    answer_field: Optional[str] = typer.Option(None, help="[default: answer or target]"),
                    no_gold: bool = typer.Option(False, "--no-gold", help="the problems have no gold answer"),
                    options_field: Optional[str] = typer.Option(None, help=OPTIONS_HELP),
                    teacher: Optional[str] = typer.Option(None, help="teacher/model name to record"),
                    limit: Optional[int] = typer.Option(None),
                    skip_invalid: bool = typer.Option(False, "--skip-invalid",
                                                      help="import the valid records and list each skipped one "
                                                           "on stderr (default: the first bad record is an "
                                                           "error and nothing is written)"),
                    update: bool = typer.Option(False, "--update", help="replace the gold answer of problems "
                                                "already stored when the file's differs, and relabel their "
                                                "programs"),
                    preamble: Optional[str] = typer.Option(None, help=PREAMBLE_HELP),
                    memory_limit: Optional[str] = memory_option()) -> None:
    """Import programs generated elsewhere (fences and prose around the code are stripped)."""
    fields = [f.strip() for value in question_field or [] for f in value.split(",") if f.strip()]
    with _cli_errors():
        check_numbers(("--limit", limit, opt.COUNT))
        opt.check_split(split)
        with _store(memory=memory_limit) as store:
            r = api.import_programs(store, file, dataset, split=split,
                                    question_field=fields if question_field else None,
                                    program_field=program_field, answer_field=answer_field, no_gold=no_gold,
                                    teacher=teacher, limit=limit, skip_invalid=skip_invalid, update=update,
                                    options_field=options_field, preamble=preamble)
    for message in r["skipped_records"] + r["skipped_samples"]:
        say(err_console, f"skipped {message}", soft_wrap=True)
    say(console, f"{dataset}: read {plural(r['read'], 'program')} from {plural(r['records'], 'record')}, "
                  f"added {r['added']:,} (new problems: {r['problems_added']:,})"
                  + (f", skipped {plural(r['skipped'], 'invalid record')}" if skip_invalid else "")
                  + (f", skipped {plural(len(r['skipped_samples']), 'empty sample')}" if r["skipped_samples"] else "")
                  + (f", preamble {r['preamble']} ({preamble})" if r["preamble"] else "")
                  + _gold_changes(r))
    _warn_gold(r)


_ROW_WORDS = {"problems": "problem", "programs": "program", "executions": "execution", "program_labels": "label",
              "reviews": "review", "consensus": "consensus answer", "generation_failures": "generation failure",
              "synth_requests": "synthesis request"}


def _rows_text(rows: dict) -> str:
    """``3 problems, 12 programs, ...`` (tables with no rows left out; current_reviews: part of reviews)."""
    return ", ".join(plural(rows[t], w) for t, w in _ROW_WORDS.items() if rows.get(t)) or "no rows"


def _interactive() -> bool:
    """Whether a question can be answered: stdin is a terminal."""
    return sys.stdin.isatty()


@app.command()
def delete(dataset: str = typer.Option(..., "--dataset", help="the dataset to delete"),
           yes: bool = typer.Option(False, "--yes", help="delete without asking"),
           memory_limit: Optional[str] = memory_option()) -> None:
    """Delete a dataset: its problems, programs, executions, labels, reviews, consensus answers,
    generation failures and synthesis requests, in one transaction. Curated snapshots that used
    it are kept (they hold copies of their rows)."""
    def kept(snapshots: list) -> str:
        return (f"; {plural(len(snapshots), 'curated snapshot')} that used it {'is' if len(snapshots) == 1 else 'are'} "
                f"kept: {', '.join(snapshots)}" if snapshots else "")

    def confirm(plan: dict) -> bool:
        if yes:
            return True
        if not _interactive():
            raise ValueError(f"pad delete asks before deleting dataset {dataset!r} ({_rows_text(plan['rows'])}): "
                             "pass --yes to delete it without asking; nothing was deleted")
        return typer.confirm(f"delete dataset {dataset!r}: {_rows_text(plan['rows'])}{kept(plan['snapshots'])}?",
                             default=False, err=True)

    with _cli_errors():
        with _store(memory=memory_limit) as store:
            r = api.delete_dataset(store, dataset, confirm=confirm)
    if not r["deleted"]:
        say(err_console, f"dataset {dataset!r} not deleted")
        raise typer.Exit(1)
    say(console, f"deleted dataset {dataset!r}: {_rows_text(r['rows'])}{kept(r['snapshots'])}")


@app.command()
def execute(dataset: Optional[str] = typer.Option(None, help="only this dataset"),
            timeout: float = typer.Option(2.0, help="seconds per program"),
            memory_mb: int = typer.Option(512, help="memory a program may use (MiB)"),
            workers: int = typer.Option(2, help="sandbox worker processes"),
            rerun: bool = typer.Option(False, help="execute again programs that already have a result"),
            limit: Optional[int] = typer.Option(None, help="at most N programs"),
            isolation: str = typer.Option("auto", help="auto|bwrap|unshare|process"),
            origin: Optional[str] = typer.Option(None, help="only programs of this origin (teacher, injected, ...)"),
            engine: str = _engine_option(), address: Optional[str] = _address_option(),
            shards: Optional[str] = _shards_option(), shard_size: int = _shard_size_option(5000, "programs"),
            entry: Optional[str] = typer.Option(None, help="function to call or variable to read for the "
                                                           "answer [default: solution(), else ans]"),
            preamble: Optional[str] = typer.Option(None, help="a Python file run before each program imported "
                                                   "without a preamble, in its namespace (recorded with each "
                                                   "execution); a program imported with another one is an error"),
            memory_limit: Optional[str] = memory_option()) -> None:
    """Run programs that have no execution yet in the sandbox, and label them."""
    from pad_data.sandbox.isolation import WEAK_WARNING, resolve

    with _cli_errors():
        check_numbers(("--timeout", timeout, opt.TIMEOUT), ("--memory-mb", memory_mb, opt.MEMORY_MB),
                      ("--workers", workers, opt.WORKERS), ("--limit", limit, opt.COUNT),
                      ("--shard-size", shard_size, opt.COUNT))
        opt.memory_limit(memory_limit)
        if origin is not None:
            opt.check_names("--origin", [origin], api.ORIGINS, "origin")
        level = resolve(isolation)
    warning = None if level == "bwrap" else WEAK_WARNING.format(level=level)
    if warning:
        _warn(warning)
    with _cli_errors(), _store(memory=memory_limit) as store:
        if dataset is not None:
            opt.check_names("--dataset", [dataset], api.datasets(store), "dataset")
        with _progress("executing") as progress:
            r = api.execute(store, dataset=dataset, timeout=timeout, memory_mb=memory_mb, workers=workers,
                            rerun=rerun, limit=limit, isolation_level=level, origin=origin, entry=entry,
                            progress=progress, engine=engine, address=address, shards=shards,
                            shard_size=shard_size, preamble=preamble)
    how = ", ".join(x for x in (f"{r['programs_per_s']:,.0f}/s" if r["executed"] else "", r.get("executor")) if x)
    _print_labels(r["labels"], title=f"executed {plural(r['executed'], 'program')} in {r['seconds']:.2f} s"
                                     + (f" ({how})" if how else ""))
    if warning:
        _warn(f"these labels were made with isolation {level!r}, below the OS sandbox (see README, threat model)")


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
             engine: str = _engine_option(), address: Optional[str] = _address_option(),
             shards: Optional[str] = _shards_option(), shard_size: int = _shard_size_option(500, "problems"),
             batch: bool = typer.Option(False, "--batch", help="through the OpenAI Batch API (half the price, "
                                        "results within 24 h); batch ids are stored, so a rerun resumes polling"),
             poll_interval: float = typer.Option(30.0, help="--batch: seconds between polls"),
             wait: bool = typer.Option(True, "--wait/--no-wait", help="--batch: poll until the batches finish, "
                                       "or submit and exit (a later --batch run collects them)"),
             max_batch_requests: int = typer.Option(50_000, help="--batch: requests per batch (the API's limit "
                                                    "is 50,000)"),
             memory_limit: Optional[str] = memory_option()) -> None:
    """Ask a teacher LLM for programs (cached, resumable: a rerun only asks for what is missing).

    The API key comes from OPENAI_API_KEY.
    """
    with _cli_errors():
        check_numbers(("--samples", samples, opt.SAMPLES), ("--temperature", temperature, opt.TEMPERATURE),
                      ("--max-tokens", max_tokens, opt.MAX_TOKENS), ("--concurrency", concurrency, opt.CONCURRENCY),
                      ("--max-retries", max_retries, opt.RETRIES), ("--timeout", timeout, opt.REQUEST_TIMEOUT),
                      ("--limit", limit, opt.COUNT), ("--price-in", price_in, opt.PRICE),
                      ("--price-out", price_out, opt.PRICE), ("--shard-size", shard_size, opt.COUNT))
        opt.check_split(split)
        opt.memory_limit(memory_limit)
        _check_api_key(backend, base_url)
    prices = (price_in or 0.0, price_out or 0.0) if (price_in is not None or price_out is not None) else None
    if batch:
        _generate_batch(dataset=dataset, model=model, base_url=base_url, backend=backend, samples=samples,
                        temperature=temperature, max_tokens=max_tokens, prompt=prompt, split=split, limit=limit,
                        prices=prices, poll_interval=poll_interval, wait=wait, max_batch_requests=max_batch_requests,
                        max_retries=max_retries, timeout=timeout, engine=engine, memory=memory_limit)
        return
    teacher = api.TeacherSpec(backend, model, base_url=base_url, max_retries=max_retries, timeout=timeout)
    with _cli_errors(), _store(memory=memory_limit) as store, _progress("generating") as progress:
        r = api.generate(store, teacher, dataset, samples=samples, temperature=temperature, max_tokens=max_tokens,
                         concurrency=concurrency, prompt=prompt, split=split, limit=limit, prices=prices,
                         progress=progress, engine=engine, address=address, shards=shards, shard_size=shard_size)
    _say_generated(r, engine)


def _check_api_key(backend: str, base_url: Optional[str]) -> None:
    """A teacher on OpenAI's API with no key fails here, before the store is opened."""
    if backend == "openai":
        from pad_data.teachers.openai_teacher import check_api_key

        check_api_key(base_url)


def _say_generated(r: dict, engine: str) -> None:
    """What `pad generate` prints (a Ray run counts its shards, a local one its requests and tokens);
    exit 3 when a request failed."""
    if engine == "ray":
        where, usage = f", ray, {plural(r['shards'], 'shard')}", ""
    else:
        where = ""
        usage = (f"{plural(r['requests'], 'request')}, "
                 f"{plural(r['prompt_tokens'] + r['completion_tokens'], 'token')}, ")
    say(console, f"{r['teacher']} ({r['prompt']} prompt{where}): {plural(r['added'], 'program')} added, "
                  f"{r['cached']:,} already stored, {r['failed']:,} failed (retried next run), {usage}"
                  f"{r['seconds']:.1f} s ({r['programs_per_s']:,.1f} programs/s)")
    if r.get("in_batch"):
        say(err_console, f"note: {plural(r['in_batch'], 'sample')} left to Batch API jobs not yet collected "
                         "(`pad generate --batch` collects them)")
    if r["failed"]:
        if r.get("last_error"):
            say(err_console, f"last error: {r['last_error']}", soft_wrap=True)
        raise typer.Exit(3)


def _generate_batch(backend: str, engine: str, poll_interval: float, max_batch_requests: int, memory: Optional[str],
                    **kw: Any) -> None:
    with _cli_errors():
        check_numbers(("--poll-interval", poll_interval, opt.POLL_INTERVAL),
                      ("--max-batch-requests", max_batch_requests, opt.BATCH_REQUESTS))
        if backend != "openai" or engine != "local":
            raise ValueError("--batch needs --backend openai and --engine local")
    stop = "interrupted: the batch ids are stored; rerun with --batch to resume polling"
    with _cli_errors(interrupted=stop), _store(memory=memory) as store, _progress("batch") as progress:
        r = api.generate_batch(store, poll_interval=poll_interval, max_batch_requests=max_batch_requests,
                               progress=progress, **kw)
    say(console, f"{r['teacher']} ({r['prompt']} prompt, batch): {r['added']} programs added, {r['cached']} "
                  f"already stored, {r['failed']} failed (retried next run), {r['batches']} batches "
                  f"({r['resumed']} resumed, {r['pending']} still pending), {r['requests']} requests, "
                  f"{r['prompt_tokens'] + r['completion_tokens']:,} tokens, {r['seconds']:.1f} s")
    if r["closed"]:
        say(console, f"{r['closed']} batches of an earlier run closed unsent: every sample they held was stored "
                     "since", soft_wrap=True)
    if r["pending"]:
        err_console.print("batches still pending: rerun `pad generate --batch` with the same options to collect "
                          "them", highlight=False, soft_wrap=True, markup=False)
    if r["failed"]:
        say(err_console, f"last error: {r['last_error']}", soft_wrap=True)
        raise typer.Exit(3)


@app.command()
def synthesize(seed_dataset: str = typer.Option(..., "--from", help="seed dataset whose problems are shown as examples"),
               dataset: str = typer.Option(..., "--dataset", help="the new dataset (problems without gold)"),
               model: str = typer.Option(..., "--model", help="model name (openai) or path/Hub name (hf)"),
               base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server [env OPENAI_BASE_URL]"),
               backend: str = typer.Option("openai", help="openai | hf"),
               n: int = typer.Option(100, "--n", help="new problems wanted (rejected replies are replaced)"),
               shots: int = typer.Option(4, help="seed problems shown per request"),
               reference: Optional[List[str]] = typer.Option(None, help="benchmark file (JSONL with question) new "
                                                             "problems must not resemble; repeatable"),
               temperature: float = typer.Option(1.0),
               max_tokens: int = typer.Option(400),
               concurrency: int = typer.Option(8, help="requests in flight"),
               prompt: Optional[str] = typer.Option(None, help="prompt file with an {examples} placeholder "
                                                    "[default: pad's own]"),
               seed: int = typer.Option(0, help="seed of the examples drawn for each request"),
               split: Optional[str] = typer.Option(None, help="draw examples from this split of --from only"),
               max_requests: Optional[int] = typer.Option(None, help="request indices to use at most "
                                                          "[default: 3 n + 10]"),
               contamination: float = typer.Option(0.8, help="reject when more than this share of the words is "
                                                   "covered by 8-grams of a --reference (as pad check)"),
               near_duplicate: float = typer.Option(0.8, help="reject when more than this share of the words is "
                                                    "covered by 8-grams of seed or already accepted problems"),
               max_retries: int = typer.Option(6, help="retries per request on 429/5xx/timeouts/bad responses"),
               timeout: float = typer.Option(120.0, help="seconds per request"),
               memory_limit: Optional[str] = memory_option()) -> None:
    """Have a teacher write new problems in the style of a seed dataset (cached: a rerun sends no request).

    Exact and near duplicates (of the seeds and of each other) and problems close to a --reference
    benchmark are rejected and counted. New problems have no gold: generate, execute, then `pad vote`.
    """
    with _cli_errors():
        check_numbers(("--max-retries", max_retries, opt.RETRIES), ("--timeout", timeout, opt.REQUEST_TIMEOUT))
        opt.memory_limit(memory_limit)
    with _cli_errors(), _store(memory=memory_limit) as store, _progress("synthesizing") as progress:
        teacher = api.make_teacher(backend, model, base_url=base_url, max_retries=max_retries, timeout=timeout)
        r = api.synthesize(store, teacher, seed_dataset, dataset, n=n, shots=shots, reference=reference,
                           temperature=temperature, max_tokens=max_tokens, concurrency=concurrency, prompt=prompt,
                           seed=seed, split=split, max_requests=max_requests, contamination=contamination,
                           near_duplicate=near_duplicate, progress=progress)
    say(console, f"{dataset}: {r['accepted_total']} synthesized problems (wanted {n}); this run: {r['accepted']} "
                  f"accepted, rejected {r['duplicate']} duplicates, {r['near_duplicate']} near duplicates, "
                  f"{r['contaminated']} contaminated, {r['unparsable']} unparsable; {r['cached']} replies already "
                  f"stored, {r['requests']} requests, {r['failed']} failed (retried next run)")
    if r["failed"]:
        say(err_console, f"last error: {r['last_error']}", soft_wrap=True)
        raise typer.Exit(3)
    if r["accepted_total"] < n:
        say(err_console, f"warning: only {r['accepted_total']} of {n} after {r['cached'] + r['requests']} replies "
                          "(raise --max-requests for more)", soft_wrap=True)


@app.command("sql")
@functools.wraps(sql_params)  # its options, help and parser are the live answer's too
def sql(**params: Any) -> None:
    with _cli_errors():
        check_sql_options(params["fmt"], params["max_rows"])
        with _store(read_only=True, memory=params["memory_limit"]) as store:
            columns, rows = store.read_rows(params["query"], read_files=params["read_files"])
    print_rows(columns, rows, params["fmt"], params["max_rows"], console)


@app.command()
def stats(memory_limit: Optional[str] = memory_option()) -> None:
    """Counts of problems and programs per dataset, and labels."""
    with _cli_errors(), _store(read_only=True, memory=memory_limit) as store:
        s = queries.stats(store)
    print_stats(s, str(resolve_path(_state["db"])), console)


@app.command()
def check(reference: Optional[str] = typer.Option(None, help="benchmark file whose questions must not be in "
                                                             "a train split (e.g. gsm8k/test.jsonl)"),
          expectations: Optional[str] = typer.Option(None, help="YAML/JSON file with more expectations"),
          docs: Optional[str] = typer.Option(None, help="write Great Expectations Data Docs HTML here"),
          min_correct: float = typer.Option(0.05, help="warning when the share of correct programs is lower"),
          contamination: float = typer.Option(0.8, help="max share of a train question's words covered by "
                                                        "reference 8-grams"),
          memory_limit: Optional[str] = memory_option()) -> None:
    """Run the data quality suite (Great Expectations); exit 1 when a critical check fails."""
    with _cli_errors(), _store(memory=memory_limit) as store:
        check_numbers(("--min-correct", min_correct, opt.FRACTION),
                      ("--contamination", contamination, opt.FRACTION_OPEN))
        r = api.run_checks(store, reference=reference, expectations_file=expectations, docs_dir=docs,
                           bounds=api.CheckBounds(min_correct=min_correct, contamination=contamination))
    table = plain_table("table", "expectation", "column", "observed", "result", title=f"pad check {r['run_id']}")
    for res in r["results"]:
        verdict = Text("pass", "green") if res.success else (Text("FAIL", "red") if res.check.critical
                                                             else Text("warn", "yellow"))
        add_row(table, res.check.table, res.check.expectation.removeprefix("expect_"),
                res.check.kwargs.get("column", ""), res.observed, verdict)
    console.print(table)
    if r["docs"]:
        say(console, f"Data Docs: {r['docs']}")
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
                  list_: bool = typer.Option(False, "--list", help="list the injection kinds"),
                  memory_limit: Optional[str] = memory_option()) -> None:
    """Make faulty variants of correct programs (AST edits), then execute and label them."""
    if list_:
        table = Table("kind", "what it does")
        for kind, what in api.INJECTION_KINDS.items():
            table.add_row(kind, what)
        console.print(table)
        return
    with _cli_errors():
        check_numbers(("--per-program", per_program, opt.SAMPLES), ("--seed", seed, opt.SEED),
                      ("--limit", limit, opt.COUNT), ("--timeout", timeout, opt.TIMEOUT),
                      ("--workers", workers, opt.WORKERS))
    with _cli_errors(), _store(memory=memory_limit) as store:
        if dataset is not None:
            opt.check_names("--dataset", [dataset], api.datasets(store), "dataset")
        with _progress("injecting") as progress:
            r = api.inject_errors(store, per_program=per_program, kinds=_csv(kinds), seed=seed, dataset=dataset,
                                  limit=limit, timeout=timeout, workers=workers, progress=progress)
    say(console, f"{plural(r['sources'], 'correct program')} -> {plural(r['variants'], 'variant')}, "
                  f"{r['added']:,} new ({r['variants'] - r['added']:,} already stored); executed {r['executed']:,}"
                  + (f"; skipped {plural(r['too_deep'], 'program')} too deeply nested to edit" if r["too_deep"] else ""))
    table = plain_table("injection kind", "variants", "loud (raise)", "silent (wrong answer)", "unchanged (correct)",
                        "not executed", title="every injected program in the store (view injection_outcomes)")
    for row in r["outcomes"].itertuples(index=False):
        add_row(table, *row)
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
           dataset: Optional[List[str]] = typer.Option(None, "--dataset", help="only this dataset; repeat the "
                                                       "option (or D1,D2) for several [default: all]"),
           datasets_old: Optional[str] = typer.Option(None, "--datasets", hidden=True,
                                                      help="deprecated spelling of --dataset"),
           origins: Optional[str] = typer.Option(None, help="comma-separated origins [default: teacher,import,"
                                                  "human; for refine, all] (injected only when named)"),
           teacher: Optional[List[str]] = typer.Option(None, "--teacher", help="only programs this teacher "
                                                       "(model) wrote; repeat the option for several [default: any]"),
           dedup: str = typer.Option("ast", help="none | exact | ast"),
           max_per_problem: int = typer.Option(4, help="at most K programs per problem (shortest first)"),
           validation: float = typer.Option(0.05, help="share of train problems for validation"),
           test: float = typer.Option(0.05, help="share of train problems for test"),
           seed: int = typer.Option(0),
           review: str = typer.Option("exclude-rejected", help="reviewers' verdicts: exclude-rejected (leave "
                                      "out programs a reviewer rejects) | accepted-only | ignore"),
           min_agreement: Optional[float] = typer.Option(None, help="programs labeled against a consensus "
                                                         "answer (pad vote) only from problems whose agreement "
                                                         "share is at least this (0-1)"),
           list_: bool = typer.Option(False, "--list", help="list snapshots"),
           memory_limit: Optional[str] = memory_option()) -> None:
    """Build a named, immutable, reproducible snapshot of train/validation/test splits."""
    if datasets_old is not None:
        _warn("--datasets is deprecated: use --dataset (repeat it, or D1,D2, for several)")
    names = [d for value in [*(dataset or []), *([datasets_old] if datasets_old else [])] for d in _csv(value) or []]
    with _cli_errors(), _store(read_only=list_, memory=memory_limit) as store:
        if list_:
            _list_snapshots(api.list_curations(store))
            return
        if not name:
            raise ValueError("give a snapshot NAME (or --list)")
        params = api.CurateParams(labels=_csv(labels_), datasets=names or None, origins=_csv(origins), dedup=dedup,
                                  max_per_problem=max_per_problem, validation_fraction=validation,
                                  test_fraction=test, seed=seed, task=task, siblings=siblings,
                                  min_agreement=min_agreement, review=review, teachers=teacher or None)
        r = api.curate(store, name, params)
    state = "created" if r["created"] else "unchanged (same parameters and data)"
    what = "refinement pair" if task == "refine" else "program"
    say(console, f"snapshot {r['name']} {state}: hash {r['content_hash']}, {plural(r['programs'], what)} over "
                  f"{plural(r['problems'], 'problem')}; {_splits(r['splits'])}"
                  + (f"; {plural(r['too_deep'], 'candidate')} too deeply nested to analyze (kept: deduplicated "
                     "by text, ranked last)" if r.get("too_deep") else ""))
    if "removed" in r:
        say(console, f"  of {plural(r['selected_from'], 'program')}" + (f" in {', '.join(names)}" if names else "")
                     + ", each filter removed: " + ", ".join(f"{_FILTERS.get(k, k)} {n:,}" for k, n in r["removed"].items()))


# how `pad curate` names what each filter removed: the option that asked for it
_FILTERS = {"labels": "--labels", "origins": "--origins", "teachers": "--teacher", "review": "--review",
            "min_agreement": "--min-agreement", "dedup": "--dedup", "max_per_problem": "--max-per-problem"}


def _splits(counts: dict) -> str:
    """``train 191, validation 10, test 7`` (splits in that order, empty ones left out)."""
    return ", ".join(f"{s} {counts[s]:,}" for s in opt.SPLITS if counts.get(s)) or "no rows"


def _when(ts: object) -> str:
    """A stored timestamp to the second."""
    return ts.strftime("%Y-%m-%d %H:%M:%S") if hasattr(ts, "strftime") else str(ts)[:19]


def _list_snapshots(df: pd.DataFrame) -> None:
    if df.empty:
        console.print("no curated snapshots yet (create one with `pad curate NAME`)", markup=False, highlight=False)
        return
    gone = any(len(d) for d in df.deleted_datasets)  # the column only when a dataset was deleted (pad delete)
    table = plain_table("name", "task", "created", "rows", "problems", "splits", "hash",
                        *(["datasets deleted since (rows kept)"] if gone else []))
    for row in df.itertuples(index=False):
        counts, params = json.loads(row.counts), json.loads(row.params)
        add_row(table, row.name, params.get("task", "program"), _when(row.created_at), f"{counts['programs']:,}",
                f"{counts['problems']:,}", _splits(counts["splits"]), row.content_hash,
                *([", ".join(row.deleted_datasets)] if gone else []))
    console.print(table)


@app.command()
def vote(dataset: Optional[str] = typer.Option(None, help="only this dataset [default: all]"),
         min_votes: int = typer.Option(3, help="votes the winning value needs to become the consensus"),
         partial: bool = typer.Option(False, "--partial", help="also vote on problems whose programs are not all "
                                      "executed yet (by default they are skipped and counted)"),
         memory_limit: Optional[str] = memory_option()) -> None:
    """Consensus answers for problems without gold: the majority of their programs' numeric results.

    Their programs are then labeled correct/wrong_answer against it in labeled_programs
    (gold_source 'consensus', with the agreement share); run after `pad execute`.
    """
    with _cli_errors():
        check_numbers(("--min-votes", min_votes, opt.COUNT))
        with _store(memory=memory_limit) as store:
            r = api.vote(store, dataset=dataset, min_votes=min_votes, partial=partial)
            labels = api.label_counts(store, dataset)
    agreement = "" if r["agreement"] is None else f" (mean agreement {r['agreement']:.2f})"
    say(console, f"{r['problems']} problems without gold: {r['voted']} got a consensus answer{agreement}, "
                  f"{r['below_min_votes']} had fewer than {min_votes} votes, {r['tied']} were tied, "
                  f"{r['no_results']} had no numeric result")
    if r["skipped"]:
        _warn(f"skipped {r['skipped']} problems with {r['unexecuted_programs']} programs not yet executed (their "
              "vote would count only the programs that ran): run `pad execute` first, or pass --partial")
    elif r["unexecuted"]:
        say(console, f"voted on {r['unexecuted']} problems with {r['unexecuted_programs']} programs not yet "
                     "executed (--partial)", soft_wrap=True)
    if r["agreement_hist"]:
        table = plain_table("agreement", "problems", title="consensus answers by agreement share")
        for bucket, n in r["agreement_hist"].items():
            add_row(table, bucket, n)
        console.print(table)
    _print_labels(labels, title="labels now" + (f" ({dataset})" if dataset else ""))


@app.command()
def export(name: Optional[str] = typer.Argument(None, help="curated snapshot"),
           out: str = typer.Option(..., "--out", help="output directory"),
           fmt: str = typer.Option("hf", "--format", help="hf (DatasetDict.save_to_disk) | chat (the same, with a "
                                                          "`messages` column for TRL/chat trainers) | parquet | jsonl"),
           license_: str = typer.Option("other", "--license", help="license field of the dataset card"),
           push_to_hub: Optional[str] = typer.Option(None, help="also upload to this Hub dataset repo"),
           overwrite: bool = typer.Option(False, help="replace --out when an earlier pad export wrote it "
                                                      "(it holds a .pad-export file); other folders are never "
                                                      "deleted"),
           from_parquet: Optional[str] = typer.Option(None, help="instead of a snapshot: a folder of Parquet "
                                                      "shards (train*.parquet, validation*, test*) to stream "
                                                      "into a Hugging Face dataset"),
           memory_limit: Optional[str] = memory_option()) -> None:
    """Export a curated snapshot with a generated dataset card (or Parquet shards as an HF dataset)."""
    with _cli_errors():
        if from_parquet:
            if name or fmt != "hf":
                raise ValueError("--from-parquet takes no snapshot NAME and writes --format hf")
            r = api.export_parquet_shards(from_parquet, out, overwrite=overwrite, push_to_hub=push_to_hub)
            say(console, f"exported {from_parquet} to {r['out']} (hf): {_splits(r['counts'])}"
                          + (f"; pushed {r['pushed']}" if r["pushed"] else ""))
            return
        if not name:
            raise ValueError("give a snapshot NAME (or --from-parquet DIR)")
        with _store(memory=memory_limit) as store:
            r = api.export(store, name, out, fmt=fmt, license=license_, push_to_hub=push_to_hub,
                           overwrite=overwrite)
    say(console, f"exported {name} to {r['out']} ({fmt}): {_splits(r['counts'])}"
                  + (f"; pushed {r['pushed']}" if r["pushed"] else ""))


@app.command()
def review(port: int = typer.Option(8501, help="port to serve on"),
           host: str = typer.Option("127.0.0.1", help="address to bind (127.0.0.1: this machine only; any other "
                                                      "address needs a token)"),
           token: Optional[str] = typer.Option(None, help="access token the browser must give (?token=...); "
                                                          "without it: none on loopback, else a new one, printed"),
           memory_limit: Optional[str] = memory_option()) -> None:
    """Open the review app (Streamlit) on the store: find, read, judge (one or in bulk) and fix programs."""
    from pad_data.review import server as srv

    with _cli_errors():
        check_numbers(("--port", port, opt.PORT))
        memory = opt.memory_limit(memory_limit)
        srv.check_port(host, port)
        secret = srv.access_token(host, token)
        db = resolve_path(_state["db"]).resolve()
        if not db.exists():
            raise ValueError(f"{db}: no such store (run `pad run` first)")
        with Store(db, read_only=True, migrate_to=0, memory=memory) as store:
            old = store.version < SCHEMA_VERSION
        if old:  # the app reads only: upgrade the store first
            Store(db, memory=memory).close()
    url = f"http://{host}:{port}/" + (f"?token={secret}" if secret else "")
    say(console, f"pad review on {url} (store {db}); Ctrl-C to stop", soft_wrap=True)
    raise typer.Exit(srv.serve(db, host, port, secret, memory=memory))


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
        preamble: Optional[str] = typer.Option(None, help="with --programs: " + PREAMBLE_HELP),
        model: Optional[str] = typer.Option(None, help="a real teacher instead of the offline one "
                                                       "(see `pad generate`; key from OPENAI_API_KEY)"),
        base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible server for --model"),
        backend: str = typer.Option("openai", help="openai | hf (with --model)"),
        samples: int = typer.Option(4, help="programs per problem"),
        seed: int = typer.Option(0),
        timeout: float = typer.Option(2.0),
        memory_mb: int = typer.Option(512),
        workers: int = typer.Option(2),
        memory_limit: Optional[str] = memory_option()) -> None:
    """The whole pipeline: problems -> programs -> sandboxed execution -> labels -> summary.

    With no options: pad's embedded problems and the offline template teacher (no network).
    `--source FILE --dataset NAME` uses your problems; `--model M [--base-url URL]` a real teacher;
    `--programs FILE` programs made elsewhere.
    """
    with _cli_errors():
        check_numbers(("--samples", samples, opt.SAMPLES), ("--seed", seed, opt.SEED),
                      ("--timeout", timeout, opt.TIMEOUT), ("--memory-mb", memory_mb, opt.MEMORY_MB),
                      ("--workers", workers, opt.WORKERS))
        opt.memory_limit(memory_limit)
        if model:
            _check_api_key(backend, base_url)
    with _cli_errors(), _store(memory=memory_limit) as store, _progress("executing") as progress:
        steps = api.default_steps(source=source, dataset=dataset, programs=programs, samples=samples,
                                  seed=seed, timeout=timeout, memory_mb=memory_mb, workers=workers,
                                  progress=progress, model=model, base_url=base_url, backend=backend,
                                  preamble=preamble)

        def report(step, result, seconds):
            say(console, ("✓", "green"), f" {step.name} ({seconds:.2f} s): {_brief(result)}")

        results = api.run_pipeline(store, steps, on_step=report)
        summary = api.label_counts(store)
    exec_result = dict(results)[steps[-1].name]
    rate = f" at {exec_result['programs_per_s']:,.0f}/s" if exec_result["executed"] else ""
    _print_labels(summary, title=f"labels in {store.path} (this run executed "
                                 f"{plural(exec_result['executed'], 'program')}{rate})")


def _brief(result: dict) -> str:
    """One step's result as ``read 319, added 319`` (what `pad run` prints per step): scalars only,
    rates as ``545 programs/s``; the step's time is printed beside it."""
    parts = []
    for key, value in result.items():
        if key in ("labels", "pool", "seconds") or value is None or isinstance(value, (dict, list, tuple)):
            continue
        if key.endswith("_per_s"):
            parts.append(f"{value:,.0f} {key.removesuffix('_per_s')}/s")
            continue
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        parts.append(f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def _print_labels(counts: dict, title: str) -> None:
    """``title`` on a line of its own (a table title would wrap at the table's width), then the table."""
    total = sum(counts.values()) or 1
    say(console, title, soft_wrap=True)
    table = Table("label", "programs", "share")
    for label in LABELS:
        if counts.get(label):
            table.add_row(label, str(counts[label]), f"{100 * counts[label] / total:.1f}%")
    table.add_row("total", str(sum(counts.values())), "", style="bold")
    console.print(table)


def main() -> None:
    app()
