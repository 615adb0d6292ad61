"""What every teacher backend provides: ``complete(prompt, n, ...) -> Completion``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class TeacherError(Exception):
    """A request that failed for good (after retries, or not retryable)."""


@dataclass
class Completion:
    texts: list[str]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reasons: list[str | None] = field(default_factory=list)
    attempts: int = 1


class Teacher(Protocol):
    name: str  # recorded as programs.teacher
    supports_n: bool  # several samples per request

    async def complete(self, prompt: str, n: int, temperature: float, max_tokens: int) -> Completion: ...

    async def aclose(self) -> None: ...


# USD per 1M tokens (input, output): estimates from public list prices; local servers cost 0.
PRICES = {
    "gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40), "gpt-3.5-turbo": (0.50, 1.50),
}


def estimate_cost(model: str, prompt_tokens: float | None, completion_tokens: float | None,
                  prices: tuple[float, float] | None = None) -> float | None:
    """Estimated USD for the tokens, from ``prices`` or the table above; None when unknown."""
    price = prices or PRICES.get(model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6
