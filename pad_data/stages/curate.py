"""``pad curate NAME``: an immutable, reproducible snapshot of train/validation/test splits.

Steps, all deterministic for the same store and parameters:
1. **filter** ``labeled_programs`` by label (default only ``correct``), datasets, origins
   (default ``teacher``, ``import``, ``human``: injected variants and a student's programs only
   when named, or for ``task="refine"``); reviewers' verdicts (``program_verdicts``: the
   strictest current verdict of a program's reviewers) by ``review``: ``exclude-rejected``
   (default) leaves out programs a reviewer rejects, ``accepted-only`` keeps only programs
   accepted with no reviewer rejecting them or asking for a fix, ``ignore`` disregards
   verdicts; each row keeps its verdict (``verdict`` column, exported too); with
   ``min_agreement``, programs labeled against a consensus answer (``pad vote``) only from
   problems whose agreement share is at least that (programs labeled against a real gold are
   kept). Every label, dataset and origin named must exist, and filters that select nothing are a CurateError: nothing is stored;
2. **deduplicate** within each problem: ``exact`` (same text after stripping whitespace at the
   ends of lines) or ``ast`` (same normalized syntax tree: docstrings dropped, local names
   renamed in order of first use, so renamed variables and formatting collapse);
3. **keep at most K per problem**, preferring the *shortest* program (fewest statements,
   then fewest characters, then program_id), the usual PaD choice: shorter correct
   programs are easier to learn and less likely to be right by accident;
4. **assign splits by problem**, never splitting one problem's programs: problems ingested
   as ``test``/``validation`` keep that split (they can never leak into train); the others
   go to validation/test with the given fractions by a seeded hash of ``problem_id``.
The snapshot (parameters, counts, content hash) is stored in ``curations``, its rows in
``curated_examples``. A name is never overwritten: recreating it with the same parameters
on the same data gives the same hash and changes nothing.

``task="refine"`` builds *refinement pairs* instead (rows in ``refine_examples``): input =
question + a faulty program + its execution feedback (:mod:`pad_data.stages.feedback`), target =
a correct program for the same problem. Pairs come from parent links in either direction
(an injected variant and its correct parent; a faulty program and the correct fix a
reviewer or a student's refinement round made of it) and, with ``siblings``, from a faulty
program and the shortest correct program of its problem. Steps 1-4 apply to the faulty
side (labels default to every faulty label), with splits by problem as above, so a problem
is in the same split in a program snapshot and a refine snapshot with the same seed.
"""

from __future__ import annotations

import ast
import hashlib
import contextlib
import itertools
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import duckdb
import pandas as pd
import pyarrow as pa

from pad_data.stages.feedback import feedback
from pad_data.rules.labels import LABELS
from pad_data.rules.options import FRACTION, COUNT, SEED, check_names, check_numbers
from pad_data.store import ORIGINS, Store, content_id, copy_into, sql_literal
from pad_data.rules.syntax import TooDeep, tree_work

DEDUP = ("none", "exact", "ast")
TASKS = ("program", "refine")
REVIEW_MODES = ("exclude-rejected", "accepted-only", "ignore")
# the faulty labels refinement pairs are built from by default
REFINE_LABELS = ["wrong_answer", "no_answer", "non_numeric", "syntax_error", "runtime_error", "timeout",
                 "memory_limit"]
# programs a curated snapshot takes by default: not deliberately corrupted variants (injected) nor a
# student's own programs; those only when asked for (--origins), or for refine pairs (every origin)
DEFAULT_ORIGINS = ["teacher", "import", "human"]
SCAN_ROWS = 100_000  # program snapshots are analyzed this many candidates at a time (memory is bounded by it)
# Memory: the store's budget (Store.memory, --memory-limit), halved between the store and the
# scratch database while both are open; the candidates are read one problem range at a time
# (Store.problem_ranges: RANGE_SHARE of the budget each), since their query's joins cannot spill.
RANGE_SHARE = 1 / 16


class CurateError(ValueError):
    pass


