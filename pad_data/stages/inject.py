"""``pad inject-errors``: faulty variants of correct programs, of the kinds LLMs really produce.

Each injection parses the program, edits its syntax tree and writes it back with
``ast.unparse`` (so formatting is normalized and comments are dropped); only
``syntax_slip`` edits the unparsed text, since a syntax error has no tree. Choices come
from ``random.Random(f"{seed}:{program_id}:{kind}:{attempt}")``: the same seed gives the
same variants on any machine. A kind that does not apply to a program (no constant to
drop, one step to swap) is skipped for that program, never faked.

A correct program whose syntax tree is too deep to edit (``return 1+1+...`` with 600 terms:
:mod:`pad_data.rules.syntax`) is skipped as a source, and counted (``too_deep``).

The variants are stored as programs (origin ``injected``, ``parent_program_id`` = the
correct program, ``injection_kind``, and the ``preamble_id`` the parent's correct label ran
after: a variant fails or passes after the same code as its parent) and then executed and
labeled like any other program. The ``injection_outcomes`` view says which were *loud* (raised, did not compile,
timed out), *silent* (ran and gave a wrong or non-numeric answer) or *unchanged* (still
``correct``: kept and labeled, never dropped).
"""

from __future__ import annotations

import ast
import builtins
import keyword
import random
import re
from collections import Counter
from typing import Callable

import pandas as pd
import pyarrow as pa

from pad_data.stages.curate.candidates import SCAN_ROWS, ranged
from pad_data.stages.execute import execute
from pad_data.stages.parallel import mapper, repeat
from pad_data.store import Store, attached, copy_into, registered, scratch_db
from pad_data.store.ids import injected_program_id
from pad_data.rules.syntax import TooDeep, tree_work

KINDS: dict[str, str] = {
    "operator": "a swapped arithmetic operator (+ and -, * and /, ...)",
    "constant_changed": "a number (from the question when possible) replaced by another",
    "constant_dropped": "a number omitted: `a * 3 + b` becomes `a + b`",
    "wrong_variable": "a defined but wrong variable referenced",
    "undefined_name": "a typo in a variable name (NameError)",
    "step_dropped": "a step (assignment) deleted",
    "steps_swapped": "two dependent steps swapped (the second used before it is computed)",
    "wrong_return": "returns an intermediate value instead of the result",
    "syntax_slip": "a dropped colon, closing parenthesis or operand: does not compile",
}
_SWAPS: dict[type, tuple[type, ...]] = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div, ast.Add), ast.Div: (ast.Mult, ast.FloorDiv),
    ast.FloorDiv: (ast.Div, ast.Mult), ast.Mod: (ast.FloorDiv,), ast.Pow: (ast.Mult,),
}
# an injected variant's row in ``programs``, in this order
VARIANT_COLUMNS = {"program_id": "VARCHAR", "problem_id": "VARCHAR", "origin": "VARCHAR", "teacher": "VARCHAR",
                   "sample_idx": "INTEGER", "program": "VARCHAR", "parent_program_id": "VARCHAR",
                   "injection_kind": "VARCHAR", "preamble_id": "VARCHAR"}
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_BUILTINS = set(dir(builtins))


class InjectError(ValueError):
    pass


def question_numbers(question: str | None) -> set[float]:
    """The numbers written in a question ("1,200" -> 1200.0)."""
    out = set()
    for m in _NUMBER.findall(question or ""):
        try:
            out.add(float(m.replace(",", "").rstrip(".")))
        except ValueError:
            pass
    return out


def _solution(tree: ast.Module) -> ast.FunctionDef | None:
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    return next((f for f in funcs if f.name == "solution"), funcs[0] if funcs else None)


