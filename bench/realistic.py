"""A seeded generator of realistic pad stores, written straight into DuckDB (no sandbox run).

    .venv/bin/python bench/realistic.py STORE [--n 1000000] [--seed 0] [--injected 4000]

What a store looks like after ``pad generate`` + ``pad execute`` on GSM8K and SVAMP with two
teachers sampling four programs per problem (what bench_scale's uniform corpus is not):

- **questions** of realistic length from several templates: GSM8K-style word problems of
  3-6 sentences (~250-450 characters; 1 in 500 several paragraphs long) and shorter
  SVAMP-style ones; GSM8K has a test split;
- **programs in the styles teachers write**: PAL ``def solution()`` with the question as its
  docstring or with a comment per step, Program-of-Thoughts ``ans =`` scripts, helper
  functions, ``import math`` / ``from fractions import Fraction`` / ``import numpy as np`` /
  ``sympy``, a class now and then; each teacher has its naming habits;
- **realistic duplicates**: of a teacher's four samples, later ones repeat an earlier one
  exactly ~35% of the time, and ~20% of the time are the same program renamed or commented
  differently (an AST duplicate); a repeat is another sample, with its own id (as pad's import
  stores it), counted by :func:`repeats`;
- **every label**: ~15% of programs fail (wrong answers, runtime errors, syntax errors,
  timeouts, memory limits, forbidden calls, crashes, no answer, non-numeric), each with a
  program that would fail that way; problems without a gold answer are ``unverifiable``;
- **long outliers**: 1 program in 500 runs to hundreds of lines (a teacher that does not stop);
- **injected variants** (``origin = 'injected'``, ``parent_program_id``, ``injection_kind``)
  of correct programs drawn without replacement (so no two share an id), labeled, and a few
  thousand reviewers' verdicts.

Executions are written through :meth:`Store.add_executions` (the one insert every engine
uses), so ``program_labels`` and every view are as a real run leaves them, :data:`CHUNK`
programs at a time. 1M programs take about a minute. The same seed gives the same store.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from pad_data.store import Store, problem_id, program_id  # noqa: E402
from pad_data.store.ids import injected_program_id  # noqa: E402

TEACHERS = ("gpt-4o-mini-2024-07-18", "Qwen2.5-72B-Instruct")
SAMPLES = 4  # per teacher and problem
NAMES = ["Natalia", "Weng", "Betty", "Julie", "James", "Albert", "Mark", "Ken", "Alexis", "Tina", "Randy", "Joy",
         "Carla", "Darrell", "Mrs. Sherman", "Jean", "Marissa", "Tobias", "Greg", "Luisa"]
ITEMS = ["pencils", "muffins", "stickers", "marbles", "cupcakes", "apples", "books", "seashells", "trading cards"]


@dataclass(frozen=True)
class Template:
    """A problem family: its text, its numbers' ranges, and the steps that solve it (each step
    a name and an expression over the numbers and earlier steps; the last is the answer)."""
    dataset: str
    text: str
    params: dict[str, tuple[int, int]]
    steps: tuple[tuple[str, str], ...]


TEMPLATES = [
    Template("gsm8k", "{name} is getting ready for the school fair. {name} packs {a} boxes with {b} {item} in each "
             "box, and later finds {c} more {item} in a drawer at home. A friend borrows {d} of them for a "
             "project and promises to bring them back next week. How many {item} does {name} have for the fair?",
             {"a": (3, 60), "b": (4, 48), "c": (1, 90), "d": (1, 30)},
             (("boxes", "a"), ("per_box", "b"), ("found", "c"), ("borrowed", "d"),
              ("packed", "boxes * per_box"), ("total", "packed + found - borrowed"))),
    Template("gsm8k", "A bakery bakes {a} trays of muffins every morning, and each tray holds {b} muffins. On "
             "Saturday the bakery sold {c} muffins before noon and half of the remaining muffins in the "
             "afternoon. The baker gave the rest to a shelter. How many muffins did the shelter get?",
             {"a": (4, 40), "b": (6, 24), "c": (2, 60)},
             (("trays", "a"), ("per_tray", "b"), ("morning_sales", "c"), ("baked", "trays * per_tray"),
              ("left", "baked - morning_sales"), ("shelter", "left / 2"))),
    Template("gsm8k", "{name} saves ${a} every week from a part-time job at the library. After {b} weeks, {name} "
             "buys a bicycle helmet for ${c} and a lock that costs one third as much as the helmet. "
             "How many dollars does {name} have left?",
             {"a": (5, 80), "b": (4, 30), "c": (12, 90)},
             (("weekly", "a"), ("weeks", "b"), ("helmet", "c"), ("saved", "weekly * weeks"),
              ("lock", "helmet / 3"), ("remaining", "saved - helmet - lock"))),
    Template("gsm8k", "A farm has {a} rows of apple trees with {b} trees in each row. Each tree gives {c} "
             "kilograms of apples this season, and the farmer sells the apples at ${d} per kilogram at the "
             "market on weekends. How much money does the farmer make from the apples?",
             {"a": (3, 40), "b": (5, 30), "c": (10, 80), "d": (1, 6)},
             (("rows", "a"), ("trees_per_row", "b"), ("kg_per_tree", "c"), ("price", "d"),
              ("trees", "rows * trees_per_row"), ("kilograms", "trees * kg_per_tree"), ("revenue", "kilograms * price"))),
    Template("gsm8k", "{name} runs a lemonade stand for {a} days. On the first day {name} sells {b} cups, and "
             "every day after that {name} sells {c} more cups than the day before. Each cup sells for ${d}. "
             "How much money does {name} make in all?",
             {"a": (2, 9), "b": (5, 40), "c": (1, 12), "d": (1, 4)},
             (("days", "a"), ("first", "b"), ("step", "c"), ("price", "d"),
              ("last", "first + (days - 1) * step"), ("cups", "(first + last) * days / 2"), ("money", "cups * price"))),
    Template("gsm8k", "A school orders {a} buses for a field trip. Each bus has {b} seats, and {c} seats on each "
             "bus are kept for teachers and parents who come along to help. If every other seat is taken by "
             "a student, how many students go on the trip?",
             {"a": (2, 15), "b": (30, 60), "c": (2, 6)},
             (("buses", "a"), ("seats", "b"), ("adult_seats", "c"), ("student_seats", "seats - adult_seats"),
              ("students", "buses * student_seats"))),
    Template("gsm8k", "{name} reads {a} pages of a novel on Monday and twice as many pages on Tuesday. On "
             "Wednesday {name} reads {b} pages fewer than on Tuesday. The novel has {c} pages. How many "
             "pages does {name} still have to read to finish the novel?",
             {"a": (10, 60), "b": (1, 9), "c": (400, 900)},
             (("monday", "a"), ("tuesday", "2 * monday"), ("wednesday", "tuesday - b"), ("length", "c"),
              ("read", "monday + tuesday + wednesday"), ("left", "length - read"))),
    Template("gsm8k", "A store sells a jacket for ${a}. During a sale the price is reduced by {b}%, and {name} "
             "also uses a coupon for ${c} off the sale price. How much does {name} pay for the jacket?",
             {"a": (40, 300), "b": (10, 50), "c": (5, 20)},
             (("price", "a"), ("discount", "price * b / 100"), ("sale_price", "price - discount"),
              ("paid", "sale_price - c"))),
    Template("svamp", "{name} had {a} {item}. {name} gave {b} {item} to a friend and then bought {c} more. "
             "How many {item} does {name} have now?",
             {"a": (20, 200), "b": (1, 19), "c": (1, 50)},
             (("start", "a"), ("given", "b"), ("bought", "c"), ("now", "start - given + bought"))),
    Template("svamp", "There are {a} {item} in each bag. If {name} has {b} bags, how many {item} does {name} have?",
             {"a": (2, 40), "b": (2, 30)},
             (("per_bag", "a"), ("bags", "b"), ("total", "per_bag * bags"))),
    Template("svamp", "{name} had some {item}. After giving away {a} {item}, {name} has {b} {item} left. "
             "How many {item} did {name} have at first?",
             {"a": (2, 90), "b": (2, 90)},
             (("given", "a"), ("left", "b"), ("start", "given + left"))),
    Template("svamp", "A class has {a} students split equally into {b} groups. How many students are in each group?",
             {"a": (12, 60), "b": (2, 6)},
             (("students", "a * b"), ("groups", "b"), ("per_group", "students / groups"))),
]
# teachers' naming habits: descriptive (the template's names), short, or generic
_SHORT = {"boxes": "n_boxes", "per_box": "k", "found": "extra", "borrowed": "lent", "packed": "in_boxes"}
STYLES = ("pal_doc", "pal_comments", "pot", "helper", "math", "fractions", "numpy", "sympy", "class")
STYLE_WEIGHTS = (30, 25, 18, 8, 6, 4, 4, 2, 3)
# the labels of failing programs and their shares of all programs (~15% together)
FAILS = (("wrong_answer", 0.069), ("runtime_error", 0.035), ("syntax_error", 0.012), ("no_answer", 0.010),
         ("non_numeric", 0.010), ("timeout", 0.003), ("memory_limit", 0.004), ("forbidden", 0.004),
         ("crashed", 0.001))
STATUS = {"correct": "ok", "wrong_answer": "ok", "non_numeric": "ok", "unverifiable": "ok"}
ERRORS = {"runtime_error": [("NameError", "name 'totl' is not defined"), ("ZeroDivisionError", "division by zero"),
                            ("TypeError", "unsupported operand type(s) for +: 'int' and 'str'"),
                            ("IndexError", "list index out of range")],
          "syntax_error": [("SyntaxError", "'(' was never closed"), ("SyntaxError", "expected ':'")],
          "timeout": [("Timeout", "still running after 2.0 s")],
          "memory_limit": [("MemoryError", "memory limit (512 MiB) reached")],
          "forbidden": [("ImportError", "import of 'os' is not allowed")],
          "crashed": [("Crashed", "killed by signal 11 (SIGSEGV)")],
          "no_answer": [(None, None)]}
CHUNK = 200_000  # programs written to the store at a time by build_store
INJECTION_KINDS = ("operator", "constant_changed", "constant_dropped", "wrong_variable", "undefined_name",
                   "step_dropped", "steps_swapped", "wrong_return", "syntax_slip")


def _names(steps: tuple[tuple[str, str], ...], habit: int, rng: random.Random) -> dict[str, str]:
    """Variable names for ``steps`` under a teacher's habit (0 descriptive, 1 short, 2 generic)."""
    if habit == 0:
        return {s: s for s, _ in steps}
    if habit == 1:
        return {s: _SHORT.get(s, s.split("_")[0] + ("_n" if rng.random() < 0.5 else "")) for s, _ in steps}
    return {s: f"x{i}" if rng.random() < 0.8 else f"v{i}" for i, (s, _) in enumerate(steps)}