@dataclass
class CurateParams:
    labels: list[str] | None = None  # None: ["correct"], or REFINE_LABELS for task "refine"
    datasets: list[str] | None = None
    origins: list[str] | None = None  # None: DEFAULT_ORIGINS, or every origin for task "refine"
    dedup: str = "ast"
    max_per_problem: int = 4
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    review: str = "exclude-rejected"  # REVIEW_MODES: what reviewers' verdicts do
    task: str = "program"
    siblings: bool = False  # refine: also pair faulty programs with a correct sibling
    min_agreement: float | None = None  # consensus-labeled programs only from problems this unanimous

    def resolved_labels(self) -> list[str]:
        return list(self.labels) if self.labels else (REFINE_LABELS if self.task == "refine" else ["correct"])

    def resolved_origins(self) -> list[str] | None:
        """The origins kept (None: all of them)."""
        if self.origins:
            return list(self.origins)
        return None if self.task == "refine" else list(DEFAULT_ORIGINS)

    def to_json(self) -> str:
        """The parameters as stored and hashed (labels and origins resolved; refine-only fields
        only when set)."""
        d = {**asdict(self), "labels": self.resolved_labels(), "origins": self.resolved_origins()}
        # as stored before --review: exclude_rejected, and review only when accepted-only
        d["exclude_rejected"] = d.pop("review") != "ignore"
        if self.review == "accepted-only":
            d["review"] = self.review
        for key, default in (("task", "program"), ("siblings", False), ("min_agreement", None)):
            if d[key] == default:
                del d[key]
        return json.dumps(d, sort_keys=True)


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
    """The key programs are deduplicated on (see module docstring)."""
    return program if mode == "none" else analyze(program, mode)[2]


# the statements counted for a program that does not parse, and for one whose syntax tree is too
# deep to analyze (syntax.TooDeep): both are keyed on their exact text and ranked after every other
UNPARSED = 10**9
TOO_DEEP = UNPARSED + 1


def analyze(program: str, mode: str) -> tuple[int, int, str]:
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
def _analyze_tree(program: str, mode: str, exact: str) -> tuple[int, int, str]:
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


def too_deep(info: list[tuple[int, int, str]]) -> int:
    """How many of :func:`analyze`'s results are of programs too deep to analyze."""
    return sum(i[0] == TOO_DEEP for i in info)


def _size(info: tuple[int, int, str]) -> int:
    """One sortable number from ``analyze``: fewest statements first, then fewest characters."""
    return info[0] * 10**9 + min(info[1], 10**9 - 1)


def _analyze_all(programs: list[str], mode: str) -> list[tuple[int, int, str]]:
    """``analyze`` over many programs; in worker processes when there are many."""
    with _analyzer(mode, len(programs)) as run:
        return run(programs)


@contextlib.contextmanager
def _analyzer(mode: str, n: int) -> Iterator[Callable[[list[str]], list[tuple[int, int, str]]]]:
    """A function that runs ``analyze`` over a list of programs: in worker processes (started
    once, for every list) when ``n`` programs in all make that worth it."""
    if n < 20_000 or (os.cpu_count() or 1) < 2:
        yield lambda programs: [analyze(p, mode) for p in programs]
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=os.cpu_count()) as ex:
        yield lambda programs: list(ex.map(analyze, programs, itertools.repeat(mode), chunksize=2000))


TASK_TABLES = {"program": "curated_examples", "refine": "refine_examples"}
TASK_COLUMNS = {
    "program": ["split", "problem_id", "program_id", "dataset", "question", "program", "answer", "answer_text",
                "label", "teacher", "origin", "verdict"],
    "refine": ["split", "problem_id", "faulty_program_id", "program_id", "dataset", "question", "faulty_program",
               "feedback", "program", "answer", "answer_text", "label", "injection_kind", "teacher", "origin",
               "verdict"],
}


def _split_for(problem_id: str, source_split: str, p: CurateParams) -> str:
    if source_split in ("test", "validation"):
        return source_split
    u = int(hashlib.sha256(f"{p.seed}:{problem_id}".encode()).hexdigest()[:12], 16) / 16**12
    if u < p.test_fraction:
        return "test"
    if u < p.test_fraction + p.validation_fraction:
        return "validation"
    return "train"


# what curation reads: each program with its current label and its reviewers' verdict (v)
CANDIDATES = "labeled_programs LEFT JOIN program_verdicts v USING (program_id)"
# what --review keeps, over CANDIDATES
REVIEW_RULES = {"exclude-rejected": "v.verdict IS DISTINCT FROM 'reject'", "accepted-only": "v.verdict = 'accept'",
                "ignore": None}


