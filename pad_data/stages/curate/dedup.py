"""What deduplication (``none``, ``exact``, ``ast``) and the shortest-first order read from a program.

``exact``: the same text after stripping whitespace at the ends of lines; ``ast``: the same
normalized syntax tree (docstrings dropped, local names renamed in order of first use, so
renamed variables and formatting collapse). One parse of a program gives its key and its size.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
from typing import Callable, Iterator

import duckdb
import pyarrow as pa

from pad_data.rules.syntax import TooDeep, tree_work
from pad_data.stages.curate.candidates import SCAN_ROWS
from pad_data.stages.parallel import mapper, repeat
from pad_data.store import registered

Info = tuple[int, int, str]  # (statements, characters, dedup key)

# the statements counted for a program that does not parse, and for one whose syntax tree is too
# deep to analyze (syntax.TooDeep): both are keyed on their exact text and ranked after every other
UNPARSED = 10**9
TOO_DEEP = UNPARSED + 1
# the program text analyzed at once, as a share of the budget: a batch sits in Python (Arrow,
# str objects, the copies sent to worker processes) beside DuckDB's own memory
BATCH_SHARE = 1 / 16


class _Canon(ast.NodeTransformer):
    """Rename arguments and local names to v0, v1, ... in order of first appearance."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _n(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"v{len(self.names)}"
        return self.names[name]

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Store) or node.id in self.names:
            node.id = self._n(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._n(node.arg)
        node.annotation = None
        return node


def _drop_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]


def dedup_key(program: str, mode: str) -> str:
    """The key programs are deduplicated on (see the module docstring)."""
    return program if mode == "none" else analyze(program, mode)[2]


def analyze(program: str, mode: str) -> Info:
    """``(statements, characters, dedup key)`` from one parse of ``program``. A program that does
    not parse, or is too deeply nested to analyze (such as ``return 1+1+...`` with 600 terms),
    is kept: deduplicated on its exact text (``ast`` mode too) and ranked last (:data:`UNPARSED`,
    :data:`TOO_DEEP` statements), so it is chosen only when nothing else is."""
    exact = "\n".join(line.rstrip() for line in program.strip().splitlines())
    try:
        return _analyze_tree(program, mode, exact)
    except TooDeep:
        stmts = TOO_DEEP
    except (SyntaxError, ValueError):
        stmts = UNPARSED
    return stmts, len(program), "" if mode == "none" else hashlib.sha256(exact.encode()).hexdigest()


@tree_work
def _analyze_tree(program: str, mode: str, exact: str) -> Info:
    tree = ast.parse(program)
    stmts = sum(isinstance(n, ast.stmt) for n in ast.walk(tree))
    if mode == "ast":
        _drop_docstrings(tree)
        key = hashlib.sha256(ast.dump(_Canon().visit(tree), annotate_fields=False).encode()).hexdigest()
    elif mode == "exact":
        key = hashlib.sha256(exact.encode()).hexdigest()
    else:
        key = ""
    return stmts, len(program), key


def too_deep(info: list[Info]) -> int:
    """How many of :func:`analyze`'s results are of programs too deep to analyze."""
    return sum(i[0] == TOO_DEEP for i in info)


def size(info: Info) -> int:
    """One sortable number from :func:`analyze`: fewest statements first, then fewest characters
    (a program of :data:`TOO_DEEP` statements sizes at least ``TOO_DEEP * 10**9``)."""
    return info[0] * 10**9 + min(info[1], 10**9 - 1)


@contextlib.contextmanager
def analyzer(mode: str, n: int) -> Iterator[Callable[[list[str]], list[Info]]]:
    """A function that runs :func:`analyze` over a list of programs: in worker processes (started
    once, for every list) when ``n`` programs in all make that worth it (:func:`~pad_data.stages.parallel.mapper`)."""
    with mapper(n) as run:
        yield lambda programs: run(analyze, programs, repeat(mode, len(programs)))


def analyze_into(con: duckdb.DuckDBPyConnection, table: str, query: str, mode: str,
                 columns: tuple[str, str, str], memory: int) -> int:
    """Create ``table`` in ``con`` with ``columns`` (an id, the dedup key, the :func:`size`) for each
    row ``(id, program)`` of ``query``, in batches of at most :data:`BATCH_SHARE` of ``memory``
    bytes of program text (and :data:`~.candidates.SCAN_ROWS` rows); returns how many were too
    deep to analyze (:func:`too_deep`)."""
    n, chars = con.execute(f"SELECT count(*), coalesce(sum(strlen(program)), 0) FROM ({query}) t(id, program)"
                           ).fetchall()[0]
    rows = max(1, min(SCAN_ROWS, int(memory * BATCH_SHARE) * n // max(1, chars)))
    con.execute(f"CREATE TABLE {table} ({columns[0]} VARCHAR, {columns[1]} VARCHAR, {columns[2]} BIGINT)")
    # sorted by text, so that a program sampled several times (teachers often repeat one) is
    # analyzed once per batch (a sort spills; a GROUP BY on long strings would not)
    reader = con.cursor().sql(f"SELECT * FROM ({query}) ORDER BY 2").to_arrow_reader(rows)
    deep = 0
    with analyzer(mode, n) as run:
        for batch in reader:
            programs = batch.column(1).to_pylist()
            distinct = list(dict.fromkeys(programs))
            found = dict(zip(distinct, run(distinct)))
            info = [found[program] for program in programs]
            deep += too_deep(info)
            analyzed = pa.table({columns[0]: batch.column(0), columns[1]: pa.array([i[2] for i in info], pa.string()),
                                 columns[2]: pa.array([size(i) for i in info], pa.int64())})
            with registered(con, analyzed) as rows_in:
                con.execute(f"INSERT INTO {table} SELECT * FROM {rows_in}")
    return deep
