"""What pad prints: stored text as plain text, tables, ``pad sql``'s rows and ``pad stats``, and
the answer a running stage gives a ``pad sql`` or ``pad stats`` sent to it
(:mod:`pad_data.store.live_reads`). The CLI prints through these, and so does the stage's commit
thread (:class:`pad_data.store.writer.GroupCommitter`), which therefore never imports the CLI.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import functools
import io
import json
import math
from typing import TYPE_CHECKING, Any, Callable, Optional

import duckdb
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from pad_data.rules import options as opt
from pad_data.store import queries
from pad_data.rules.display import json_visible, visible
from pad_data.rules.options import check_numbers
from pad_data.store import Store, StoreError

if TYPE_CHECKING:
    import click


MEMORY_HELP = ("DuckDB memory budget of this stage, e.g. 2GB, 512MiB or 40% (of RAM); beyond it, it spills to "
               "disk beside the store [default: $PAD_MEMORY_LIMIT or 12.5% of RAM]")


def memory_option() -> Any:
    """Every command's ``--memory-limit`` (the budget of :func:`pad_data.rules.options.memory_limit`)."""
    return typer.Option(None, "--memory-limit", envvar=opt.MEMORY_ENV, help=MEMORY_HELP)


def sql_params(query: str = typer.Argument(..., help="SQL over problems, programs, executions, labeled_programs"),
               fmt: str = typer.Option("table", "--format", help="table|csv|json"),
               max_rows: int = typer.Option(200, help="rows shown in table format"),
               read_files: bool = typer.Option(False, "--read-files", help="let the query read files (read_csv, "
                                               "read_parquet, 'file.csv'...); writing stays impossible"),
               memory_limit: Optional[str] = memory_option()) -> dict:
    """Run a read-only SQL query against the store (no writes anywhere; files only with --read-files)."""
    return {"query": query, "fmt": fmt, "max_rows": max_rows, "read_files": read_files, "memory_limit": memory_limit}