def _candidate_filter(p: CurateParams) -> tuple[str, list]:
    """``(WHERE condition, params)`` over ``labeled_programs``: step 1 of the module docstring."""
    labels = p.resolved_labels()
    where, params = [f"label IN ({', '.join('?' * len(labels))})"], list(labels)
    for col, values in (("dataset", p.datasets), ("origin", p.resolved_origins())):
        if values:
            where.append(f"{col} IN ({', '.join('?' * len(values))})")
            params += list(values)
    if REVIEW_RULES[p.review]:
        where.append(REVIEW_RULES[p.review])
    if p.min_agreement is not None:
        where.append("(gold_source IS DISTINCT FROM 'consensus' OR agreement >= ?)")
        params.append(p.min_agreement)
    return " AND ".join(where), params


def ranged(store: Store, query: str, params: list | None = None) -> Iterator[pa.RecordBatchReader]:
    """``query`` (a SELECT over ``labeled_programs`` with a ``{range}`` condition to fill in) run
    once per :meth:`Store.problem_ranges` range, each result streamed, with the store capped at
    half the budget: the way to read ``labeled_programs`` within the budget at any size."""
    with store.capped(store.share(0.5), ordered=False):
        for cond in store.problem_ranges(RANGE_SHARE):
            yield store.con.sql(query.format(range=f"({cond})"), params=params or None).to_arrow_reader(SCAN_ROWS)


def _candidates(store: Store, p: CurateParams) -> pd.DataFrame:
    where, params = _candidate_filter(p)
    # the faulty side of refinement pairs also needs its links and what running it said
    extra = (", parent_program_id, status, value, error_type, error_message, error_line, timeout_s, injection_kind"
             if p.task == "refine" else ", parent_program_id")
    query = f"""SELECT program_id, problem_id, dataset, split AS source_split, question, program,
                       gold AS answer, gold_text AS answer_text, label, teacher, origin, v.verdict{extra}
                FROM {CANDIDATES} WHERE {where} AND {{range}}"""
    df = pa.concat_tables([r.read_all() for r in ranged(store, query, params)]).to_pandas()
    store.release()  # deduplication takes a while: other processes may use the store meanwhile
    return df.sort_values("program_id", kind="stable").reset_index(drop=True)


def _check(p: CurateParams) -> None:
    if p.task not in TASKS:
        raise CurateError(f"unknown --task {p.task!r}; choose from {', '.join(TASKS)}")
    if p.review not in REVIEW_MODES:
        raise CurateError(f"unknown --review {p.review!r}; choose from {', '.join(REVIEW_MODES)}")
    if p.dedup not in DEDUP:
        raise CurateError(f"unknown --dedup {p.dedup!r}; choose from {', '.join(DEDUP)}")
    check_numbers(("--max-per-problem", p.max_per_problem, COUNT), ("--validation", p.validation_fraction, FRACTION),
                  ("--test", p.test_fraction, FRACTION), ("--seed", p.seed, SEED),
                  ("--min-agreement", p.min_agreement, FRACTION))
    if not p.validation_fraction + p.test_fraction < 1:
        raise CurateError("--validation + --test must be below 1")
    check_names("--labels", p.labels, LABELS, "label")
    check_names("--origins", p.origins, ORIGINS, "origin")


def _check_against_store(store: Store, p: CurateParams) -> None:
    """Every dataset named must be in the store, and every origin named must have programs there."""
    check_names("--dataset", p.datasets, [r[0] for r in store.con.execute(
        "SELECT DISTINCT dataset FROM problems").fetchall()], "dataset")
    if p.origins:
        held = [r[0] for r in store.con.execute("SELECT DISTINCT origin FROM programs").fetchall()]
        for origin in p.origins:
            if origin not in held:
                raise CurateError(f"--origins: the store has no programs of origin {origin!r}"
                                  f" (it has: {', '.join(sorted(held)) or 'no programs'})")