def _subst(expr: str, params: dict[str, int], names: dict[str, str]) -> str:
    """``expr`` with its numbers written in and its step names renamed."""
    out = []
    for tok in expr.replace("(", " ( ").replace(")", " ) ").split():
        out.append(str(params[tok]) if tok in params else names.get(tok, tok))
    return " ".join(out).replace("( ", "(").replace(" )", ")")


def render(t: Template, params: dict[str, int], question: str, style: str, names: dict[str, str],
           comments: bool, rng: random.Random, long_steps: int = 0) -> str:
    """One program for problem ``t(params)`` in ``style``."""
    lines = [(names[s], _subst(e, params, names), s.replace("_", " ")) for s, e in t.steps]
    ans = lines[-1][0]

    def body(indent: str) -> list[str]:
        out = []
        for name, expr, what in lines:
            if comments:
                out.append(f"{indent}# {what}")
            out.append(f"{indent}{name} = {expr}")
        for k in range(long_steps):  # a teacher that does not stop: checks that change nothing
            out.append(f"{indent}check_{k} = {ans} + {k} - {k}  # double-check step {k}")
        return out

    if style == "pot":
        head = ["# Python code to solve the problem"] if comments else []
        return "\n".join(head + body("") + [f"ans = {ans}"]) + "\n"
    if style == "class":
        own = {s: "self." + names[s] for s, _ in t.steps[:2]}  # the first two steps are attributes
        attrs = "\n".join(f"        {own[s]} = {_subst(e, params, {**names, **own})}" for s, e in t.steps[:2])
        rest = "\n".join(f"        {names[s]} = {_subst(e, params, {**names, **own})}" for s, e in t.steps[2:])
        return (f"class Problem:\n    def __init__(self):\n{attrs}\n\n    def answer(self):\n{rest or '        pass'}\n"
                f"        return {ans if len(lines) > 2 else 'self.' + ans}\n\n\ndef solution():\n"
                f"    return Problem().answer()\n")
    pre, ret = [], f"    return {ans}"
    if style == "pal_doc":
        pre = ['    """' + question.replace('"""', "'''").replace("\\", "") + '"""']
    elif style == "math":
        return ("import math\n\n\ndef solution():\n" + "\n".join(body("    "))
                + f"\n    result = {ans}\n    if isinstance(result, float) and result.is_integer():\n"
                  f"        result = int(result)\n    return result\n")
    elif style == "fractions":
        return ("from fractions import Fraction\n\n\ndef solution():\n" + "\n".join(body("    "))
                + f"\n    return float(Fraction({ans}).limit_denominator())\n")
    elif style == "numpy":
        return ("import numpy as np\n\n\ndef solution():\n" + "\n".join(body("    "))
                + f"\n    return float(np.float64({ans}))\n")
    elif style == "sympy":
        return ("from sympy import symbols, Eq, solve\n\n\ndef solution():\n" + "\n".join(body("    "))
                + f"\n    x = symbols('x')\n    answer = solve(Eq(x, {ans}), x)[0]\n    return float(answer)\n")
    elif style == "helper":
        steps = [re.sub(r"= (\S+) \* (\S+)$", r"= multiply(\1, \2)", line) for line in body("    ")]
        return ("def multiply(a, b):\n    \"\"\"The product of a and b.\"\"\"\n    return a * b\n\n\ndef solution():\n"
                + "\n".join(steps) + f"\n    return {ans}\n")
    return "def solution():\n" + "\n".join(pre + body("    ")) + ("\n    result = " + ans + "\n    return result\n"
                                                                  if rng.random() < 0.5 else "\n" + ret + "\n")


