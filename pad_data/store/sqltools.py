"""The SQL toolbox: quoting, list parameters, registered frames, and the read-only guard.

Every query pad builds with text from elsewhere quotes it with :func:`sql_literal`; every
"column is one of these values" condition is :func:`any_of` (one list parameter, whatever the
list's length); a DataFrame or Arrow table a query reads is :func:`registered` under a name
no other query uses; and whatever a user's SQL may do is decided by :func:`read_only_statements`.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from typing import TYPE_CHECKING, Iterable, Iterator

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa

# statement kinds `pad sql` runs (SELECT covers WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE)
READ_STATEMENTS = ("SELECT", "EXPLAIN")
READ_STATEMENT_WORDS = ("SELECT", "WITH", "VALUES", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN")

_names = itertools.count()


def sql_literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def any_of(column: str, values: Iterable) -> tuple[str, list]:
    """``(condition, params)``: ``column`` is one of ``values``, as one list parameter."""
    return f"{column} = ANY(?)", [list(values)]


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, rows: object, prefix: str = "_pad_frame") -> Iterator[str]:
    """``rows`` (a DataFrame, an Arrow table, record batch or reader) readable by queries on
    ``con`` under the name yielded, unique to this block, and unregistered after it."""
    name = f"{prefix}_{next(_names)}"
    con.register(name, rows)
    try:
        yield name
    finally:
        con.unregister(name)


def copy_into(con: duckdb.DuckDBPyConnection, table: str, reader: pa.RecordBatchReader, append: bool = False) -> None:
    """Create ``table`` in ``con`` (``append``: append to it) with the batches of ``reader`` (one
    at a time in memory): how rows stream from the store into a scratch database."""
    if not append:
        with registered(con, reader.schema.empty_table()) as empty:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM {empty}")
    for batch in reader:
        with registered(con, batch) as rows:
            con.execute(f"INSERT INTO {table} SELECT * FROM {rows}")


def first_line(exc: BaseException) -> str:
    """An error's message, its first line (DuckDB's go on with context lines)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_only_statements(con: duckdb.DuckDBPyConnection, query: str, one_select: bool = False) -> list:
    """The statements of ``query`` (DuckDB's parser classifies them), if each only reads; else a
    ValueError saying what is refused. The one read-only rule: ``pad sql`` runs SELECT (which
    covers WITH, VALUES, FROM-first, DESCRIBE, SHOW, SUMMARIZE) and EXPLAIN of a SELECT (EXPLAIN
    ANALYZE runs its statement). ``one_select`` (the review app's SQL tab, which pages the
    result): exactly one SELECT."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise ValueError(first_line(exc)) from None
    if not statements:
        raise ValueError("empty query")
    if one_select and len(statements) != 1:
        raise ValueError("only SELECT is allowed: give one statement")
    for st in statements:
        kind = _read_kind(con, st) if not one_select else st.type.name
        if one_select and kind != "SELECT":
            raise ValueError(f"only SELECT is allowed (this is a {kind} statement)")
        if kind not in READ_STATEMENTS:
            raise ValueError(f"pad sql is read-only: {kind} statements are not allowed "
                             f"(only {', '.join(READ_STATEMENT_WORDS)})")
    return statements


def _read_kind(con: duckdb.DuckDBPyConnection, statement) -> str:
    """A statement's kind; an EXPLAIN is SELECT when what it explains is, else ``EXPLAIN <kinds>``."""
    kind = statement.type.name
    if kind != "EXPLAIN":
        return kind
    inner = re.sub(r"^\s*explain\s+(analy[sz]e\s+)?", "", statement.query, flags=re.IGNORECASE)
    kinds = {s.type.name for s in con.extract_statements(inner)} if inner != statement.query else {"?"}
    return "SELECT" if kinds == {"SELECT"} else "EXPLAIN " + "/".join(sorted(kinds - {"SELECT"}))