def error_line(exc: BaseException) -> str:
    """An error as the one line ``error: ...`` shows (it may quote data: control characters visible)."""
    return visible(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__


def say(out: Console, *parts: str | tuple[str, str], **kw: Any) -> None:
    """Print one message to ``out``: each part as plain text (no Rich markup or emoji codes, control
    characters visible, see :mod:`pad_data.rules.display`), a ``(text, style)`` part in that style. Every
    message that may quote data (names, paths, errors, values) is printed through this."""
    out.print(Text.assemble(*[(visible(p[0]), p[1]) if isinstance(p, tuple) else visible(p) for p in parts]),
              highlight=False, **kw)


def check_sql_options(fmt: str, max_rows: int) -> None:
    if fmt not in ("table", "csv", "json"):
        raise ValueError(f"--format: unknown format {fmt!r}; choose table, csv or json")
    check_numbers(("--max-rows", max_rows, opt.COUNT))


def print_rows(columns: list[str], rows: list[tuple], fmt: str, max_rows: int, out: Console) -> None:
    """What `pad sql` prints, to ``out``. Every format is safe on a terminal: csv and table show
    control characters as ``\\x1b``... (csv keeps newlines and tabs, which it quotes); json escapes
    them and stays exact."""
    rows = [[_plain(v) for v in row] for row in rows]
    if fmt == "csv":
        writer = csv.writer(out.file, lineterminator="\n")
        writer.writerow([visible(str(c)) for c in columns])
        writer.writerows([["" if v is None else visible(str(v)) if isinstance(v, str) else v for v in row]
                          for row in rows])
    elif fmt == "json":
        out.file.write(json_visible(json.dumps([dict(zip(columns, map(_json_keys, row))) for row in rows],
                                               ensure_ascii=False, default=_json_value)) + "\n")
    else:
        table = plain_table(*[str(c) for c in columns])
        for row in rows[:max_rows]:
            add_row(table, *["" if v is None else str(v) for v in row])
        out.print(table)
        if len(rows) > max_rows:
            out.print(f"... {len(rows) - max_rows} more rows (use --format csv or json)")


LIVE_ROWS = 50_000  # the most rows a stage answers `pad sql` with (more: the command runs the query itself)


LIVE_BYTES = 32 << 20  # the longest answer it sends (longer: the same)


def answer_live(request: dict, read: Callable[[Callable[[Store], Any]], Any]) -> dict:
    """A ``pad sql`` or ``pad stats`` sent to the stage writing the store (:mod:`pad_data.store.live_reads`),
    answered as the command answers it: ``{"code", "out", "err"}``. ``read(fn)`` returns
    ``fn(store)`` on the store opened read-only, between the stage's commits
    (:meth:`GroupCommitter.read_for_client`). ``{"code": None}`` tells the client to run the
    command itself: arguments only the full CLI handles (``--help``, bad options,
    ``--read-files``, ``--memory-limit``), a query that took too long or a result too large for
    the stage to hold, an error the CLI does not make one line of, a stage that stopped."""
    args, width, db = request.get("args"), request.get("width"), request.get("db")
    if (not isinstance(args, list) or not all(isinstance(a, str) for a in args) or "--help" in args
            or not (width is None or isinstance(width, int) and 20 <= width <= 10_000)):
        return {"code": None}
    terminal = bool(request.get("terminal"))
    out = Console(file=io.StringIO(), width=width or 200, force_terminal=terminal,
                  color_system="standard" if terminal else None)
    if request.get("command") == "stats" and not args and isinstance(db, str):
        return _answer(read, queries.stats, lambda s: print_stats(s, db, out), out)
    if request.get("command") != "sql":
        return {"code": None}
    try:
        ctx = _sql_parser().make_context("sql", list(args))
        query, fmt, max_rows, read_files = (ctx.params[k] for k in ("query", "fmt", "max_rows", "read_files"))
        check_sql_options(fmt, max_rows)
        # (the stage's $PAD_MEMORY_LIMIT, which the parser sees here, is not the client's)
        own_budget = getattr(ctx.get_parameter_source("memory_limit"), "name", None) == "COMMANDLINE"
    except Exception:  # noqa: BLE001 - click's usage errors, bad options: the CLI's own messages
        return {"code": None}
    # the stage's reader is locked away from files and from settings (its memory cap included):
    # such a query, or one with a budget of its own, opens the store itself
    if read_files or own_budget:
        return {"code": None}

    def rows(store: Store) -> tuple:
        return store.read_rows(query, read_files=read_files, limit=LIVE_ROWS + 1)

    def show(result: tuple) -> None:
        if len(result[1]) > LIVE_ROWS:  # not held in the stage's memory: the client runs it itself
            raise OverflowError
        print_rows(*result, fmt, max_rows, out)

    return _answer(read, rows, show, out)


def _answer(read: Callable[[Callable[[Store], Any]], Any], fetch: Callable[[Store], Any],
            show: Callable[[Any], None], out: Console) -> dict:
    """:func:`answer_live`'s reply: ``show(fetch(store))`` printed to ``out``, or the one-line error."""

    def guarded(store: Store) -> tuple:
        try:
            return fetch(store), None
        except Exception as exc:  # noqa: BLE001 - the query's error is the answer, not the stage's
            return None, exc

    try:
        result, error = read(guarded)
    except Exception:  # noqa: BLE001 - too slow, or the stage failed or is closing
        return {"code": None}
    if error is not None:
        if not isinstance(error, (ValueError, RuntimeError, StoreError, duckdb.Error)) \
                or isinstance(error, (duckdb.InterruptException, duckdb.OutOfMemoryException)):
            return {"code": None}
        return {"code": 1, "out": "", "err": f"error: {error_line(error)}\n"}
    try:
        show(result)
    except Exception:  # noqa: BLE001 - too large, or whatever the command would do with it: it does itself
        return {"code": None}
    text = out.file.getvalue()
    return {"code": 0, "out": text, "err": ""} if len(text) <= LIVE_BYTES else {"code": None}


@functools.cache
def _sql_parser() -> "click.Command":
    """``pad sql``'s own option parser (the command is built from :func:`sql_params` too)."""
    app = typer.Typer(add_completion=False)
    app.command("sql")(sql_params)
    return typer.main.get_command(app)


def _plain(v: object) -> object:
    """A value as `pad sql` prints it: NaN is missing, a decimal a float."""
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def _json_keys(v: object) -> object:
    """``v`` with the keys of its maps (DuckDB MAPs: dates, numbers, lists...) as JSON takes them."""
    if isinstance(v, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else _json_value(k): _json_keys(x)
                for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_keys(x) for x in v]
    return v


def _json_value(v: object) -> object:
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    return str(v)


def plain_table(*columns: str, title: str | None = None) -> Table:
    """A table whose headers and cells are shown as plain text (never read as Rich markup or emoji codes,
    control characters visible); at least as wide as its title, so the title never wraps mid-phrase."""
    table = Table(title=Text(visible(title)) if title else None, min_width=len(title) if title else None)
    for c in columns:
        table.add_column(Text(visible(c)), overflow="fold")
    return table


def add_row(table: Table, *cells: object, style: str | None = None) -> None:
    """A row of plain-text cells (as :func:`plain_table`); a :class:`Text` cell is the caller's own styling."""
    table.add_row(*[c if isinstance(c, Text) else Text(visible(str(c))) for c in cells], style=style)


def print_stats(s: dict, title: str, out: Console) -> None:
    """What `pad stats` prints, to ``out``."""
    table = plain_table("dataset", "problems", "with gold", "programs", "executed", title=title)
    for row in s["rows"]:
        add_row(table, *row[:5])
    out.print(table)
    by_label = plain_table("dataset", "label", "programs", "share", title="labels (latest execution)")
    for row in s["rows"]:
        executed = row[4] or 1
        for label, n in zip(s["labels"], row[5:]):
            if n:
                add_row(by_label, row[0], label, n, f"{100 * n / executed:.1f}%")
    out.print(by_label)
    if s["teachers"]:
        teachers = plain_table("teacher", "origin", "programs", "prompt tokens", "completion tokens",
                          "est. cost (USD)", "failed, to retry", title="teachers")
        for t in s["teachers"]:
            add_row(teachers, t[0], t[1], t[2], f"{t[3]:,.0f}", f"{t[4]:,.0f}",
                     "" if t[5] is None else f"{t[5]:.4f}", t[6])
        out.print(teachers)