def _numeric(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


def _stored(nodes: list[ast.stmt]) -> set[str]:
    return {n.id for s in nodes for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _loaded(node: ast.AST) -> list[ast.Name]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]


def _prefer(cands: list, good: Callable[[object], bool]) -> list:
    """The candidates ``good`` accepts, else all of them."""
    return [c for c in cands if good(c)] or cands


# Each injector edits ``fn`` (the parsed solution) in place and returns True, or returns
# False when the kind does not apply to this program.
def _operator(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    nodes = [n for n in ast.walk(fn) if isinstance(n, (ast.BinOp, ast.AugAssign)) and type(n.op) in _SWAPS]
    if not nodes:
        return False
    node = rng.choice(nodes)
    node.op = rng.choice(_SWAPS[type(node.op)])()
    return True


def _constant_changed(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    consts = _prefer([n for n in ast.walk(fn) if _numeric(n)], lambda n: float(n.value) in qnums)
    if not consts:
        return False
    node = rng.choice(consts)
    others = sorted(v for v in qnums if v != node.value)
    if others and rng.random() < 0.5:  # the model picked up the wrong number from the question
        new = rng.choice(others)
        node.value = int(new) if new.is_integer() and isinstance(node.value, int) else new
    elif isinstance(node.value, int):
        node.value += rng.choice([1, 2, 10, -1]) if node.value > 1 else rng.choice([1, 2, 10])
    else:
        node.value = node.value * 2 if node.value else 1.0
    return True


def _constant_dropped(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    ops = [n for n in ast.walk(fn) if isinstance(n, ast.BinOp) and (_numeric(n.left) != _numeric(n.right))]
    ops = _prefer(ops, lambda n: float((n.left if _numeric(n.left) else n.right).value) in qnums)
    if not ops:
        return False
    node = rng.choice(ops)
    keep = node.right if _numeric(node.left) else node.left
    for parent in ast.walk(fn):  # replace the BinOp by its non-constant side
        for field, value in ast.iter_fields(parent):
            if value is node:
                setattr(parent, field, keep)
                return True
            if isinstance(value, list) and any(v is node for v in value):
                value[[i for i, v in enumerate(value) if v is node][0]] = keep
                return True
    return False


def _wrong_variable(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    defined = {a.arg for a in fn.args.args}
    cands = []
    for stmt in fn.body:
        for name in _loaded(stmt):
            others = sorted(defined - {name.id})
            if name.id in defined and others:
                cands.append((name, others))
        defined |= _stored([stmt])
    if not cands:
        return False
    name, others = rng.choice(cands)
    name.id = rng.choice(others)
    return True


def _typo(name: str, rng: random.Random, taken: set[str]) -> str | None:
    options = []
    if len(name) > 1:
        i = rng.randrange(len(name))
        options.append(name[:i] + name[i + 1:])  # dropped letter
        j = rng.randrange(len(name) - 1)
        options.append(name[:j] + name[j + 1] + name[j] + name[j + 2:])  # swapped letters
    options += [name + "s" if not name.endswith("s") else name[:-1], name + name[-1], name.replace("_", "")]
    rng.shuffle(options)
    for o in options:
        if o and o.isidentifier() and not keyword.iskeyword(o) and o not in taken and o not in _BUILTINS:
            return o
    return None


def _undefined_name(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    local = _stored(fn.body) | {a.arg for a in fn.args.args}
    names = [n for n in _loaded(fn) if n.id in local]
    if not names:
        return False
    node = rng.choice(names)
    typo = _typo(node.id, rng, {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | local)
    if typo is None:
        return False
    node.id = typo
    return True


def _steps(fn: ast.FunctionDef) -> list[int]:
    return [i for i, s in enumerate(fn.body) if isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign))]


def _step_dropped(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    steps = _steps(fn)
    if len(fn.body) < 2 or not steps:
        return False
    del fn.body[rng.choice(steps)]
    return True


def _steps_swapped(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    pairs = [i for i in range(len(fn.body) - 1)
             if not isinstance(fn.body[i], ast.Return) and not isinstance(fn.body[i + 1], ast.Return)
             and {n.id for n in _loaded(fn.body[i + 1])} & _stored([fn.body[i]])]
    if not pairs:
        return False
    i = rng.choice(pairs)
    fn.body[i], fn.body[i + 1] = fn.body[i + 1], fn.body[i]
    return True


def _wrong_return(fn: ast.FunctionDef, rng: random.Random, qnums: set[float]) -> bool:
    ret = fn.body[-1] if fn.body and isinstance(fn.body[-1], ast.Return) and fn.body[-1].value else None
    if ret is None:
        return False
    current = ast.unparse(ret.value)
    # intermediates: names assigned before the return, other than what it returns
    inter = [n for n in dict.fromkeys(t.id for s in fn.body[:-1] for t in ast.walk(s)
                                      if isinstance(t, ast.Name) and isinstance(t.ctx, ast.Store)) if n != current]
    if not inter:
        return False
    ret.value = ast.Name(id=rng.choice(inter), ctx=ast.Load())
    return True


_AST_INJECTORS = {
    "operator": _operator, "constant_changed": _constant_changed, "constant_dropped": _constant_dropped,
    "wrong_variable": _wrong_variable, "undefined_name": _undefined_name, "step_dropped": _step_dropped,
    "steps_swapped": _steps_swapped, "wrong_return": _wrong_return,
}


def _syntax_slip(source: str, rng: random.Random) -> str | None:
    lines = source.split("\n")
    slips = []
    for i, line in enumerate(lines):
        if line.rstrip().endswith(":"):
            slips.append((i, line.rstrip()[:-1]))  # missing colon
        if ")" in line:
            k = line.rindex(")")
            slips.append((i, line[:k] + line[k + 1:]))  # unclosed parenthesis
        m = re.search(r"\s[-+*/]\s+\S+\s*$", line)
        if m and "=" in line[:m.start()]:
            slips.append((i, line[:m.start()] + line[m.start():].split()[0].join([" ", ""])))  # dangling operator
    rng.shuffle(slips)
    for i, new in slips:
        text = "\n".join(lines[:i] + [new] + lines[i + 1:])
        try:
            compile(text, "<slip>", "exec")  # compiling never runs anything
        except SyntaxError:
            return text
        except ValueError:
            continue
    return None


@tree_work
def inject(program: str, kind: str, rng: random.Random, question: str | None = None) -> str | None:
    """One faulty variant of ``program`` of ``kind``, or None when the kind does not apply;
    :class:`~pad_data.rules.syntax.TooDeep` when its tree is too deep to edit."""
    if kind not in KINDS:
        raise InjectError(f"unknown injection kind {kind!r}; choose from {', '.join(KINDS)}")
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return None
    if kind == "syntax_slip":
        return _syntax_slip(ast.unparse(tree), rng)
    fn = _solution(tree)
    if fn is None or not _AST_INJECTORS[kind](fn, rng, question_numbers(question)):
        return None
    return ast.unparse(ast.fix_missing_locations(tree))


@tree_work
def variants(program: str, kinds: list[str], k: int, key: str, question: str | None = None) -> list[tuple[str, str]]:
    """Up to ``k`` distinct ``(kind, program)`` variants, kinds taken in a seeded order;
    :class:`~pad_data.rules.syntax.TooDeep` when the program's tree is too deep to edit."""
    try:
        original = ast.unparse(ast.parse(program))
    except (SyntaxError, ValueError):
        return []
    order = list(kinds)
    random.Random(f"{key}:order").shuffle(order)
    out: list[tuple[str, str]] = []
    seen = {original}
    dead: set[str] = set()
    for attempt in range(4 * k + len(order)):
        if len(out) >= k or len(dead) == len(order):
            break
        kind = order[attempt % len(order)]
        if kind in dead:
            continue
        text = inject(program, kind, random.Random(f"{key}:{kind}:{attempt}"), question)
        if text is None:
            dead.add(kind)
        elif text not in seen:
            seen.add(text)
            out.append((kind, text))
    return out


def _variants_or_none(program: str, kinds: list[str], k: int, key: str, question: str | None) -> list | None:
    """:func:`variants`, or None for a program too deep to edit (a worker process's task)."""
    try:
        return variants(program, kinds, k, key, question)
    except TooDeep:
        return None


def inject_errors(store: Store, per_program: int = 2, kinds: list[str] | None = None, seed: int = 0,
                  dataset: str | None = None, limit: int | None = None, run: bool = True, timeout: float = 2.0,
                  workers: int = 2, progress: Callable[[int, int], None] | None = None) -> dict:
    """Add injected variants of correct programs, then execute and label them.

    Sources: programs whose latest label is ``correct`` and whose origin is not ``injected``
    (one too deep to edit is skipped: ``too_deep`` counts them).
    Returns ``{"sources", "variants", "added", "by_kind", "too_deep", "executed", "outcomes"}``;
    rerunning adds nothing.
    """
    kinds = list(kinds or KINDS)
    for kind in kinds:
        if kind not in KINDS:
            raise InjectError(f"unknown injection kind {kind!r}; choose from {', '.join(KINDS)}")
    if per_program < 1:
        raise InjectError("--per-program must be >= 1")
    where, params = ["label = 'correct'", "origin <> 'injected'"], []
    if dataset:
        where.append("dataset = ?")
        params.append(dataset)
    order = f"ORDER BY program_id LIMIT {int(limit)}" if limit else ""  # the first `limit` by program_id
    query = (f"SELECT program_id, problem_id, question, program, teacher, preamble_id FROM labeled_programs "
             f"WHERE {' AND '.join(where)} AND {{range}} {order}")  # each range's first, then all ranges'
    by_kind, deep = Counter(), 0
    # sources and variants stream through a scratch file, a batch at a time in memory: at 10M
    # programs the sources' text alone is several GB
    with scratch_db(store, "inject") as (db, path):
        for i, reader in enumerate(ranged(store, query, params)):
            copy_into(db, "src", reader, append=i > 0)
        store.release()  # not held while the variants are made
        db.execute(f"CREATE TABLE made ({', '.join(f'{c} {t}' for c, t in VARIANT_COLUMNS.items())})")
        sources = db.execute(f"SELECT count(*) FROM (SELECT 1 FROM src {order})").fetchall()[0][0]
        done = 0
        with mapper(sources) as pmap:
            for batch in db.cursor().sql(f"SELECT * FROM src {order}").to_arrow_reader(SCAN_ROWS):
                pids, problems, questions, programs, teachers, preambles = (c.to_pylist() for c in batch.columns)
                keys = [f"{seed}:{pid}" for pid in pids]
                every = pmap(_variants_or_none, programs, repeat(kinds, len(pids)), repeat(per_program, len(pids)),
                            keys, questions)
                rows: dict[str, list] = {c: [] for c in VARIANT_COLUMNS}
                for pid, problem, teacher, preamble, made in zip(pids, problems, teachers, preambles, every):
                    deep += made is None
                    for i, (kind, text) in enumerate(made or ()):
                        for c, v in zip(VARIANT_COLUMNS, (injected_program_id(problem, pid, kind, text), problem,
                                                          "injected", teacher, i, text, pid, kind, preamble)):
                            rows[c].append(v)
                        by_kind[kind] += 1
                done += len(pids)
                if progress:
                    progress(done, sources)
                with registered(db, pa.table(rows)) as t:
                    db.execute(f"INSERT INTO made SELECT * FROM {t}")
        db.close()
        with attached(store, path, "pad_inject"), store.transaction():
            added = store.insert_rows("programs", "pad_inject.made", "program_id") if by_kind else 0
    executed = execute(store, origin="injected", timeout=timeout, workers=workers)["executed"] if run else 0
    return {"sources": sources, "variants": sum(by_kind.values()), "added": added, "by_kind": dict(by_kind),
            "too_deep": deep, "executed": executed, "outcomes": outcomes(store)}


def outcomes(store: Store) -> pd.DataFrame:
    """Per injection kind: how many variants are loud, silent, unchanged or not executed yet."""
    return store.df("""SELECT injection_kind, count(*) AS variants,
                              count(*) FILTER (WHERE outcome = 'loud') AS loud,
                              count(*) FILTER (WHERE outcome = 'silent') AS silent,
                              count(*) FILTER (WHERE outcome = 'unchanged') AS unchanged,
                              count(*) FILTER (WHERE outcome IS NULL) AS not_executed
                       FROM injection_outcomes GROUP BY 1 ORDER BY 1""")
