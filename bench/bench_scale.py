"""Scale benchmark: a TinyGSM-size pipeline, import -> execute -> curate -> HF export.

    .venv/bin/python bench/bench_scale.py               # 1M realistic programs through every stage
    .venv/bin/python bench/bench_scale.py --data direct --n 3000000  # a realistic store: curate, export, review
    .venv/bin/python bench/bench_scale.py --data uniform # 1M uniform records: every stage from import on
    .venv/bin/python bench/bench_scale.py --data uniform --full   # 10M
    .venv/bin/python bench/bench_scale.py --n 20000     # a quick run
    .venv/bin/python bench/bench_scale.py --full --workdir /tmp/bs10m --resume   # 10M, over several sittings

``--data realistic`` (the default) writes ``bench/realistic.py``'s programs (GSM8K- and
SVAMP-style problems, two teachers x four samples, the styles teachers write, every label,
long outliers) as JSONL files and runs every stage on them: import, execute (timeout 0.25 s),
inject-errors, curate, refine pairs, export, review. ``--data direct`` writes its store
straight into DuckDB (labels as a run leaves them, injected variants): import, execute and
inject-errors are not run; curate, refine pairs, export and review are measured.

``--data uniform`` writes N synthetic GSM8K-style records (a question, a ``#### N`` gold answer, a
``def solution()`` program; 4 programs per question, of which one is a renamed copy and one a
copy with a docstring and comments, so AST dedup matters; ~12% faulty; ~2% wrapped in prose and
a markdown fence) and runs every stage on one store, each beside a baseline measured in the
same run:

| stage | pad | baseline |
|---|---|---|
| import | ``pad import-programs`` (JSONL to store) | DuckDB ``read_json`` of the same file into a table in memory |
| execute | ``pad execute`` end to end | a plain ``exec`` loop, 1 core, no sandbox (bench_execute.py's ceiling), on a sample |
| curate | ``pad curate --dedup ast`` | a plain ``ast.dump(ast.parse(p))`` loop, 1 core, on a sample |
| refine pairs | ``pad curate --task refine --siblings`` (programs analyzed: correct + faulty) | the same AST loop |
| export | ``pad export --format hf`` | ``datasets.Dataset(<the same rows as Arrow>).save_to_disk`` |
| review | the data calls of the review app (``pad_data/review/app.py``): first load, a label filter, a text search | goal: 1 s |

With ``--workdir``, a realistic run keeps its results so far in ``bench-state.json`` there, and
``--resume`` goes on from the first stage it did not finish (a stage's seconds summed over its
attempts, its peaks the largest of any).

Also: the peak RSS of this process in each stage (sampled every 20 ms; baselines are stages of
their own) and the peak summed PSS of its whole process tree (every second), the largest child process's ru_maxrss (an upper bound: a forked child counts
the pages it inherits), store and JSONL sizes.
Results go to ``bench/results/scale.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from pad_data import review as rv  # noqa: E402
from pad_data.cli.commands import PlainProgress  # noqa: E402
from pad_data.stages.curate import REFINE_LABELS, CurateParams, curate  # noqa: E402
from pad_data.stages.execute import execute  # noqa: E402
from pad_data.stages.inject import inject_errors  # noqa: E402
from pad_data.stages.export import export  # noqa: E402
from pad_data.stages.ingest import import_programs  # noqa: E402
from pad_data.store import Store, any_of  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import realistic  # noqa: E402


SAMPLE = 20_000  # programs in the single-core baselines of execute and curate
PIPELINE = ("import", "execute", "inject", "curate", "curate-refine", "export", "review")  # the stages whose peak RSS is pad's

TEMPLATES = [
    ("{name} packs {a} boxes of {b} pencils for the school fair and then finds {c} loose pencils in a drawer. "
     "How many pencils does {name} have for the fair?", "a * b + c"),
    ("A bakery bakes {a} trays of {b} muffins every morning. By noon it has sold all but {c} of them. "
     "How many muffins did the bakery sell by noon?", "a * b - c"),
    ("{name} saves ${a} a week for {b} weeks, then spends ${c} on a bicycle helmet. "
     "How many dollars does {name} have left?", "a * b - c"),
    ("A farm has {a} rows of apple trees with {b} trees in each row. The farmer plants {c} more trees. "
     "How many apple trees are on the farm now?", "a * b + c"),
]
NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Mark", "Ken", "Alexis", "Tina", "Randy", "Joy"]


def programs_for(formula: str, a: int, b: int, c: int, rng: random.Random) -> list[str]:
    """Four samples: the canonical one, a renamed copy and a commented copy (AST duplicates of it),
    and a distinct one (faulty ~1 time in 3)."""
    op = formula.split()[3]
    p0 = (f"def solution():\n    groups = {a}\n    per_group = {b}\n    change = {c}\n"
          f"    total = groups * per_group {op} change\n    return total\n")
    p1 = (f"def solution():\n    n = {a}\n    k = {b}\n    m = {c}\n"
          f"    result = n * k {op} m\n    return result\n")
    p2 = (f'def solution():\n    """Count them: {a} groups of {b}, then {c}."""\n    groups = {a}  # groups\n'
          f"    per_group = {b}\n    change = {c}\n    total = groups * per_group {op} change  # the answer\n"
          f"    return total\n")
    p3 = f"def solution():\n    per_group = {b}\n    groups = {a}\n    return per_group * groups {op} {c}\n"
    r = rng.random()
    if r < 0.12:
        p3 = p3.replace(f"{op} {c}", f"{op} extra")  # NameError
    elif r < 0.24:
        p3 = p3.replace(f"{op} {c}", f"{op} {c} + 1")  # a wrong answer
    elif r < 0.25:
        p3 = p3.replace("return", "return (")  # a syntax error
    return [p0, p1, p2, p3]


def write_corpus(path: Path, n: int, seed: int = 0) -> dict:
    """n GSM8K-style JSONL records, 4 per question (see the module docstring)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for q in range((n + 3) // 4):
            text, formula = TEMPLATES[q % len(TEMPLATES)]
            a, b, c = rng.randint(3, 400), rng.randint(2, 60), rng.randint(1, 90)
            gold = eval(formula, {"a": a, "b": b, "c": c})  # noqa: S307 - our own formula
            question = f"Day {q // len(TEMPLATES)}: " + text.format(name=NAMES[q % len(NAMES)], a=a, b=b, c=c)
            answer = f"{a} * {b} = <<{a}*{b}={a * b}>>{a * b}. The answer is {gold}.\n#### {gold:,}"
            for k, prog in enumerate(programs_for(formula, a, b, c, rng)[:n - 4 * q]):
                if rng.random() < 0.02:
                    prog = f"Here is the solution:\n```python\n{prog}```\nIt returns {gold}."
                f.write(json.dumps({"question": question, "answer": answer, "program": prog,
                                    "model": "teacher-a" if k % 2 == 0 else "teacher-b"}) + "\n")
    return {"records": n, "problems": (n + 3) // 4}


class TimedStore(Store):
    """A store that counts the seconds spent in its transactions (for import: the write)."""
    write_s = 0.0

    @contextlib.contextmanager
    def transaction(self):
        t = time.perf_counter()
        with super().transaction() as con:
            yield con
        self.write_s += time.perf_counter() - t


# ---------------------------------------------------------------------- memory
class Peak:
    """Per stage: the peak RSS of this process (sampled every 20 ms) and the peak summed PSS of
    this process and every process below it (sandbox workers, stage workers; every second).
    With a :class:`Checkpoint`, both and each stage's seconds so far are saved every 10 s."""

    def __init__(self, checkpoint: "Checkpoint | None" = None) -> None:
        self.checkpoint = checkpoint
        self.stage, self.peaks, self.tree, self._stop = "setup", {}, {}, False
        if checkpoint:
            self.peaks, self.tree = dict(checkpoint.state["peaks"]), dict(checkpoint.state["tree_pss"])
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def rss_mb() -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    @staticmethod
    def tree_pss_mb() -> float:
        """Summed PSS of this process and its descendants (shared pages counted once in all)."""
        total, todo = 0, [os.getpid()]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as fh:
                        todo.extend(int(c) for c in fh.read().split())
            except (OSError, StopIteration, ValueError):  # a process that ended meanwhile
                continue
        return total / 1024

    def _run(self) -> None:
        tick = 0
        while not self._stop:
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), self.rss_mb())
            if tick % 50 == 0:
                self.tree[self.stage] = max(self.tree.get(self.stage, 0.0), self.tree_pss_mb())
            if self.checkpoint and tick % 500 == 0:
                self.checkpoint.save(self)
            tick += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop = True

    def enter(self, stage: str) -> None:
        # what the stage before freed goes back first: glibc keeps freed memory mapped, and it
        # would count as this stage's
        import ctypes
        import gc

        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)
        self.stage = stage
        self.peaks[stage] = max(self.peaks.get(stage, 0.0), self.rss_mb())
        self.tree[stage] = max(self.tree.get(stage, 0.0), self.tree_pss_mb())
        if self.checkpoint:
            self.checkpoint.start(stage)