def corrupt(program: str, label: str, rng: random.Random) -> str:
    """``program`` changed the way a program that ends with ``label`` goes wrong."""
    lines = program.rstrip("\n").split("\n")
    last = lines[-1]
    if label == "wrong_answer":
        for i in range(len(lines) - 1, -1, -1):
            if " + " in lines[i] or " - " in lines[i] or " * " in lines[i]:
                lines[i] = lines[i].replace(" + ", " - ", 1) if " + " in lines[i] else \
                    lines[i].replace(" - ", " + ", 1) if " - " in lines[i] else lines[i].replace(" * ", " + ", 1)
                return "\n".join(lines) + "\n"
        return "\n".join(lines[:-1] + [last + " + 1"]) + "\n"
    if label == "runtime_error":
        return "\n".join(lines[:-1] + [last.replace("return ", "return totl + ").replace("ans = ", "ans = totl + ")]) + "\n"
    if label == "syntax_error":
        k = rng.randrange(len(lines))
        return "\n".join(lines[:k] + [lines[k] + " (" if rng.random() < 0.5 else lines[k].rstrip(":") + " = ="] + lines[k + 1:]) + "\n"
    if label == "no_answer":
        return "\n".join(line for line in lines if "return" not in line and not line.startswith("ans =")) + "\n"
    if label == "non_numeric":
        return "\n".join(lines[:-1] + [last.replace("return ", "return f'The answer is {") + "}'"
                                       if "return " in last else last]) + "\n"
    indent = "    " if program.startswith(("def", "import", "from", "class")) else ""
    where = 1 if indent else 0
    extra = {"timeout": [f"{indent}while True:", f"{indent}    pass"],
             "memory_limit": [f"{indent}cache = [0] * 10**10"],
             "forbidden": [f"{indent}import os", f"{indent}os.system('ls')"],
             "crashed": [f"{indent}import ctypes", f"{indent}ctypes.string_at(0)"]}[label]
    if program.startswith(("import", "from")):
        where = next(i for i, line in enumerate(lines) if line.startswith("def ")) + 1
    return "\n".join(lines[:where] + extra + lines[where:]) + "\n"