def label_counts(store: Store, datasets: list[str] | None = None) -> dict[str, int]:
    """Programs per current label (``(not executed)`` for none), most first, of ``datasets`` [default: all]."""
    counts: Counter = Counter()
    query = ("SELECT coalesce(label, '(not executed)') AS label, count(*) AS n FROM labeled_programs WHERE {range}"
             + (" AND dataset IN (SELECT unnest(?))" if datasets else "") + " GROUP BY 1")
    for reader in ranged(store, query, [datasets] if datasets else None):
        for batch in reader:
            counts.update(dict(zip(batch.column("label").to_pylist(), batch.column("n").to_pylist())))
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _nothing_selected(store: Store, p: CurateParams) -> CurateError:
    """Why a curation selected nothing: what the filters match, one step at a time."""
    what = "refinement pairs" if p.task == "refine" else "programs"
    origins = p.resolved_origins()
    counts = label_counts(store, p.datasets)
    have = ", ".join(f"{label} {n}" for label, n in counts.items()) or "no programs"
    return CurateError(f"the filters select no {what} (labels {','.join(p.resolved_labels())}; origins "
                       f"{','.join(origins) if origins else 'all'}; datasets {','.join(p.datasets or []) or 'all'}); "
                       f"the store has: {have}; nothing was stored")


def _select(df: pd.DataFrame, p: CurateParams, program_col: str, id_col: str, shortest: bool = True) -> pd.DataFrame:
    """Steps 2-4 on ``df``: dedup within problems, keep K per problem (the shortest, or a seeded
    random K when ``shortest`` is False), assign splits. ``attrs["too_deep"]``: programs too
    deep to analyze among ``df``'s."""
    info = _analyze_all(df[program_col].tolist(), p.dedup)
    deep = too_deep(info)
    df["_key"] = [i[2] for i in info]
    if shortest:
        df["_order"] = [_size(i) for i in info]
    else:
        df["_order"] = [int(hashlib.sha256(f"{p.seed}:{i}".encode()).hexdigest()[:15], 16) for i in df[id_col]]
    df = df.sort_values(["problem_id", "_order", id_col], kind="stable")
    if p.dedup != "none":
        df = df.drop_duplicates(subset=["problem_id", "_key"], keep="first")
    df = df.groupby("problem_id", sort=False).head(p.max_per_problem)
    df["split"] = [_split_for(pid, src, p) for pid, src in zip(df["problem_id"], df["source_split"])]
    df.attrs["too_deep"] = deep
    return df


def _split_sql(p: CurateParams) -> str:
    """:func:`_split_for` in SQL, over columns ``problem_id`` and ``source_split``."""
    u = f"CAST(('0x' || left(sha256('{int(p.seed)}:' || problem_id), 12)) AS BIGINT) / {float(16**12)!r}"
    return (f"CASE WHEN source_split IN ('test', 'validation') THEN source_split "
            f"WHEN {u} < {float(p.test_fraction)!r} THEN 'test' "
            f"WHEN {u} < {float(p.test_fraction) + float(p.validation_fraction)!r} THEN 'validation' ELSE 'train' END")