class Checkpoint:
    """A run's results so far in ``WORK/bench-state.json``, saved after each stage and every 10 s
    within one, so that ``--resume`` goes on from the first unfinished stage (a 10M run outlasts
    a sitting; pad's stages resume where they stopped). A stage's seconds are summed over its
    attempts, its peaks are the largest of any attempt."""

    def __init__(self, work: Path, resume: bool) -> None:
        self.path = work / "bench-state.json"
        fresh = {"out": {}, "done": [], "spent": {}, "peaks": {}, "tree_pss": {}, "attempts": 0}
        self.state = {**fresh, **json.loads(self.path.read_text())} if resume and self.path.exists() else fresh
        self.state["attempts"] += 1
        self.stage, self.since, self._lock = None, time.perf_counter(), threading.Lock()

    def done(self, stage: str) -> bool:
        return stage in self.state["done"]

    def start(self, stage: str) -> None:
        self.stage, self.since = stage, time.perf_counter()

    def seconds(self) -> float:
        """The current stage's seconds, this attempt's and those of earlier ones."""
        return self.state["spent"].get(self.stage, 0.0) + time.perf_counter() - self.since

    def save(self, peak: Peak | None = None, finished: dict | None = None) -> None:
        with self._lock:  # the sampling thread saves too
            self._save(peak, finished)

    def _save(self, peak: Peak | None, finished: dict | None) -> None:
        state = dict(self.state, spent=dict(self.state["spent"]))
        if self.stage:
            state["spent"][self.stage] = self.seconds()
        if peak:
            state["peaks"], state["tree_pss"] = dict(peak.peaks), dict(peak.tree)
        if finished is not None:
            state["out"] = {**state["out"], **finished}
            state["done"] = state["done"] + [self.stage]
            self.state, self.stage = state, None
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.path)

    def finish(self, peak: Peak, out: dict, seconds_key: str | None = None, **results) -> None:
        """Record the current stage as done with ``results`` (also put in ``out``), and its
        seconds as ``seconds_key``."""
        if seconds_key:
            results[seconds_key] = self.seconds()
        out.update(results)
        self.save(peak, finished=results)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# ---------------------------------------------------------------------- baselines