def _fail_label(rng: random.Random) -> str:
    u = rng.random()
    for label, share in FAILS:
        if u < share:
            return label
        u -= share
    return "correct"


def _result(pid: str, label: str, gold: float | None, rng: random.Random, when: datetime) -> dict:
    status = STATUS.get(label, label)
    value = None
    if label in ("correct", "unverifiable"):
        value = gold if gold is not None else float(rng.randint(1, 999))
    elif label == "wrong_answer":
        value = (gold or 0) + rng.choice((-1, 1, 2, 10, 0.5))
    err_type, err_msg = rng.choice(ERRORS[label]) if label in ERRORS else (None, None)
    text = None if value is None else (str(int(value)) if float(value).is_integer() else repr(value))
    if label == "non_numeric":
        text = f"The answer is {gold}"
    return {"program_id": pid, "status": status, "label": label, "value": text, "value_num": value,
            "value_type": None if value is None else ("int" if float(value).is_integer() else "float")
            if label != "non_numeric" else "str",
            "error_type": err_type, "error_message": err_msg, "error_line": 3 if err_type else None,
            "stdout": "", "duration_ms": round(rng.uniform(0.05, 3.0), 3) if status != "timeout" else 2000.0,
            "timeout_s": 2.0, "memory_mb": 512, "executor": "bench-realistic", "executed_at": when}