@contextlib.contextmanager
def _program_snapshot(store: Store, p: CurateParams) -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """Steps 1-4 for a program snapshot, out of the store's memory: yields a scratch DuckDB
    file and its path, holding ``snap``, the snapshot's rows (:data:`TASK_COLUMNS` ``program``)
    in their stored order (split, program_id).

    The candidates (with their program text, gold and verdict as read at this moment) and the
    questions of their problems are copied in range by range (:func:`ranged`), and the store
    is let go; programs are analyzed :data:`SCAN_ROWS` at a time; deduplication, K per
    problem and splits run in SQL with :func:`_select`'s order (``_size``, then program_id).
    Memory stays within the store's budget at any size: the scratch database (in a folder
    beside the store, where it spills) has half of it while the store is open, all of it
    after; every statement there has at most one join, with the narrow side hashed, so each
    spills on its own. The store appends ``snap`` by attaching the file
    (:func:`_append_snapshot`): batches appended through Python would sit in the store's
    memory until the commit.
    """
    where, params = _candidate_filter(p)
    tmp = tempfile.mkdtemp(prefix=".pad-curate-", dir=store.path.parent)
    path = os.path.join(tmp, "snapshot.duckdb")
    scratch = duckdb.connect(path, config={"memory_limit": store.share(0.5), "temp_directory": tmp,
                                           "preserve_insertion_order": False})
    try:
        cand = (f"SELECT program_id, problem_id, split AS source_split, label, program, dataset, gold AS answer, "
                f"gold_text AS answer_text, teacher, origin, v.verdict FROM {CANDIDATES} WHERE {where} AND {{range}}")
        for i, reader in enumerate(ranged(store, cand, params)):
            copy_into(scratch, "cand", reader, append=i > 0)
        # every question of the candidates' datasets (a scan: no join to hold in memory); the
        # snapshot's join keeps those it needs
        question = "SELECT problem_id, question FROM problems WHERE {range}" + (
            f" AND dataset IN ({', '.join('?' * len(p.datasets))})" if p.datasets else "")
        for i, reader in enumerate(ranged(store, question, list(p.datasets or []))):
            copy_into(scratch, "q", reader, append=i > 0)
        store.release()  # deduplication takes a while: other processes may use the store meanwhile
        scratch.execute(f"SET memory_limit = '{store.share(1)}'")
        n = scratch.execute("SELECT count(*) FROM cand").fetchall()[0][0]
        scratch.execute("CREATE TABLE info (program_id VARCHAR, _key VARCHAR, _order BIGINT)")
        # sorted by text, so that a program sampled several times (a third of a teacher's samples
        # repeat one) is analyzed once per batch (a sort spills; a GROUP BY on long strings would not)
        reader = scratch.cursor().sql("SELECT program_id, program FROM cand ORDER BY program").to_arrow_reader(SCAN_ROWS)
        with _analyzer(p.dedup, n) as run:
            for batch in reader:
                programs = batch.column("program").to_pylist()
                distinct = list(dict.fromkeys(programs))
                found = dict(zip(distinct, run(distinct)))
                info = [found[program] for program in programs]
                scratch.register("_pad_info", pa.table({
                    "program_id": batch.column("program_id"), "_key": pa.array([i[2] for i in info], pa.string()),
                    "_order": pa.array([_size(i) for i in info], pa.int64())}))
                scratch.execute("INSERT INTO info SELECT * FROM _pad_info")
                scratch.unregister("_pad_info")
        scratch.execute("""CREATE TABLE ranked AS SELECT program_id, problem_id, source_split, _key, _order
                           FROM cand JOIN info USING (program_id)""")
        dedup = ("QUALIFY row_number() OVER (PARTITION BY problem_id, _key ORDER BY _order, program_id) = 1"
                 if p.dedup != "none" else "")
        if dedup:
            scratch.execute(f"CREATE TABLE kept AS SELECT * FROM ranked {dedup}")
        scratch.execute(f"""CREATE TABLE chosen AS
            SELECT program_id, problem_id, {_split_sql(p)} AS split FROM {"kept" if dedup else "ranked"}
            QUALIFY row_number() OVER (PARTITION BY problem_id ORDER BY _order, program_id) <= ?""",
                        [int(p.max_per_problem)])
        columns = ", ".join(c if c != "question" else "q.question" for c in TASK_COLUMNS["program"])
        scratch.execute("""CREATE TABLE rows AS SELECT cand.*, chosen.split FROM cand JOIN chosen
                           USING (program_id, problem_id)""")
        scratch.execute(f"CREATE TABLE asked AS SELECT {columns} FROM rows JOIN q USING (problem_id)")
        scratch.execute("DROP TABLE rows")
        scratch.execute("SET preserve_insertion_order = true")  # snap's order is the snapshot's
        scratch.execute(f"CREATE TABLE snap AS SELECT * FROM asked ORDER BY split, program_id")
        scratch.execute("DROP TABLE asked")
        yield scratch, path
    finally:
        scratch.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _snapshot_counts(scratch: duckdb.DuckDBPyConnection) -> dict:
    """What a program snapshot's ``snap`` holds: rows per split and label, problems, programs, and
    ``too_deep`` (when any): candidates too deeply nested to analyze (kept by :func:`analyze`'s rule)."""
    def by(col: str) -> dict:
        return dict(scratch.execute(f"SELECT {col}, count(*) FROM snap GROUP BY 1 ORDER BY 1").fetchall())
    problems, programs = scratch.execute("SELECT count(DISTINCT problem_id), count(*) FROM snap").fetchall()[0]
    counts = {"splits": by("split"), "problems": problems, "programs": programs, "labels": by("label")}
    deep = scratch.execute(f"SELECT count(*) FROM info WHERE _order >= {TOO_DEEP * 10**9}").fetchall()[0][0]
    return counts | ({"too_deep": deep} if deep else {})


