"""pad's own embedded problems: procedurally generated, with gold answers, written by us.

Three datasets, deterministic for a seed, so ``pad run`` works offline on a fresh machine:
- ``pad-arith``: multi-step arithmetic word problems (GSM8K-like) from eight templates;
- ``pad-coin``: coin flip (is the coin still heads up after some people flip it?), gold yes/no;
- ``pad-letters``: last letter concatenation, gold a short string.
Each problem carries its solution *plan* (named steps as Python expressions), which the
offline template teacher (:mod:`pad_data.teachers.offline`) turns into programs. The symbolic
problems also carry a correct natural-language rationale (like GSM8K's worked solutions), the
training data of a chain-of-thought baseline. ``coin_people`` and ``letter_words`` set how
many flips / words a question has (default 2 to 4), e.g. longer, out-of-distribution test sets.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pad_data.rules.answers import format_number

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira",
         "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Victor",
         "Wen", "Ximena", "Yusuf", "Zoe"]
ITEMS = ["apple", "marble", "sticker", "pencil", "cupcake", "seashell", "card", "balloon"]
WORDS = ["river", "planet", "candle", "orbit", "maple", "quartz", "violet", "harbor", "lemon",
         "summit", "falcon", "copper", "meadow", "pixel", "anchor", "tundra", "velvet", "glacier"]


@dataclass
class EmbeddedProblem:
    dataset: str
    question: str
    answer: float | None
    answer_text: str
    kind: str  # template name
    steps: list[tuple[str, str]] = field(default_factory=list)  # (variable, python expression)
    data: dict = field(default_factory=dict)  # template inputs (symbolic tasks)
    rationale: str | None = None  # a correct step-by-step rationale (symbolic tasks)


def _arith(rng: random.Random, kind: str) -> EmbeddedProblem:
    name = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    if kind == "packs":
        a, b, c = rng.randint(3, 40), rng.randint(2, 9), rng.randint(3, 12)
        d = rng.randint(1, a + b * c - 1)
        q = (f"{name} has {a} {item}s. {name} buys {b} packs with {c} {item}s in each pack, then "
             f"gives {d} {item}s to a friend. How many {item}s does {name} have now?")
        steps = [("initial", f"{a}"), ("packs", f"{b}"), ("per_pack", f"{c}"),
                 ("bought", "packs * per_pack"), ("given", f"{d}"),
                 ("result", "initial + bought - given")]
    elif kind == "wages":
        r, h, days = rng.randint(8, 30), rng.randint(2, 8), rng.randint(2, 6)
        s = rng.randint(5, r * h * days - 1)
        q = (f"{name} earns ${r} per hour and works {h} hours a day for {days} days. "
             f"{name} then spends ${s} on a bike. How much money does {name} have left?")
        steps = [("hourly_rate", f"{r}"), ("hours_per_day", f"{h}"), ("days", f"{days}"),
                 ("earned", "hourly_rate * hours_per_day * days"), ("spent", f"{s}"),
                 ("result", "earned - spent")]
    elif kind == "discount":
        p, pct, n = rng.randint(1, 20) * 20, rng.choice([10, 20, 25, 50]), rng.randint(2, 9)
        q = (f"A {item} costs ${p}. The shop takes {pct}% off the price. "
             f"How much do {n} {item}s cost at the sale price?")
        steps = [("price", f"{p}"), ("percent_off", f"{pct}"),
                 ("discount", "price * percent_off / 100"), ("sale_price", "price - discount"),
                 ("count", f"{n}"), ("result", "sale_price * count")]
    elif kind == "fraction":
        k = rng.choice([2, 3, 4, 5])
        n = k * rng.randint(4, 20)
        m = rng.randint(1, n - n // k - 1)
        q = (f"{name} baked {n} cookies, ate 1/{k} of them, and gave {m} to a neighbor. "
             f"How many cookies are left?")
        steps = [("baked", f"{n}"), ("eaten", f"baked / {k}"), ("given", f"{m}"),
                 ("result", "baked - eaten - given")]
    elif kind == "distance":
        v, t, w, u = rng.randint(20, 80), rng.randint(1, 5), rng.randint(20, 80), rng.randint(1, 5)
        q = (f"A train travels at {v} miles per hour for {t} hours, then at {w} miles per hour "
             f"for {u} hours. How many miles does it travel in total?")
        steps = [("speed1", f"{v}"), ("time1", f"{t}"), ("speed2", f"{w}"), ("time2", f"{u}"),
                 ("distance1", "speed1 * time1"), ("distance2", "speed2 * time2"),
                 ("result", "distance1 + distance2")]
    elif kind == "share":
        n = rng.randint(2, 12)
        per, boxes = rng.randint(2, 10), rng.randint(2, 10)
        while (boxes * per) % n:
            n -= 1
        q = (f"{n} students share {boxes} boxes of pencils with {per} pencils in each box "
             f"equally. How many pencils does each student get?")
        steps = [("boxes", f"{boxes}"), ("pencils_per_box", f"{per}"), ("students", f"{n}"),
                 ("total_pencils", "boxes * pencils_per_box"), ("result", "total_pencils / students")]
    elif kind == "ages":
        a, b, m = rng.randint(3, 15), rng.randint(1, 8), rng.randint(2, 4)
        q = (f"{name} is {a} years old. {name}'s brother is {b} years older. Their uncle is {m} "
             f"times as old as the brother. How old is the uncle?")
        steps = [("age", f"{a}"), ("older_by", f"{b}"), ("brother_age", "age + older_by"),
                 ("times", f"{m}"), ("result", "brother_age * times")]
    else:  # average
        s1, s2 = rng.randint(60, 100), rng.randint(60, 100)
        s3 = rng.randint(60, 100)
        while (s1 + s2 + s3) % 3:
            s3 -= 1
        q = f"{name} scored {s1}, {s2} and {s3} on three tests. What is {name}'s average score?"
        steps = [("score1", f"{s1}"), ("score2", f"{s2}"), ("score3", f"{s3}"),
                 ("total", "score1 + score2 + score3"), ("result", "total / 3")]
    env: dict = {}
    for var, expr in steps:
        env[var] = eval(expr, {}, env)  # our own template expressions, not untrusted input
    answer = float(env["result"])
    return EmbeddedProblem("pad-arith", q, answer, format_number(answer), kind, steps)


ARITH_KINDS = ("packs", "wages", "discount", "fraction", "distance", "share", "ages", "average")


def _coin(rng: random.Random, people_range: tuple[int, int] = (2, 4)) -> EmbeddedProblem:
    people = rng.sample(NAMES, rng.randint(*people_range))
    flips = [rng.random() < 0.5 for _ in people]
    sentences = " ".join(f"{p} {'flips' if f else 'does not flip'} the coin." for p, f in zip(people, flips))
    heads = sum(flips) % 2 == 0
    q = f"A coin is heads up. {sentences} Is the coin still heads up?"
    ans = "yes" if heads else "no"
    steps, up = ["The coin starts heads up."], True
    for p, f in zip(people, flips):
        up = up != f
        side = "heads" if up else "tails"
        steps.append(f"{p} flips the coin, so it is now {side} up." if f else
                     f"{p} does not flip the coin, so it is still {side} up.")
    steps.append(f"So the coin ends {'heads' if heads else 'tails'} up.")
    return EmbeddedProblem("pad-coin", q, None, ans, "coin_flip", data={"people": people, "flips": flips},
                           rationale=" ".join(steps))


def _letters(rng: random.Random, words_range: tuple[int, int] = (2, 4)) -> EmbeddedProblem:
    words = rng.sample(WORDS + NAMES, rng.randint(*words_range))
    q = f'Take the last letters of each word in "{" ".join(words)}" and concatenate them.'
    ans = "".join(w[-1] for w in words)
    rationale = " ".join(f'The last letter of "{w}" is "{w[-1]}".' for w in words)
    rationale += f' Concatenating them gives "{ans}".'
    return EmbeddedProblem("pad-letters", q, None, ans, "last_letters", data={"words": words},
                           rationale=rationale)


def embedded_problems(seed: int = 0, n_arith: int = 240, n_coin: int = 40, n_letters: int = 40,
                      coin_people: tuple[int, int] = (2, 4),
                      letter_words: tuple[int, int] = (2, 4)) -> list[EmbeddedProblem]:
    """The embedded problem set (deterministic for ``seed``; duplicates removed).

    ``coin_people``/``letter_words``: the least and most flips (people) per coin question and
    words per letters question (the defaults give ``pad run``'s set)."""
    for lo, hi in (coin_people, letter_words):
        if not 1 <= lo <= hi <= len(NAMES):
            raise ValueError(f"bad range ({lo}, {hi}): want 1 <= least <= most <= {len(NAMES)}")
    rng = random.Random(seed)
    out = [_arith(rng, ARITH_KINDS[i % len(ARITH_KINDS)]) for i in range(n_arith)]
    out += [_coin(rng, coin_people) for _ in range(n_coin)]
    out += [_letters(rng, letter_words) for _ in range(n_letters)]
    seen, unique = set(), []
    for p in out:
        if (p.dataset, p.question) not in seen:
            seen.add((p.dataset, p.question))
            unique.append(p)
    return unique