def problems_stream(n: int, seed: int = 0) -> Iterator[tuple[dict, list[dict], list[dict]]]:
    """``(problem, programs, results)`` rows, one problem at a time, for about ``n`` teacher
    programs (see the module docstring)."""
    rng = random.Random(seed)
    when = datetime(2026, 12, 1)
    per_problem = len(TEACHERS) * SAMPLES
    made_n = 0
    for q in range((n + per_problem - 1) // per_problem):
        t = TEMPLATES[rng.randrange(len(TEMPLATES))]
        params = {k: rng.randint(lo, hi) for k, (lo, hi) in t.params.items()}
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        question = f"(#{q}) " + t.text.format(name=name, item=item, **params)
        if rng.random() < 0.002:  # a long outlier question: context paragraphs before the question
            question = (" ".join([f"Some background about {name}'s {item}: it was a busy week."] * rng.randint(20, 60))
                        + "\n\n" + question)
        env: dict[str, float] = dict(params)
        for s, e in t.steps:
            env[s] = eval(e, {}, env)  # noqa: S307 - our own template expressions
        gold = float(env[t.steps[-1][0]])
        has_gold = rng.random() > 0.004
        split = "test" if t.dataset == "gsm8k" and rng.random() < 0.15 else "train"
        pid = problem_id(t.dataset, question)
        problem = {"problem_id": pid, "dataset": t.dataset, "split": split, "question": question,
                   "answer": gold if has_gold else None,
                   "answer_text": (str(int(gold)) if gold.is_integer() else str(gold)) if has_gold else None}
        programs, results = [], []
        for ti, teacher in enumerate(TEACHERS):
            habit = ti if rng.random() < 0.7 else rng.randrange(3)
            made: list[tuple[str, str]] = []  # (program, label) of this teacher's samples so far
            for k in range(SAMPLES):
                if made_n >= n:
                    break
                u = rng.random()
                if made and u < 0.35:  # the same program again
                    prog, label = made[rng.randrange(len(made))]
                else:
                    style = rng.choices(STYLES, STYLE_WEIGHTS)[0]
                    long_steps = rng.randint(100, 800) if rng.random() < 0.002 else 0
                    prog = render(t, params, question, style, _names(t.steps, habit, rng),
                                  comments=rng.random() < 0.5, rng=rng, long_steps=long_steps)
                    label = _fail_label(rng)
                    if label != "correct":
                        prog = corrupt(prog, label, rng)
                    if label in ("correct", "wrong_answer", "non_numeric") and not has_gold:
                        label = "unverifiable" if label != "non_numeric" else label
                made.append((prog, label))
                made_n += 1
                prid = program_id(pid, prog, teacher, k, "teacher")
                programs.append({"program_id": prid, "problem_id": pid, "origin": "teacher", "teacher": teacher,
                                 "sample_idx": k, "program": prog, "parent_program_id": None, "injection_kind": None})
                results.append(_result(prid, label, gold if has_gold else None, rng, when))
        yield problem, programs, results


def repeats(programs: list[dict]) -> int:
    """How many of ``programs`` (one problem's rows, in sample order) repeat the text of an
    earlier sample of the same teacher: a teacher repeating itself, which pad keeps as distinct
    programs (another sample, another id) and curation's dedup removes."""
    seen: set[tuple[str, str]] = set()
    n = 0
    for p in programs:
        key = (p["teacher"], p["program"])
        n += key in seen
        seen.add(key)
    return n


def injected_variants(correct: list[tuple[str, str, str, str]], golds: dict[str, float | None], injected: int,
                      seed: int = 0) -> tuple[list[dict], list[dict]]:
    """``(programs, results)`` of ``injected`` variants (at most one per program of ``correct``:
    ``(program_id, problem_id, program, teacher)``); parents are drawn without replacement, so
    no variant repeats another's id (the same parent and kind made the same text, and id, twice)."""
    rng = random.Random(f"{seed}:injected")
    when = datetime(2026, 12, 1)
    programs, results = [], []
    for i, j in enumerate(rng.sample(range(len(correct)), min(injected, len(correct)))):
        parent, pid, prog, teacher = correct[j]
        kind = INJECTION_KINDS[i % len(INJECTION_KINDS)]
        label = {"syntax_slip": "syntax_error", "undefined_name": "runtime_error", "steps_swapped": "runtime_error"
                 }.get(kind, "wrong_answer" if rng.random() < 0.85 else "correct")
        text = corrupt(prog, label, rng) if label != "correct" else prog.replace("\n", "\n\n", 1)
        prid = injected_program_id(pid, parent, kind, text)
        gold = golds[pid] if label == "correct" else None
        programs.append({"program_id": prid, "problem_id": pid, "origin": "injected", "teacher": teacher,
                         "sample_idx": i % 2, "program": text, "parent_program_id": parent, "injection_kind": kind})
        results.append(_result(prid, label, gold, rng, when))
    return programs, results


def generate(n: int, seed: int = 0, injected: int = 4000) -> tuple[list[dict], list[dict], list[dict]]:
    """``(problems, programs, results)`` rows for about ``n`` teacher programs and ``injected``
    variants (see the module docstring)."""
    problems, programs, results = [], [], []
    for problem, progs, res in problems_stream(n, seed):
        problems.append(problem)
        programs += progs
        results += res
    golds = {p["problem_id"]: p["answer"] for p in problems}
    correct = [(p["program_id"], p["problem_id"], p["program"], p["teacher"])
               for p, r in zip(programs, results) if r["label"] == "correct"]
    variants, outcomes = injected_variants(correct, golds, injected, seed)
    return problems, programs + variants, results + outcomes


def write_files(folder: str | Path, n: int = 1_000_000, seed: int = 0) -> list[dict]:
    """The teacher programs of :func:`problems_stream` as the JSONL files a user imports: one per
    dataset, split and teacher, a record per problem (``question``, ``answer``: the gold text or
    null, ``programs``: the teacher's samples), streamed (memory does not grow with ``n``).
    Returns ``[{"path", "dataset", "split", "teacher", "records", "programs"}]``, one per file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[tuple[str, str, str], dict] = {}
    try:
        for problem, programs, _ in problems_stream(n, seed):
            for teacher in TEACHERS:
                samples = [p["program"] for p in programs if p["teacher"] == teacher]
                if not samples:
                    continue
                key = (problem["dataset"], problem["split"], teacher)
                if key not in files:
                    path = folder / f"{key[0]}-{key[1]}-{teacher.split('-')[0].lower()}.jsonl"
                    files[key] = {"path": str(path), "dataset": key[0], "split": key[1], "teacher": teacher,
                                  "records": 0, "programs": 0, "file": open(path, "w", encoding="utf-8")}
                f = files[key]
                f["file"].write(json.dumps({"question": problem["question"], "answer": problem["answer_text"],
                                            "programs": samples}) + "\n")
                f["records"] += 1
                f["programs"] += len(samples)
    finally:
        for f in files.values():
            f.pop("file").close()
    return sorted(files.values(), key=lambda f: f["path"])


def build_store(db: str | Path, n: int = 1_000_000, seed: int = 0, injected: int = 4000,
                reviews: int = 3000) -> dict:
    """Write a realistic store of ~``n`` teacher programs (+ ``injected``) to ``db`` (a new file),
    :data:`CHUNK` programs at a time (memory holds the correct programs' text for the injected
    variants, not every row). ``repeats``: teacher programs repeating an earlier sample (:func:`repeats`)."""
    t0 = time.perf_counter()
    counts = {"problems": 0, "programs": 0, "repeats": 0}
    correct: list[tuple[str, str, str, str]] = []
    golds: dict[str, float | None] = {}
    with Store(db) as st:
        def write(problems: list[dict], programs: list[dict], results: list[dict]) -> None:
            with st.transaction():
                for table, rows in (("problems", problems), ("programs", programs)):
                    if rows:
                        st.con.register("_pad_rows", pa.Table.from_pylist(rows))
                        st.con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _pad_rows")
                        st.con.unregister("_pad_rows")
                st.add_executions(pa.Table.from_pylist(results))
            counts["problems"] += len(problems)
            counts["programs"] += len(programs)

        chunk: tuple[list[dict], list[dict], list[dict]] = ([], [], [])
        for problem, progs, res in problems_stream(n, seed):
            golds[problem["problem_id"]] = problem["answer"]
            correct += [(p["program_id"], p["problem_id"], p["program"], p["teacher"])
                        for p, r in zip(progs, res) if r["label"] == "correct"]
            counts["repeats"] += repeats(progs)
            chunk[0].append(problem)
            chunk[1].extend(progs)
            chunk[2].extend(res)
            if len(chunk[1]) >= CHUNK:
                write(*chunk)
                chunk = ([], [], [])
        if chunk[1]:
            write(*chunk)
        gen_s = time.perf_counter() - t0
        variants, outcomes = injected_variants(correct, golds, injected, seed)
        if variants:
            write([], variants, outcomes)
        if reviews:
            with st.transaction():
                st.add_verdicts(f"SELECT program_id FROM program_labels WHERE label = 'correct' "
                                f"AND hash(program_id) % 300 = 0 LIMIT {int(reviews) * 2 // 3}",
                                None, "accept", None, "reviewer-a")
                st.add_verdicts(f"SELECT program_id FROM program_labels WHERE label = 'correct' "
                                f"AND hash(program_id) % 300 = 1 LIMIT {int(reviews) // 3}",
                                None, "reject", "copies the question's numbers wrong", "reviewer-b")
        labels = dict(st.con.execute("SELECT label, count(*) FROM program_labels GROUP BY 1 ORDER BY 2 DESC").fetchall())
    return {**counts, "injected": len(variants), "labels": labels, "generate_s": gen_s,
            "build_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", help="the store to write (must not exist)")
    ap.add_argument("--n", type=int, default=1_000_000, help="teacher programs (default 1M)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--injected", type=int, default=4000, help="injected variants of correct programs")
    args = ap.parse_args(argv)
    if Path(args.store).exists():
        ap.error(f"{args.store} exists; choose a new path")
    out = build_store(args.store, args.n, args.seed, args.injected)
    print(out)
    return out


if __name__ == "__main__":
    main()
