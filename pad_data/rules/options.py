"""Checking what a user passes in, before anything runs: numbers in sane ranges, names that exist.

Every numeric option of the CLI is checked here (``check_numbers``) and every name a filter
refers to (``check_names``): a label against the vocabulary, a dataset or an origin against
what the store holds, with a "did you mean" for a near miss. A bad value is an
:class:`OptionError` (a ``ValueError``), one line naming the option.
"""

from __future__ import annotations

import difflib
import math
import os
import re
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


# ---------------------------------------------------------------------- memory
MEMORY_ENV = "PAD_MEMORY_LIMIT"
# The default budget: this share of the machine's RAM (DuckDB's own default is 80%). What a stage holds
# beyond DuckDB's budget (Python, the sandbox pool, the analyzer processes) comes on top: an eighth (3 GiB on
# 24 GiB) keeps every stage's peak under 4 GiB; queries past it spill to disk beside the store.
MEMORY_SHARE = 0.125
MIN_MEMORY = 256 * 2**20  # a stage halves it between two connections, and DuckDB cannot join on 2 threads in 64 MB
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,  # DuckDB's units: KB is 1000 bytes
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or `taskset` narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def ram_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def size_bytes(text: str, option: str = "--memory-limit") -> int:
    """``512MB``, ``2GB``, ``1.5GiB`` (DuckDB's units) or ``40%`` (of RAM) as bytes."""
    raw = str(text).strip().lower()
    m = _SIZE.match(raw[:-1]) if raw.endswith("%") else _SIZE.match(raw)
    unit = "%" if raw.endswith("%") else (m.group(2) if m else "")
    if not m or (unit != "%" and unit not in _UNITS):
        raise OptionError(f"{option} must be a size such as 512MB, 2GB, 1.5GiB or 40% (of RAM), got {text!r}")
    value = float(m.group(1))
    if unit == "%":
        if not 0 < value <= 100:
            raise OptionError(f"{option} must be a share of RAM in (0, 100]%, got {text!r}")
        return int(ram_bytes() * value / 100)
    return int(value * _UNITS[unit])


def memory_limit(value: str | int | None = None) -> int:
    """The memory budget of a stage's DuckDB connections, in bytes: ``value`` (a size for
    :func:`size_bytes`, or bytes), else ``$PAD_MEMORY_LIMIT``, else :data:`MEMORY_SHARE` of RAM.
    At least :data:`MIN_MEMORY`; beyond it queries spill to disk."""
    option = "--memory-limit"
    if value is None and os.environ.get(MEMORY_ENV, "").strip():
        value, option = os.environ[MEMORY_ENV], MEMORY_ENV
    if value is None:
        return max(MIN_MEMORY, int(ram_bytes() * MEMORY_SHARE))
    n = value if isinstance(value, int) and not isinstance(value, bool) else size_bytes(str(value), option)
    if n < MIN_MEMORY:
        raise OptionError(f"{option} must be at least {MIN_MEMORY // 2**20}MiB (a stage shares it between two "
                          f"DuckDB connections), got {value!r}")
    return n
