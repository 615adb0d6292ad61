"""``pad curate NAME``: an immutable, reproducible snapshot of train/validation/test splits.

Steps, all deterministic for the same store and parameters:
1. **filter** ``labeled_programs`` by label (default only ``correct``), datasets, origins;
   programs a reviewer rejected (``reviews`` table, when the review app has written one)
   are left out;
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
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

import pandas as pd

from .store import Store, content_id

DEDUP = ("none", "exact", "ast")


class CurateError(ValueError):
    pass


@dataclass
class CurateParams:
    labels: list[str] = field(default_factory=lambda: ["correct"])
    datasets: list[str] | None = None
    origins: list[str] | None = None
    dedup: str = "ast"
    max_per_problem: int = 4
    validation_fraction: float = 0.05
    test_fraction: float = 0.05
    seed: int = 0
    exclude_rejected: bool = True


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


def analyze(program: str, mode: str) -> tuple[int, int, str]:
    """``(statements, characters, dedup key)`` from one parse of ``program``."""
    exact = "\n".join(line.rstrip() for line in program.strip().splitlines())
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return 10**9, len(program), hashlib.sha256(exact.encode()).hexdigest()
    stmts = sum(isinstance(n, ast.stmt) for n in ast.walk(tree))
    if mode == "ast":
        _drop_docstrings(tree)
        key = hashlib.sha256(ast.dump(_Canon().visit(tree), annotate_fields=False).encode()).hexdigest()
    elif mode == "exact":
        key = hashlib.sha256(exact.encode()).hexdigest()
    else:
        key = ""
    return stmts, len(program), key


def _analyze_all(programs: list[str], mode: str) -> list[tuple[int, int, str]]:
    """``analyze`` over many programs; in worker processes when there are many."""
    if len(programs) < 20_000 or (os.cpu_count() or 1) < 2:
        return [analyze(p, mode) for p in programs]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=os.cpu_count()) as ex:
        return list(ex.map(analyze, programs, itertools.repeat(mode), chunksize=2000))


def _split_for(problem_id: str, source_split: str, p: CurateParams) -> str:
    if source_split in ("test", "validation"):
        return source_split
    u = int(hashlib.sha256(f"{p.seed}:{problem_id}".encode()).hexdigest()[:12], 16) / 16**12
    if u < p.test_fraction:
        return "test"
    if u < p.test_fraction + p.validation_fraction:
        return "validation"
    return "train"


def _candidates(store: Store, p: CurateParams) -> pd.DataFrame:
    where, params = [f"label IN ({', '.join('?' * len(p.labels))})"], list(p.labels)
    for col, values in (("dataset", p.datasets), ("origin", p.origins)):
        if values:
            where.append(f"{col} IN ({', '.join('?' * len(values))})")
            params += list(values)
    has_reviews = store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'reviews'")
    if p.exclude_rejected and has_reviews:
        where.append("program_id NOT IN (SELECT program_id FROM reviews "
                     "QUALIFY row_number() OVER (PARTITION BY program_id ORDER BY reviewed_at DESC) = 1 "
                     "AND verdict = 'reject')")
    return store.df(f"""SELECT program_id, problem_id, dataset, split AS source_split, question, program,
                               gold AS answer, gold_text AS answer_text, label, teacher, origin
                        FROM labeled_programs WHERE {' AND '.join(where)} ORDER BY program_id""", params)


def build(store: Store, p: CurateParams) -> pd.DataFrame:
    """The snapshot rows for ``p`` (not stored)."""
    if p.dedup not in DEDUP:
        raise CurateError(f"unknown --dedup {p.dedup!r}; choose from {', '.join(DEDUP)}")
    if p.max_per_problem < 1:
        raise CurateError("--max-per-problem must be >= 1")
    if not 0 <= p.validation_fraction + p.test_fraction < 1:
        raise CurateError("validation + test fractions must be in [0, 1)")
    df = _candidates(store, p)
    if df.empty:
        return df.assign(split=pd.Series(dtype=str))
    info = _analyze_all(df["program"].tolist(), p.dedup)
    df["_stmts"] = [i[0] for i in info]
    df["_chars"] = [i[1] for i in info]
    df["_key"] = [i[2] for i in info]
    df = df.sort_values(["problem_id", "_stmts", "_chars", "program_id"], kind="stable")
    if p.dedup != "none":
        df = df.drop_duplicates(subset=["problem_id", "_key"], keep="first")
    df = df.groupby("problem_id", sort=False).head(p.max_per_problem)
    df["split"] = [_split_for(pid, src, p) for pid, src in zip(df["problem_id"], df["source_split"])]
    cols = ["split", "problem_id", "program_id", "dataset", "question", "program", "answer",
            "answer_text", "label", "teacher", "origin"]
    return df[cols].sort_values(["split", "program_id"]).reset_index(drop=True)


def content_hash(rows: pd.DataFrame, p: CurateParams) -> str:
    h = hashlib.sha256(json.dumps(asdict(p), sort_keys=True).encode())
    for split, pid, prog in zip(rows["split"], rows["program_id"], rows["program"]):
        h.update(f"{split}\x1f{pid}\x1f{content_id(prog)}\n".encode())
    return h.hexdigest()[:16]


def curate(store: Store, name: str, p: CurateParams | None = None) -> dict:
    """Create snapshot ``name``; returns its counts and hash (``created`` False if it existed)."""
    p = p or CurateParams()
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise CurateError(f"bad snapshot name {name!r}: use letters, digits, '-', '_' and '.'")
    rows = build(store, p)
    digest = content_hash(rows, p)
    counts = {"splits": dict(Counter(rows["split"])), "problems": int(rows["problem_id"].nunique()),
              "programs": len(rows), "labels": dict(Counter(rows["label"]))}
    existing = store.con.execute("SELECT content_hash FROM curations WHERE name = ?", [name]).fetchall()
    if existing:
        if existing[0][0] == digest:
            return {"name": name, "created": False, "content_hash": digest, **counts}
        raise CurateError(f"snapshot {name!r} exists with different content (hash {existing[0][0]}, "
                          f"now {digest}); snapshots are immutable: choose a new name")
    with store.transaction():
        store.con.execute("INSERT INTO curations (name, params, content_hash, counts) VALUES (?, ?, ?, ?)",
                          [name, json.dumps(asdict(p), sort_keys=True), digest, json.dumps(counts)])
        store.con.register("_pad_cur", rows.assign(name=name))
        try:
            store.con.execute("INSERT INTO curated_examples (name, split, problem_id, program_id, dataset, "
                              "question, program, answer, answer_text, label, teacher, origin) "
                              "SELECT name, split, problem_id, program_id, dataset, question, program, "
                              "answer, answer_text, label, teacher, origin FROM _pad_cur")
        finally:
            store.con.unregister("_pad_cur")
    return {"name": name, "created": True, "content_hash": digest, **counts}


def list_curations(store: Store) -> pd.DataFrame:
    return store.df("SELECT name, content_hash, created_at, counts, params FROM curations ORDER BY created_at")