def _snapshot_hash(scratch: duckdb.DuckDBPyConnection, p: CurateParams) -> str:
    """:func:`content_hash` of ``snap``, read in batches."""
    h = hashlib.sha256(p.to_json().encode())
    for batch in scratch.cursor().sql("SELECT split, program_id, program, verdict FROM snap").to_arrow_reader(SCAN_ROWS):
        for split, pid, prog, verdict in zip(*(batch.column(i).to_pylist() for i in range(4))):
            h.update(_hash_line(split, "", pid, prog, verdict))
    return h.hexdigest()[:16]


def _hash_line(split: str, faulty_id: str, pid: str, program: str, verdict: str | None) -> bytes:
    """One row's part of a snapshot's content hash (unreviewed rows hash as before verdicts)."""
    judged = f"\x1f{verdict}" if isinstance(verdict, str) else ""
    return f"{split}\x1f{faulty_id + chr(31) if faulty_id else ''}{pid}\x1f{content_id(program)}{judged}\n".encode()


def build(store: Store, p: CurateParams) -> pd.DataFrame:
    """The snapshot rows for ``p`` (not stored)."""
    _check(p)
    if p.task == "refine":
        return build_refine(store, p)
    with _program_snapshot(store, p) as (scratch, _):
        return scratch.sql("SELECT * FROM snap").df()


def build_refine(store: Store, p: CurateParams) -> pd.DataFrame:
    """Refinement pairs (faulty program + feedback -> correct program) for ``p``; ``attrs["too_deep"]``:
    programs too deep to analyze (kept by :func:`analyze`'s rule) among the candidates."""
    faulty = _candidates(store, p)
    good = _candidates(store, CurateParams(labels=["correct"], datasets=p.datasets, origins=list(ORIGINS),
                                           review=p.review))
    cols = TASK_COLUMNS["refine"]
    if faulty.empty or good.empty:
        return pd.DataFrame(columns=cols)
    sizes = _analyze_all(good["program"].tolist(), "none")
    good = good.assign(_size=[_size(i) for i in sizes])
    good = good[["program_id", "problem_id", "program", "parent_program_id", "teacher", "_size"]]
    f = faulty.rename(columns={"program_id": "faulty_program_id", "program": "faulty_program"})
    f = f.drop(columns=["teacher"])
    parent = f.merge(good.drop(columns=["problem_id", "parent_program_id"]),
                     left_on="parent_program_id", right_on="program_id")  # injected / student variant -> its parent
    child = f.drop(columns=["parent_program_id"]).merge(  # a fix made from the faulty program
        good.drop(columns=["problem_id"]), left_on="faulty_program_id", right_on="parent_program_id")
    pairs = [parent.assign(_rank=0), child.assign(_rank=1)]
    if p.siblings:
        sib = f.merge(good.drop(columns=["parent_program_id"]), on="problem_id")
        pairs.append(sib.assign(_rank=2))
    df = pd.concat(pairs, ignore_index=True)
    if df.empty:
        return pd.DataFrame(columns=cols)
    # one target per faulty program: a linked one first, then the shortest correct program
    df = df.sort_values(["faulty_program_id", "_rank", "_size", "program_id"], kind="stable")
    df = df.drop_duplicates(subset=["faulty_program_id"], keep="first").reset_index(drop=True)
    df["feedback"] = [feedback(r.status, r.value, r.error_type, r.error_message, r.error_line, r.timeout_s)
                      for r in df.itertuples(index=False)]
    # faulty programs: a seeded random K per problem, so every kind of error is represented
    # (shortest-first would always leave out programs that do not parse)
    df = _select(df, p, "faulty_program", "faulty_program_id", shortest=False)
    out = df[cols].sort_values(["split", "faulty_program_id"]).reset_index(drop=True)
    out.attrs["too_deep"] = df.attrs["too_deep"] + too_deep(sizes)
    return out


