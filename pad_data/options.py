"""Checking what a user passes in, before anything runs: numbers in sane ranges, names that exist.

Every numeric option of the CLI is checked here (``check_numbers``) and every name a filter
refers to (``check_names``): a label against the vocabulary, a dataset or an origin against
what the store holds, with a "did you mean" for a near miss. A bad value is an
:class:`OptionError` (a ``ValueError``), one line naming the option.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Iterable


class OptionError(ValueError):
    """A bad option value; the message names the option."""


@dataclass(frozen=True)
class Range:
    """A closed (or left-open) range of sane values, and what the value means."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    integer: bool = False
    unit: str = ""

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        unit = f" of {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None:
            return f"{kind}{unit} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"{kind}{unit} {'>' if self.lo_open else '>='} {self.lo:g}"
        return f"a finite {kind.split(' ', 1)[1]}{unit}"

    def ok(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value) or (self.integer and not float(value).is_integer()):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or value <= self.hi


# the sane ranges, one per kind of option
TIMEOUT = Range(0.01, 3600, unit="seconds")            # a sandbox time limit per program
REQUEST_TIMEOUT = Range(0, 3600, lo_open=True, unit="seconds")
MEMORY_MB = Range(16, 1 << 20, integer=True, unit="MiB")
WORKERS = Range(1, 256, integer=True)
COUNT = Range(1, integer=True)                         # --limit, --shard-size...
SAMPLES = Range(1, 1000, integer=True)
RETRIES = Range(0, 100, integer=True)
CONCURRENCY = Range(1, 100_000, integer=True)
MAX_TOKENS = Range(1, 10_000_000, integer=True)
TEMPERATURE = Range(0, 2)
PRICE = Range(0, 1_000_000, unit="USD")
FRACTION = Range(0, 1)
FRACTION_OPEN = Range(0, 1, lo_open=True)
PORT = Range(1, 65535, integer=True)
SEED = Range(0, 2**63 - 1, integer=True)
POLL_INTERVAL = Range(0, 86400, lo_open=True, unit="seconds")
BATCH_REQUESTS = Range(1, 50_000, integer=True)


def check_numbers(*checks: tuple[str, object, Range]) -> None:
    """``(option, value, Range)`` for each option; a value of None (not given) is skipped."""
    for option, value, rng in checks:
        if value is not None and not rng.ok(value):
            raise OptionError(f"{option} must be {rng.describe()}, got {value!r}")


SPLITS = ("train", "validation", "test")


def check_split(split: str | None, option: str = "--split") -> None:
    """A split must be one of :data:`SPLITS` (None: not given)."""
    if split is not None and split not in SPLITS:
        raise OptionError(f"{option} must be one of {', '.join(SPLITS)}, got {split!r}{did_you_mean(split, SPLITS)}")


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_names(option: str, values: Iterable[str] | None, known: Iterable[str], what: str) -> None:
    """Every one of ``values`` must be in ``known`` (the vocabulary, or what the store holds)."""
    known = sorted({str(k) for k in known if k is not None})
    for value in values or []:
        if value not in known:
            hint = did_you_mean(value, known) or (f"; known: {', '.join(known[:20])}"
                                                  + (", ..." if len(known) > 20 else "") if known else
                                                  f"; the store has no {what}s yet")
            raise OptionError(f"{option}: no {what} {value!r}{hint}")
