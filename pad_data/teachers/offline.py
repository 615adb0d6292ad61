"""The offline template teacher: NOT a language model.

It writes programs for pad's *embedded* problems only (it reads each problem's solution
plan), deterministically for a seed, so ``pad run`` shows the whole pipeline offline. To be
useful as a stand-in it reproduces the program mix real teachers produce (PaD, Table 1 and
§3.1: most samples right, the rest faulty in a few recurring ways); ``write_program``
returns each sample's intended fault so tests can check the labels the sandbox gives:

    correct            a faithful step-by-step program (several styles)
    wrong_operation    one arithmetic operator swapped (+/-, *//)
    wrong_number       one quantity from the question replaced by another number
    undefined_name     a later step refers to a misspelled variable (NameError)
    syntax_slip        a missing colon or parenthesis
    no_return          computes the answer but never returns it
    prose_answer       returns a sentence instead of a number
Real teachers are used with ``pad generate`` (OpenAI-compatible servers or a local model).
"""

from __future__ import annotations

import hashlib
import random

from pad_data.teachers.embedded import EmbeddedProblem

NAME = "offline-template-v1"
FAULTS = {  # intended fault -> probability per sample
    "correct": 0.62, "wrong_operation": 0.1, "wrong_number": 0.08, "undefined_name": 0.07,
    "syntax_slip": 0.05, "no_return": 0.04, "prose_answer": 0.04,
}
_SWAP = {"+": "-", "-": "+", "*": "/", "/": "*"}


def _rng(problem_id: str, sample_idx: int, seed: int) -> random.Random:
    h = hashlib.sha256(f"{seed}:{problem_id}:{sample_idx}".encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def _arith_lines(p: EmbeddedProblem, fault: str, rng: random.Random) -> list[str]:
    steps = list(p.steps)
    if fault == "wrong_operation":
        ops = [i for i, (_, e) in enumerate(steps) if any(f" {o} " in e for o in _SWAP)]
        if ops:
            i = rng.choice(ops)
            var, expr = steps[i]
            op = next(o for o in _SWAP if f" {o} " in expr)
            steps[i] = (var, expr.replace(f" {op} ", f" {_SWAP[op]} ", 1))
    elif fault == "wrong_number":
        consts = [i for i, (_, e) in enumerate(steps) if e.isdigit()]
        if consts:
            i = rng.choice(consts)
            var, expr = steps[i]
            steps[i] = (var, str(int(expr) + rng.choice([-2, -1, 1, 2, 10])))
    elif fault == "undefined_name":
        used = [i for i, (_, e) in enumerate(steps) if any(c.isalpha() for c in e)]
        if used:
            i = rng.choice(used)
            var, expr = steps[i]
            ref = next(w for w in expr.split() if w.isidentifier())
            steps[i] = (var, expr.replace(ref, ref + "s" if not ref.endswith("s") else ref[:-1], 1))
    inline = rng.random() < 0.25 and fault == "correct"
    lines = ["def solution():", f'    """{p.question}"""']
    for var, expr in steps:
        if inline and var == "result":
            continue
        lines.append(f"    {var} = {expr}")
    if inline:
        lines.append(f"    return {dict(steps)['result']}")
    else:
        lines.append("    return result")
    return lines


def _coin_lines(p: EmbeddedProblem, fault: str, rng: random.Random) -> list[str]:
    people, flips = p.data["people"], p.data["flips"]
    lines = ["def solution():", f'    """{p.question}"""', "    heads_up = True"]
    for person, flipped in zip(people, flips):
        lines.append(f"    # {person} {'flips' if flipped else 'does not flip'} the coin")
        if flipped:
            lines.append("    heads_up = not heads_up")
    if fault == "wrong_operation":  # a common slip: treats any flip as turning it over for good
        lines.append(f"    heads_up = {sum(flips)} == 0")
    if fault == "undefined_name":
        lines.append("    result = 'yes' if head_up else 'no'")
    else:
        lines.append("    result = 'yes' if heads_up else 'no'")
    lines.append("    return result")
    return lines


def _letters_lines(p: EmbeddedProblem, fault: str, rng: random.Random) -> list[str]:
    words = p.data["words"]
    index = "0" if fault in ("wrong_operation", "wrong_number") else "-1"
    lines = ["def solution():", f'    """{p.question}"""', f"    words = {words!r}",
             f"    last_letters = [word[{index}] for word in words]"]
    name = "last_letter" if fault == "undefined_name" else "last_letters"
    lines += [f"    result = ''.join({name})", "    return result"]
    return lines


def write_program(p: EmbeddedProblem, problem_id: str, sample_idx: int, seed: int = 0) -> tuple[str, str]:
    """``(completion, intended fault)`` for one sample of one embedded problem."""
    rng = _rng(problem_id, sample_idx, seed)
    fault = rng.choices(list(FAULTS), weights=list(FAULTS.values()))[0]
    render = {"pad-arith": _arith_lines, "pad-coin": _coin_lines, "pad-letters": _letters_lines}
    lines = render[p.dataset](p, fault, rng)
    if fault == "syntax_slip":
        lines[0] = lines[0].rstrip(":")  # "def solution()" with no colon
    elif fault == "no_return":
        lines = [ln for ln in lines if not ln.lstrip().startswith("return")]
    elif fault == "prose_answer":
        lines[-1] = lines[-1].replace("return result", 'return f"The answer is {result}."')
    code = "\n".join(lines) + "\n"
    style = rng.random()
    if style < 0.5:
        completion = f"```python\n{code}```"
    elif style < 0.8:
        completion = f"Let's write a program that solves it step by step.\n\n```python\n{code}```\n"
    else:
        completion = code
    return completion, fault
