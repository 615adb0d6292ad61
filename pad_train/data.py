"""Training examples from a curated split (in the store) or an exported dataset directory.

The prompt format is shared by training and evaluation, so a student sees at test time
exactly what it was trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from pad_data.store import Store


def prompt_for(question: str) -> str:
    return f"Question: {' '.join(question.split())}\n# Python program:\n"


def refine_prompt_for(question: str, program: str, feedback: str) -> str:
    """The self-refinement prompt: the question and a faulty program (as :func:`prompt_for`
    would have led to it), what running it said, then the request for a fixed program."""
    return (f"{prompt_for(question)}{program.rstrip()}\n# Feedback: {' '.join(feedback.split())}\n"
            f"# Fixed program:\n")


def cot_prompt_for(question: str) -> str:
    return f"Question: {' '.join(question.split())}\nAnswer step by step:\n"


def answer_prompt_for(question: str) -> str:
    """The answer-only baseline's prompt: the answer straight away, no rationale or program."""
    return f"Question: {' '.join(question.split())}\nAnswer:\n"


@dataclass
class Example:
    prompt: str
    target: str


def load_examples(split_name: str, part: str = "train", store: Store | None = None, cot: bool = False,
                  answer_only: bool = False) -> list[Example]:
    """Examples of snapshot ``split_name`` (or an exported ``DatasetDict`` directory) for ``part``.

    ``cot``: the chain-of-thought baseline, trained on the problems' natural-language
    rationales (GSM8K's worked solutions, the embedded symbolic problems' rationales) instead
    of programs. ``answer_only``: the answer-only baseline, question -> "The answer is X.".
    Both take one example per problem of the snapshot, so they train on the same questions.
    """
    if cot and answer_only:
        raise ValueError("choose one of --cot and --answer-only")
    if cot or answer_only:
        flag = "--cot" if cot else "--answer-only"
        if Path(split_name).is_dir() or store is None:
            raise ValueError(f"{flag} needs the store (it reads the problems of a curated snapshot)")
        from pad_data.stages.curate import snapshot_task

        snapshot_task(store, split_name)  # says so when there is no such snapshot
        rows = store.df("SELECT DISTINCT c.problem_id, c.question, p.rationale, p.answer_text "
                        "FROM curated_examples c JOIN problems p USING (problem_id) "
                        f"WHERE c.name = ? AND c.split = ? AND {'p.rationale' if cot else 'p.answer_text'} "
                        "IS NOT NULL ORDER BY 1", [split_name, part]).to_dict("records")
        if not rows:
            raise ValueError(f"{split_name}/{part}: no rationales (the CoT baseline needs GSM8K-style data)" if cot
                             else f"{split_name}/{part}: no problems with a gold answer")
        if answer_only:
            return [Example(answer_prompt_for(r["question"]), f"The answer is {r['answer_text']}.") for r in rows]
        return [Example(cot_prompt_for(r["question"]), f"{r['rationale'].strip()}\nThe answer is {r['answer_text']}.")
                for r in rows]
    rows = _rows(split_name, part, store)
    if rows and "faulty_program" in rows[0]:
        raise ValueError(f"{split_name} holds refinement pairs: train on it with --task refine")
    if not rows:
        raise ValueError(f"{split_name}: no examples in split {part!r}")
    return [Example(prompt_for(r["question"]), r["program"].rstrip() + "\n") for r in rows]


def _rows(split_name: str, part: str, store: Store | None) -> list[dict]:
    """Rows of a snapshot (program or refine) or an exported dataset directory, for ``part``."""
    path = Path(split_name)
    if path.is_dir():
        import datasets

        dd = datasets.load_from_disk(str(path))
        if part in dd and "messages" in dd[part].column_names:
            raise ValueError(f"{split_name}: a `pad export --format chat` export (a messages column): train on it "
                             "with TRL as its README.md says, or export the snapshot with --format hf for pad-train")
        return dd[part].to_list()
    if store is None:
        raise ValueError(f"{split_name}: not a directory; pass the store to read a curated split")
    from pad_data.stages.curate import TASK_COLUMNS, TASK_TABLES, snapshot_task

    task = snapshot_task(store, split_name)
    id_col = "faulty_program_id" if task == "refine" else "program_id"
    cols = ", ".join(c for c in TASK_COLUMNS[task] if c != "split")
    return store.df(f"SELECT {cols} FROM {TASK_TABLES[task]} WHERE name = ? AND split = ? ORDER BY {id_col}",
                    [split_name, part]).to_dict("records")


def load_refine_examples(split_name: str, part: str = "train", store: Store | None = None, mix: float = 0.0,
                         mix_split: str | None = None, seed: int = 0) -> list[Example]:
    """Refinement examples (question + faulty program + feedback -> correct program).

    ``mix`` > 0 adds ``round(mix * n)`` question -> program examples (n = refinement
    examples), drawn with ``seed`` from snapshot ``mix_split`` or, without one, from the
    refinement pairs' own targets, so one student learns to write and to fix programs.
    """
    rows = _rows(split_name, part, store)
    if rows and "faulty_program" not in rows[0]:
        raise ValueError(f"{split_name} holds question -> program examples, not refinement pairs "
                         f"(build one with `pad curate NAME --task refine`)")
    if not rows:
        raise ValueError(f"{split_name}: no refinement pairs in split {part!r}")
    out = [Example(refine_prompt_for(r["question"], r["faulty_program"], r["feedback"]),
                   r["program"].rstrip() + "\n") for r in rows]
    if mix < 0:
        raise ValueError("--mix must be >= 0")
    if mix > 0:
        if mix_split:
            plain = load_examples(mix_split, part, store)
        else:
            seen: dict[tuple[str, str], Example] = {}
            for r in rows:
                seen.setdefault((r["question"], r["program"]), Example(prompt_for(r["question"]),
                                                                       r["program"].rstrip() + "\n"))
            plain = list(seen.values())
        want = round(mix * len(out))
        rng = random.Random(seed)
        # sample without replacement while there are enough, then cycle
        picks = [plain[i % len(plain)] for i in range(want // len(plain) * len(plain))] + \
            rng.sample(plain, want % len(plain))
        out += picks
    return out


def load_problems(split_name: str, part: str = "train", store: Store | None = None,
                  limit: int | None = None) -> list[dict]:
    """The distinct problems of a snapshot (or an exported dataset directory) for ``part``, in id
    order: ``problem_id``, ``question`` and the gold (or consensus) ``answer``/``answer_text``
    the snapshot holds; at most ``limit``."""
    seen: dict[str, dict] = {}
    for r in _rows(split_name, part, store):
        if r["problem_id"] not in seen:
            answer = r.get("answer")
            seen[r["problem_id"]] = {"problem_id": r["problem_id"], "question": r["question"],
                                     "answer": None if answer is None or answer != answer else float(answer),
                                     "answer_text": r.get("answer_text")}
    if not seen:
        raise ValueError(f"{split_name}: no problems in split {part!r}")
    problems = [seen[k] for k in sorted(seen)]
    return problems[:limit] if limit else problems
