"""Training examples from a curated split (in the store) or an exported dataset directory.

The prompt format is shared by training and evaluation, so a student sees at test time
exactly what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pad_data.store import Store


def prompt_for(question: str) -> str:
    return f"Question: {' '.join(question.split())}\n# Python program:\n"


def cot_prompt_for(question: str) -> str:
    return f"Question: {' '.join(question.split())}\nAnswer step by step:\n"


@dataclass
class Example:
    prompt: str
    target: str


def load_examples(split_name: str, part: str = "train", store: Store | None = None, cot: bool = False) -> list[Example]:
    """Examples of snapshot ``split_name`` (or an exported ``DatasetDict`` directory) for ``part``.

    ``cot``: the chain-of-thought baseline, trained on the problems' natural-language
    rationales (GSM8K's worked solutions) instead of programs.
    """
    path = Path(split_name)
    if path.is_dir():
        import datasets

        rows = datasets.load_from_disk(str(path))[part].to_list()
        if cot:
            raise ValueError("--cot needs the store (rationales are not in exported datasets)")
    else:
        if store is None:
            raise ValueError(f"{split_name}: not a directory; pass the store to read a curated split")
        if not store.con.execute("SELECT 1 FROM curations WHERE name = ?", [split_name]).fetchall():
            raise ValueError(f"no curated snapshot named {split_name!r} (see `pad curate --list`)")
        if cot:
            rows = store.df("SELECT DISTINCT c.problem_id, c.question, p.rationale, p.answer_text "
                            "FROM curated_examples c JOIN problems p USING (problem_id) "
                            "WHERE c.name = ? AND c.split = ? AND p.rationale IS NOT NULL ORDER BY 1",
                            [split_name, part]).to_dict("records")
            if not rows:
                raise ValueError(f"{split_name}/{part}: no rationales (the CoT baseline needs GSM8K-style data)")
            return [Example(cot_prompt_for(r["question"]), f"{r['rationale'].strip()}\nThe answer is {r['answer_text']}.")
                    for r in rows]
        rows = store.df("SELECT question, program FROM curated_examples WHERE name = ? AND split = ? "
                        "ORDER BY program_id", [split_name, part]).to_dict("records")
    if not rows:
        raise ValueError(f"{split_name}: no examples in split {part!r}")
    return [Example(prompt_for(r["question"]), r["program"].rstrip() + "\n") for r in rows]