def exec_loop(programs: list[str]) -> float:
    """Programs/s of a plain in-process exec loop (no sandbox, 1 core)."""
    t = time.perf_counter()
    for src in programs:
        try:
            g: dict = {}
            exec(compile(src, "<program>", "exec"), g)  # noqa: S102 - our own synthetic programs
            g["solution"]()
        except Exception:  # noqa: BLE001 - faulty programs are part of the corpus
            pass
    return len(programs) / (time.perf_counter() - t)


def bare_datasets_write(db: Path, out: Path) -> None:
    """The curated rows, as Arrow, written by ``datasets`` (holds them all in memory)."""
    import datasets

    datasets.disable_progress_bars()
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.sql("SELECT question, program, answer, answer_text, problem_id, program_id, dataset, label, "
                       "teacher, origin FROM curated_examples WHERE name = 'scale'").to_arrow_table()
    datasets.Dataset(rows).save_to_disk(str(out))


def ast_loop(programs: list[str]) -> float:
    """Programs/s of a plain AST-dump loop (1 core): the work AST dedup cannot avoid."""
    t = time.perf_counter()
    for src in programs:
        try:
            ast.dump(ast.parse(src))
        except SyntaxError:
            pass
    return len(programs) / (time.perf_counter() - t)


# ---------------------------------------------------------------------- the review app
def review_calls(db: str, filters: rv.Filters) -> float:
    """Seconds for one run of the review app's data calls (the app reruns them all on each
    interaction): filter choices and overview, then the Programs tab's count, page, current
    row and its detail."""
    t = time.perf_counter()
    with rv.reading(db) as store:
        rv.choices(store)
        rv.overview(store)
    with rv.reading(db) as store:
        rv.count(store, filters)
        rv.page(store, filters, 0, 50)
        current = rv.page(store, filters, 0, 1)
        if len(current):
            rv.program_detail(store, current.program_id.iloc[0])
    return time.perf_counter() - t


# ---------------------------------------------------------------------- the run
def run(n: int, work: Path, workers: int, timeout: float, data: str = "realistic", resume: bool = False) -> dict:
    peak = Peak(Checkpoint(work, resume))
    try:
        return _run(n, work, workers, timeout, data, peak)
    finally:  # also when stopped (Ctrl-C): the stage's seconds so far count on --resume
        peak.stop()
        peak.checkpoint.save(peak)


