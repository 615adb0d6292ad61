"""The one majority-vote rule: which answer most results agree on (``pad vote``'s consensus, and
the self-consistency vote of an evaluation).

Answers agree as labels compare them (:mod:`pad_data.rules.labels`): numbers within
:func:`~pad_data.rules.labels.numbers_match`, texts equal after trimming, collapsing whitespace
and lowering case; a number never agrees with a text. An answer's *votes* are the answers that
agree with it, and the answers with the most votes lead. Among leaders the one given exactly most
often wins, then the smallest; if a leader does not agree with that winner, the vote is *tied*:
``ties="none"`` gives no winner (a consensus must be clear), ``ties="first"`` the leader given
first (a sampled answer must be chosen).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Literal, Sequence, Union

from pad_data.rules.labels import normalize_text, numbers_match

Answer = Union[float, str]


def agree(a: Answer, b: Answer) -> bool:
    """Whether two answers count as the same (see the module docstring)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and normalize_text(a) == normalize_text(b)
    return numbers_match(a, b)


def majority(answers: Sequence[Answer], ties: Literal["none", "first"] = "none") -> tuple[Answer, int] | None:
    """``(winner, votes)`` among ``answers`` (finite numbers and texts; see the module docstring),
    or None when there are none, or they are tied and ``ties`` is ``"none"``."""
    leaders = _leaders([a for a in answers if not isinstance(a, str)], _number_votes) + \
        _leaders([a for a in answers if isinstance(a, str)], _text_votes)
    if not leaders:
        return None
    top = max(votes for votes, _, _ in leaders)
    best = [(exact, value) for votes, exact, value in leaders if votes == top]
    winner = min(best, key=lambda b: (-b[0], isinstance(b[1], str), b[1]))[1]
    if any(not agree(value, winner) for _, value in best):
        if ties == "none":
            return None
        first = {value: i for i, value in reversed(list(enumerate(answers)))}
        winner = min((value for _, value in best), key=first.__getitem__)
    return winner, top


def _leaders(values: list, votes_of) -> list[tuple[int, int, Answer]]:
    """``(votes, times given exactly, value)`` of each distinct value."""
    if not values:
        return []
    exact = Counter(values)
    return [(votes, exact[v], v) for v, votes in votes_of(values, sorted(exact)).items()]


def _number_votes(values: list[float], distinct: list[float]) -> dict[float, int]:
    """Each distinct number's votes: a window over the sorted values of everything that matches it."""
    vals = sorted(values)
    out, lo, hi = {}, 0, 0
    for v in distinct:
        while not numbers_match(vals[lo], v):
            lo += 1
        hi = max(hi, lo)
        while hi < len(vals) and numbers_match(vals[hi], v):
            hi += 1
        out[v] = hi - lo
    return out


def _text_votes(values: list[str], distinct: list[str]) -> dict[str, int]:
    groups: dict[str, int] = defaultdict(int)
    for v in values:
        groups[normalize_text(v)] += 1
    return {v: groups[normalize_text(v)] for v in distinct}