def content_hash(rows: pd.DataFrame, p: CurateParams) -> str:
    h = hashlib.sha256(p.to_json().encode())
    faulty = rows["faulty_program_id"] if "faulty_program_id" in rows else [""] * len(rows)
    verdicts = rows["verdict"] if "verdict" in rows else [None] * len(rows)
    for split, fid, pid, prog, verdict in zip(rows["split"], faulty, rows["program_id"], rows["program"], verdicts):
        h.update(_hash_line(split, fid, pid, prog, verdict))
    return h.hexdigest()[:16]


def snapshot_task(store: Store, name: str) -> str:
    """``program`` or ``refine``: what snapshot ``name`` holds (CurateError if there is none)."""
    rows = store.con.execute("SELECT params FROM curations WHERE name = ?", [name]).fetchall()
    if not rows:
        raise CurateError(f"no curated snapshot named {name!r} (see `pad curate --list`)")
    return json.loads(rows[0][0]).get("task", "program")


def curate(store: Store, name: str, p: CurateParams | None = None) -> dict:
    """Create snapshot ``name``; returns its counts and hash (``created`` False if it existed)."""
    p = p or CurateParams()
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CurateError(f"bad snapshot name {name!r}: use letters, digits, '-', '_' and '.'")
    _check(p)
    _check_against_store(store, p)
    if p.task == "program":  # streamed: the snapshot's text never sits in memory
        with _program_snapshot(store, p) as (scratch, path):
            counts = _snapshot_counts(scratch)
            if not counts["programs"]:
                raise _nothing_selected(store, p)
            digest = _snapshot_hash(scratch, p)
            scratch.close()
            return _append_snapshot(store, name, p, digest, counts, path)
    rows = build(store, p)
    if rows.empty:
        raise _nothing_selected(store, p)
    counts = {"splits": dict(Counter(rows["split"])), "problems": int(rows["problem_id"].nunique()),
              "programs": len(rows), "labels": dict(Counter(rows["label"])),
              "injection_kinds": dict(Counter(k for k in rows["injection_kind"] if isinstance(k, str)))}
    if rows.attrs.get("too_deep"):
        counts["too_deep"] = rows.attrs["too_deep"]
    store.con.register("_pad_cur", rows)
    try:
        return _store_snapshot(store, name, p, content_hash(rows, p), counts, "SELECT * FROM _pad_cur")
    finally:
        store.con.unregister("_pad_cur")


def _append_snapshot(store: Store, name: str, p: CurateParams, digest: str, counts: dict, path: str) -> dict:
    """:func:`_store_snapshot` of table ``snap`` of the DuckDB file ``path``, attached read-only:
    one ``INSERT ... SELECT`` that DuckDB writes out as it goes, in the file's row order, with
    the store's memory capped (an append needs a few blocks at a time)."""
    store.con.execute(f"ATTACH {sql_literal(path)} AS pad_snapshot (READ_ONLY)")
    try:
        with store.capped("256MB"):  # or the budget, when lower
            return _store_snapshot(store, name, p, digest, counts, "SELECT * FROM pad_snapshot.snap")
    finally:
        store.con.execute("DETACH pad_snapshot")


def _store_snapshot(store: Store, name: str, p: CurateParams, digest: str, counts: dict, rows_sql: str) -> dict:
    """Store snapshot ``name`` (its rows: ``rows_sql``, with the task's columns, in the order
    stored) unless it exists: the same content changes nothing, other content is a CurateError."""
    existing = store.con.execute("SELECT content_hash FROM curations WHERE name = ?", [name]).fetchall()
    if existing:
        if existing[0][0] == digest:
            return {"name": name, "created": False, "content_hash": digest, **counts}
        raise CurateError(f"snapshot {name!r} exists with different content (hash {existing[0][0]}, "
                          f"now {digest}); snapshots are immutable: choose a new name")
    table, cols = TASK_TABLES[p.task], ", ".join(TASK_COLUMNS[p.task])
    with store.transaction():
        store.con.execute("INSERT INTO curations (name, params, content_hash, counts) VALUES (?, ?, ?, ?)",
                          [name, p.to_json(), digest, json.dumps(counts)])
        store.con.execute(f"INSERT INTO {table} (name, {cols}) SELECT ?, {cols} FROM ({rows_sql})", [name])
    return {"name": name, "created": True, "content_hash": digest, **counts}


def list_curations(store: Store) -> pd.DataFrame:
    return store.df("SELECT name, content_hash, created_at, counts, params FROM curations ORDER BY created_at")