def _run(n: int, work: Path, workers: int, timeout: float, data: str, peak: Peak) -> dict:
    out: dict = {"programs": n, "data": data}
    src, db = work / "programs.jsonl", work / "pad.duckdb"

    def size() -> float:
        return db.stat().st_size / 2**20

    if data == "direct":
        # in a child process: the generator's Python lists would stay in this process's RSS
        _, out["build_s"] = timed(lambda: subprocess.run([sys.executable, str(ROOT / "bench" / "realistic.py"), str(db),
                                                          "--n", str(n), "--injected", str(round(n * 0.004))],
                                                         check=True, stdout=subprocess.DEVNULL))
        out["store_mb_build"] = size()
        with Store(db) as st:
            out["problems"] = st.scalar("SELECT count(*) FROM problems")
            out["programs"] = st.scalar("SELECT count(*) FROM programs")
            out["labels"] = dict(st.con.execute("SELECT label, count(*) FROM program_labels GROUP BY 1 "
                                                "ORDER BY 2 DESC").fetchall())
        print(f"wrote a realistic store of {out['programs']:,} programs in {out['build_s']:.1f} s", flush=True)
        with Store(db) as st:
            sample = [p for (p,) in st.con.execute(f"SELECT program FROM programs USING SAMPLE {min(n, SAMPLE)} "
                                                   "ROWS (reservoir, 1)").fetchall()]
        return _curate_onwards(out, db, work, sample, peak, size)
    if data == "realistic":
        return _realistic(out, n, db, work, workers, timeout, peak, size)
    (info, out["generate_s"]) = timed(lambda: write_corpus(src, n))
    out["problems"] = info["problems"]
    out["jsonl_mb"] = src.stat().st_size / 2**20
    print(f"wrote {n:,} records ({out['jsonl_mb']:,.0f} MB) in {out['generate_s']:.1f} s", flush=True)

    # import, and DuckDB's bare read_json of the same file
    def bare():
        con = duckdb.connect()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{src}', format='newline_delimited')")
        rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
        con.close()
        return rows

    peak.enter("read_json (baseline)")
    rows, out["read_json_s"] = timed(bare)
    assert rows == n
    peak.enter("import")
    with TimedStore(db) as st:
        r, out["import_s"] = timed(lambda: import_programs(st, src, "scale", split="train"))
        out["import_write_s"] = st.write_s
    assert r["read"] == n and r["added"] == n, r
    out["import_rows_per_s"] = n / out["import_s"]
    out["import_read_rows_per_s"] = n / (out["import_s"] - out["import_write_s"])
    out["read_json_rows_per_s"] = n / out["read_json_s"]
    out["import_vs_read_json"] = out["import_rows_per_s"] / out["read_json_rows_per_s"]
    out["store_mb_import"] = size()
    print(f"import: {out['import_rows_per_s']:,.0f} rows/s, read_json {out['read_json_rows_per_s']:,.0f} rows/s "
          f"({out['import_vs_read_json']:.1%}); without the store write (parse, validate, extract, hash) "
          f"{out['import_read_rows_per_s']:,.0f} rows/s", flush=True)

    # execute, and a plain exec loop on a sample
    peak.enter("execute")
    with Store(db) as st:
        shown = PlainProgress("executing")  # a line on stderr every PAD_PROGRESS_INTERVAL s: 1M programs take minutes
        r, out["execute_s"] = timed(lambda: execute(st, workers=workers, timeout=timeout, progress=shown))
        shown.finish()
        sample = [p for (p,) in st.con.execute(f"SELECT program FROM programs USING SAMPLE {min(n, SAMPLE)} ROWS "
                                               "(reservoir, 1)").fetchall()]
    assert r["executed"] == n, r
    out["labels"] = r["labels"]
    out["execute_programs_per_s"] = n / out["execute_s"]
    out["exec_loop_programs_per_s"] = exec_loop(sample)
    # the largest child's ru_maxrss: an upper bound only (a forked child counts the pages it inherits)
    out["sandbox_workers_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out["store_mb_execute"] = size()
    print(f"execute: {out['execute_programs_per_s']:,.0f} programs/s, plain exec loop (1 core) "
          f"{out['exec_loop_programs_per_s']:,.0f}/s; labels {r['labels']}", flush=True)
    return _curate_onwards(out, db, work, sample, peak, size)


def _read_json_baseline(paths: list[str]) -> tuple[int, float]:
    """Rows and seconds of DuckDB's bare ``read_json`` of ``paths`` into one in-memory table."""
    def bare():
        con = duckdb.connect()
        files = ", ".join(f"'{p}'" for p in paths)
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_json([{files}], format='newline_delimited')")
        rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
        con.close()
        return rows
    return timed(bare)


def _realistic(out: dict, n: int, db: Path, work: Path, workers: int, timeout: float, peak: Peak, size) -> dict:
    """Every stage on realistic data (bench/realistic.py's JSONL files, one per dataset, split and
    teacher): import, execute, inject-errors (2 variants of the first n/10 correct programs by
    id, executed), then :func:`_curate_onwards`. Each stage is skipped if the checkpoint has it."""
    ck = peak.checkpoint
    out.update(ck.state["out"])
    if not ck.done("generate"):
        peak.enter("generate")
        files = realistic.write_files(work / "files", n)
        ck.finish(peak, out, "generate_s", files=files,
                  jsonl_mb=sum(Path(f["path"]).stat().st_size for f in files) / 2**20)
        print(f"wrote {n:,} programs in {len(files)} files ({out['jsonl_mb']:,.0f} MB) in {out['generate_s']:.1f} s",
              flush=True)
    files = out["files"]
    if not ck.done("read_json (baseline)"):
        peak.enter("read_json (baseline)")
        records = _read_json_baseline([f["path"] for f in files])[0]
        ck.finish(peak, out, "read_json_s", records=records)

    if not ck.done("import"):
        peak.enter("import")
        with TimedStore(db) as st:
            for f in files:  # a resumed import adds what the stopped one did not
                import_programs(st, f["path"], f["dataset"], split=f["split"], teacher=f["teacher"],
                                program_field="programs")
            import_s = ck.seconds()
            stored, problems = st.con.execute("SELECT (SELECT count(*) FROM programs), "
                                              "(SELECT count(*) FROM problems)").fetchone()
            assert stored == n, (stored, n)
            ck.finish(peak, out, import_s=import_s, import_write_s=st.write_s, problems=problems,
                      import_rows_per_s=n / import_s, import_records_per_s=out["records"] / import_s,
                      read_json_records_per_s=out["records"] / out["read_json_s"],
                      import_vs_read_json=out["read_json_s"] / import_s, store_mb_import=size())
        print(f"import: {out['import_rows_per_s']:,.0f} programs/s ({out['import_records_per_s']:,.0f} records/s), "
              f"read_json {out['read_json_records_per_s']:,.0f} records/s ({out['import_vs_read_json']:.1%})",
              flush=True)

    if not ck.done("execute"):
        peak.enter("execute")
        with Store(db) as st:
            shown = PlainProgress("executing")
            execute(st, workers=workers, timeout=timeout, progress=shown)
            execute_s = ck.seconds()
            shown.finish()
            labels = dict(st.con.execute("SELECT label, count(*) FROM program_labels GROUP BY 1 "
                                         "ORDER BY 2 DESC").fetchall())
            assert sum(labels.values()) == n, labels
            timeouts = labels.get("timeout", 0)
        ck.finish(peak, out, execute_s=execute_s, labels=labels, execute_timeouts=timeouts,
                  execute_programs_per_s=n / execute_s,
                  # the loops alone cost (their timeout x their count) / workers, whatever runs them
                  execute_timeouts_model_s=timeouts * timeout / workers,
                  exec_loop_programs_per_s=exec_loop(_exec_sample(db, n)),
                  sandbox_workers_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  store_mb_execute=size())
        print(f"execute: {out['execute_programs_per_s']:,.0f} programs/s ({out['execute_s']:.0f} s, of which "
              f"{out['execute_timeouts']:,} timeouts x {timeout:g} s / {workers} workers = "
              f"{out['execute_timeouts_model_s']:.0f} s), plain exec loop (1 core, programs that end) "
              f"{out['exec_loop_programs_per_s']:,.0f}/s; labels {out['labels']}", flush=True)

    if not ck.done("inject"):
        peak.enter("inject")
        with Store(db) as st:
            shown = PlainProgress("injecting")
            inject_errors(st, per_program=2, limit=max(1, n // 10), timeout=timeout, workers=workers, progress=shown)
            inject_s = ck.seconds()
            shown.finish()
            # counted in the store: a resumed run's own counts miss what an earlier attempt did
            sources, variants, executed = st.con.execute(
                "SELECT count(DISTINCT parent_program_id), count(*), count(l.program_id) FROM programs p "
                "LEFT JOIN program_labels l USING (program_id) WHERE p.origin = 'injected'").fetchone()
        ck.finish(peak, out, inject_s=inject_s, inject_sources=sources, inject_variants=variants,
                  inject_executed=executed, inject_sources_per_s=sources / inject_s)
        print(f"inject-errors: {sources:,} sources -> {variants:,} variants, executed, in {inject_s:.0f} s", flush=True)
    return _curate_onwards(out, db, work, _exec_sample(db, n), peak, size)


def _exec_sample(db: Path, n: int) -> list[str]:
    """The in-process baselines' sample: programs that end by themselves and harm nothing."""
    with duckdb.connect(str(db), read_only=True) as con:
        return [p for (p,) in con.execute(
            "SELECT program FROM labeled_programs WHERE origin <> 'injected' AND label NOT IN ('timeout', "
            f"'memory_limit', 'crashed', 'forbidden') USING SAMPLE {min(n, SAMPLE)} ROWS (reservoir, 1)").fetchall()]


def _curate_onwards(out: dict, db: Path, work: Path, sample: list[str], peak: Peak, size) -> dict:
    """The curate, export and review stages of :func:`run`, on the store ``db``; with a
    checkpoint, a stage it has is skipped."""
    ck = peak.checkpoint
    if not ck.done("curate"):  # with AST dedup, and a plain AST loop on a sample
        peak.enter("curate")
        with Store(db) as st:
            r = curate(st, "scale", CurateParams(dedup="ast", max_per_problem=4))
            curate_s = ck.seconds()
            candidates = st.scalar("SELECT count(*) FROM labeled_programs WHERE label = 'correct'")
        ck.finish(peak, out, curate_s=curate_s, curate_candidates=candidates, curated_rows=r["programs"],
                  curate_programs_per_s=candidates / curate_s, ast_loop_programs_per_s=ast_loop(sample),
                  store_mb_curate=size())
        print(f"curate: {candidates:,} candidates -> {out['curated_rows']:,} rows, {out['curate_programs_per_s']:,.0f} "
              f"programs/s, plain AST loop (1 core) {out['ast_loop_programs_per_s']:,.0f}/s", flush=True)

    # refinement pairs (every faulty label, linked and sibling targets): the correct programs are
    # analyzed for their size, the faulty ones with AST dedup; the same AST loop is the baseline
    if not ck.done("curate-refine"):
        peak.enter("curate-refine")
        refine_labels = any_of("label", REFINE_LABELS)
        with Store(db) as st:
            r = curate(st, "scale-refine", CurateParams(task="refine", siblings=True))
            refine_s = ck.seconds()
            faulty = st.scalar(f"SELECT count(*) FROM labeled_programs WHERE {refine_labels[0]}", refine_labels[1])
        ck.finish(peak, out, refine_s=refine_s, refine_faulty=faulty, refine_rows=r["programs"],
                  refine_programs_per_s=(out["curate_candidates"] + faulty) / refine_s)
        print(f"curate --task refine --siblings: {faulty:,} faulty programs -> {out['refine_rows']:,} pairs in "
              f"{refine_s:.0f} s ({out['refine_programs_per_s']:,.0f} programs analyzed/s)", flush=True)

    # HF export, and a bare datasets write of the same rows (in a child: it holds them all)
    if not ck.done("export"):
        peak.enter("export")
        with Store(db) as st:
            export(st, "scale", work / "export", fmt="hf", overwrite=True)
        ck.finish(peak, out, "export_s")
    if not ck.done("datasets write (baseline)"):
        peak.enter("datasets write (baseline)")
        bare_datasets_write(db, work / "bare")
        ck.finish(peak, out, "datasets_write_s")
    out["export_rows_per_s"] = out["curated_rows"] / out["export_s"]
    out["datasets_write_rows_per_s"] = out["curated_rows"] / out["datasets_write_s"]
    print(f"export: {out['export_rows_per_s']:,.0f} rows/s, bare datasets write {out['datasets_write_rows_per_s']:,.0f}"
          " rows/s", flush=True)

    # the review app's data calls (the store is closed: the app opens it read-only)
    peak.enter("review")
    out["review_first_load_s"] = review_calls(str(db), rv.Filters())
    out["review_filter_label_s"] = review_calls(str(db), rv.Filters(label=["runtime_error"]))
    out["review_filter_text_s"] = review_calls(str(db), rv.Filters(text="bicycle helmet"))
    print(f"review: first load {out['review_first_load_s']:.2f} s, label filter {out['review_filter_label_s']:.2f} s, "
          f"text search {out['review_filter_text_s']:.2f} s", flush=True)
    peak.stop()
    ck.finish(peak, out)
    out["peak_rss_mb"] = dict(peak.peaks)
    out["peak_tree_pss_mb"] = dict(peak.tree)
    out["peak_rss_mb_pipeline"] = max(v for k, v in peak.peaks.items() if k in PIPELINE)
    out["peak_tree_pss_mb_pipeline"] = max(v for k, v in peak.tree.items() if k in PIPELINE)
    out["attempts"] = ck.state["attempts"]
    out["store_mb"] = size()
    if "files" in out:
        out["files"] = [{k: v for k, v in f.items() if k != "path"} for f in out["files"]]
    return out


def table(r: dict) -> str:
    rows = [
        ("import", f"{r['import_rows_per_s']:,.0f} rows/s",
         f"read_json {r['read_json_rows_per_s']:,.0f} rows/s", f"{r['import_vs_read_json']:.1%}"),
        ("execute", f"{r['execute_programs_per_s']:,.0f} programs/s",
         f"plain exec loop, 1 core {r['exec_loop_programs_per_s']:,.0f}/s",
         f"{r['execute_programs_per_s'] / r['exec_loop_programs_per_s']:.2f}x"),
        ("curate (AST dedup)", f"{r['curate_programs_per_s']:,.0f} programs/s",
         f"plain AST loop, 1 core {r['ast_loop_programs_per_s']:,.0f}/s",
         f"{r['curate_programs_per_s'] / r['ast_loop_programs_per_s']:.2f}x"),
        ("HF export", f"{r['export_rows_per_s']:,.0f} rows/s",
         f"bare datasets write {r['datasets_write_rows_per_s']:,.0f} rows/s",
         f"{r['export_rows_per_s'] / r['datasets_write_rows_per_s']:.2f}x"),
    ]
    lines = ["| stage | pad | baseline (same run) | pad / baseline | peak RSS |", "|---|---|---|---|---|"]
    stage_keys = ["import", "execute", "curate", "export"]
    for (name, pad, base, ratio), key in zip(rows, stage_keys):
        lines.append(f"| {name} | {pad} | {base} | {ratio} | {r['peak_rss_mb'].get(key, 0):,.0f} MiB |")
        if key == "import":
            lines.append(f"| import, without the store write | {r['import_read_rows_per_s']:,.0f} rows/s | | "
                         f"{r['import_read_rows_per_s'] / r['read_json_rows_per_s']:.1%} | |")
    lines.append(f"| review app: first load / label filter / text search | {r['review_first_load_s']:.2f} / "
                 f"{r['review_filter_label_s']:.2f} / {r['review_filter_text_s']:.2f} s | goal 1 s | | "
                 f"{r['peak_rss_mb'].get('review', 0):,.0f} MiB |")
    lines.append(f"\n{r['programs']:,} programs, {r['problems']:,} problems; JSONL {r['jsonl_mb']:,.0f} MB, store "
                 f"{r['store_mb']:,.0f} MB; peak RSS of pad's stages {r['peak_rss_mb_pipeline']:,.0f} MiB (largest child process "
                 f"by ru_maxrss {r['sandbox_workers_peak_rss_mb']:,.0f} MiB: a forked child counts the pages it "
                 f"inherits, so this is not what a sandbox worker uses); curated {r['curated_rows']:,} of "
                 f"{r['curate_candidates']:,} correct programs")
    return "\n".join(lines)


def table_realistic(r: dict) -> str:
    """:func:`table` for realistic data through every stage."""
    peak = {k: f"{v:,.0f} / {r['peak_tree_pss_mb'].get(k, 0):,.0f}" for k, v in r["peak_rss_mb"].items()}
    lines = ["| stage | pad | baseline (same run) | pad / baseline | peak MiB: RSS / whole tree's PSS |",
             "|---|---|---|---|---|",
             f"| import ({len(r['files'])} files) | {r['import_records_per_s']:,.0f} records/s "
             f"({r['import_rows_per_s']:,.0f} programs/s, {r['import_s']:.0f} s) | read_json "
             f"{r['read_json_records_per_s']:,.0f} records/s | {r['import_vs_read_json']:.1%} | {peak.get('import')} |",
             f"| execute | {r['execute_programs_per_s']:,.0f} programs/s ({r['execute_s']:.0f} s; the "
             f"{r['execute_timeouts']:,} timeouts alone {r['execute_timeouts_model_s']:.0f} s) | plain exec loop, 1 core, "
             f"programs that end {r['exec_loop_programs_per_s']:,.0f}/s | "
             f"{r['execute_programs_per_s'] / r['exec_loop_programs_per_s']:.2f}x | {peak.get('execute')} |",
             f"| inject-errors (+ execute the variants) | {r['inject_sources']:,} sources -> {r['inject_variants']:,} "
             f"variants, {r['inject_s']:.0f} s | | | {peak.get('inject')} |",
             f"| curate (AST dedup) | {r['curate_programs_per_s']:,.0f} programs/s ({r['curate_s']:.0f} s) | plain AST "
             f"loop, 1 core {r['ast_loop_programs_per_s']:,.0f}/s | "
             f"{r['curate_programs_per_s'] / r['ast_loop_programs_per_s']:.2f}x | {peak.get('curate')} |",
             f"| curate --task refine --siblings | {r['refine_programs_per_s']:,.0f} programs/s ({r['refine_s']:.0f} s; "
             f"{r['refine_faulty']:,} faulty -> {r['refine_rows']:,} pairs) | plain AST loop, 1 core "
             f"{r['ast_loop_programs_per_s']:,.0f}/s | {r['refine_programs_per_s'] / r['ast_loop_programs_per_s']:.2f}x | "
             f"{peak.get('curate-refine')} |",
             f"| HF export | {r['export_rows_per_s']:,.0f} rows/s ({r['export_s']:.0f} s) | bare datasets write "
             f"{r['datasets_write_rows_per_s']:,.0f} rows/s | {r['export_rows_per_s'] / r['datasets_write_rows_per_s']:.2f}x"
             f" | {peak.get('export')} |",
             f"\n{r['programs']:,} programs, {r['problems']:,} problems; JSONL {r['jsonl_mb']:,.0f} MB, store "
             f"{r['store_mb']:,.0f} MB; peak RSS of pad's stages {r['peak_rss_mb_pipeline']:,.0f} MiB, of the whole "
             f"process tree's PSS {r['peak_tree_pss_mb_pipeline']:,.0f} MiB; {r['attempts']} attempt(s); labels "
             f"{r['labels']}; curated {r['curated_rows']:,} of {r['curate_candidates']:,} correct programs"]
    return "\n".join(lines)


def table_direct(r: dict) -> str:
    """:func:`table` for a realistic store written directly (no import or execute rows)."""
    lines = ["| stage | pad | baseline (same run) | pad / baseline | peak RSS |", "|---|---|---|---|---|",
             f"| store written directly (bench/realistic.py, a child process) | {r['build_s']:.0f} s | | | |",
             f"| curate (AST dedup) | {r['curate_programs_per_s']:,.0f} programs/s ({r['curate_s']:.0f} s) | plain AST "
             f"loop, 1 core {r['ast_loop_programs_per_s']:,.0f}/s | "
             f"{r['curate_programs_per_s'] / r['ast_loop_programs_per_s']:.2f}x | {r['peak_rss_mb'].get('curate', 0):,.0f} MiB |",
             f"| curate --task refine --siblings | {r['refine_programs_per_s']:,.0f} programs/s ({r['refine_s']:.0f} s; "
             f"{r['refine_faulty']:,} faulty -> {r['refine_rows']:,} pairs) | plain AST loop, 1 core "
             f"{r['ast_loop_programs_per_s']:,.0f}/s | {r['refine_programs_per_s'] / r['ast_loop_programs_per_s']:.2f}x | "
             f"{r['peak_rss_mb'].get('curate-refine', 0):,.0f} MiB |",
             f"| HF export | {r['export_rows_per_s']:,.0f} rows/s | bare datasets write {r['datasets_write_rows_per_s']:,.0f}"
             f" rows/s | {r['export_rows_per_s'] / r['datasets_write_rows_per_s']:.2f}x | "
             f"{r['peak_rss_mb'].get('export', 0):,.0f} MiB |",
             f"| review app: first load / label filter / text search | {r['review_first_load_s']:.2f} / "
             f"{r['review_filter_label_s']:.2f} / {r['review_filter_text_s']:.2f} s | goal 1 s | | "
             f"{r['peak_rss_mb'].get('review', 0):,.0f} MiB |",
             f"\n{r['programs']:,} programs, {r['problems']:,} problems; store {r['store_mb']:,.0f} MB; labels "
             f"{r['labels']}; curated {r['curated_rows']:,} of {r['curate_candidates']:,} correct programs"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="programs (default 1M)")
    ap.add_argument("--data", choices=("realistic", "direct", "uniform"), default="realistic",
                    help="realistic: bench/realistic.py's JSONL files through every stage; direct: its store "
                         "written straight into DuckDB (curate, export, review measured); uniform: uniform JSONL "
                         "records through every stage but inject-errors")
    ap.add_argument("--full", action="store_true", help="10M programs")
    ap.add_argument("--workers", type=int, default=2, help="sandbox workers for execute")
    ap.add_argument("--timeout", type=float, help="seconds per program [default: 0.25 for realistic data, whose "
                    "infinite loops would otherwise dominate; 2.0 for uniform]")
    ap.add_argument("--workdir", help="keep the corpus, store and export here (default: a temp folder, removed)")
    ap.add_argument("--resume", action="store_true", help="go on from the first stage the run in --workdir did not "
                    "finish (realistic data)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = ap.parse_args(argv)
    if args.resume and (not args.workdir or args.data != "realistic"):
        ap.error("--resume needs --workdir and --data realistic")
    n = 10_000_000 if args.full else args.n
    if n < 4:
        ap.error("--n must be at least 4")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="pad-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        timeout = args.timeout or (0.25 if args.data == "realistic" else 2.0)
        r = run(n, work, args.workers, timeout, args.data, args.resume)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    r["machine"] = {"cores": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                    "load_average_at_end": os.getloadavg()[0]}
    print("\n" + {"realistic": table_realistic, "direct": table_direct, "uniform": table}[args.data](r))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(r, indent=2))
    print(f"wrote {args.json}")
    return r


if __name__ == "__main__":
    from pad_data.cli.entry import sigterm_as_ctrl_c

    sigterm_as_ctrl_c()  # a stopped run saves its checkpoint and leaves no sandbox or scratch folder
    main()
