"""A teacher behind any OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, llama.cpp, TGI).

Uses the official async ``openai`` client with its own retries switched off, because pad
retries a wider set of failures the same way: 429, 5xx, timeouts, connection errors and
malformed responses (truncated JSON, no choices), with exponential backoff and full jitter,
honouring ``retry-after`` / ``retry-after-ms`` when the server sends one. Errors that a
retry cannot fix (400, 401, 403, 404, 422) fail at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random

import openai

from pad_data.teachers.base import Completion, TeacherError

RETRYABLE_STATUS = {408, 409, 425, 429}


class MalformedResponse(Exception):
    pass


def check_api_key(base_url: str | None = None, api_key: str | None = None) -> None:
    """OpenAI's own API (no ``base_url``, no ``OPENAI_BASE_URL``) needs a key: without one, say so at
    once instead of sending requests that cannot succeed. A local server may take none."""
    if api_key or os.environ.get("OPENAI_API_KEY") or base_url or os.environ.get("OPENAI_BASE_URL"):
        return
    raise TeacherError("OPENAI_API_KEY is not set: export it to use OpenAI's API, or pass --base-url "
                       "(e.g. http://localhost:8000/v1) for another OpenAI-compatible server")


class OpenAITeacher:
    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None,
                 max_retries: int = 6, timeout: float = 120.0, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0):
        self.name = model
        self.model = model
        self.supports_n = True
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.requests = 0
        check_api_key(base_url, api_key)
        self.client = openai.AsyncOpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "no-key",
            max_retries=0, timeout=timeout)

    def _delay(self, attempt: int, exc: Exception) -> float:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        for header, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
            value = headers.get(header)
            if value is not None:
                try:
                    return min(self.backoff_cap, max(0.0, float(value) * scale))
                except ValueError:
                    pass
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))

    @staticmethod
    def _retryable(exc: Exception) -> bool:
        if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError,
                            MalformedResponse, json.JSONDecodeError)):
            return True
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code >= 500 or exc.status_code in RETRYABLE_STATUS
        return False

    async def complete(self, prompt: str, n: int, temperature: float, max_tokens: int) -> Completion:
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                self.requests += 1
                resp = await self.client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}],
                    n=n, temperature=temperature, max_tokens=max_tokens)
                choices = getattr(resp, "choices", None)
                if not choices or any(getattr(c.message, "content", None) is None for c in choices):
                    raise MalformedResponse("response without choices or message content")
                usage = getattr(resp, "usage", None)
                return Completion(
                    texts=[c.message.content for c in choices],
                    prompt_tokens=getattr(usage, "prompt_tokens", None),
                    completion_tokens=getattr(usage, "completion_tokens", None),
                    finish_reasons=[c.finish_reason for c in choices], attempts=attempt + 1)
            except Exception as exc:  # noqa: BLE001 - classified below
                last = exc
                if not self._retryable(exc) or attempt == self.max_retries:
                    break
                await asyncio.sleep(self._delay(attempt, exc))
        raise TeacherError(f"{type(last).__name__}: {str(last).splitlines()[0][:300] if str(last) else ''}")

    async def aclose(self) -> None:
        await self.client.close()
