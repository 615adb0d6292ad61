"""A local teacher: a Hugging Face model run with ``transformers`` (on GPU when present).

``model`` is a local directory or a Hub name (loading from the Hub needs network; offline
the error says so). Causal LMs and encoder-decoder models both work; generation runs in a
worker thread so the async generate loop stays responsive.
"""

from __future__ import annotations

import asyncio
import threading

from pad_data.teachers.base import Completion, TeacherError


class HFTeacher:
    supports_n = True

    def __init__(self, model: str, device: str | None = None, name: str | None = None):
        try:
            import torch
            from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as exc:  # the train extra is not installed
            raise TeacherError(f"the hf backend needs torch and transformers: {exc}") from None
        try:
            config = AutoConfig.from_pretrained(model)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
            self.model = cls.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise TeacherError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.encoder_decoder = config.is_encoder_decoder
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name = name or model
        self._lock = threading.Lock()
        self._torch = torch

    def _generate(self, prompt: str, n: int, temperature: float, max_tokens: int) -> Completion:
        with self._lock, self._torch.no_grad():
            enc = self.tokenizer(prompt, return_tensors="pt").to(self.device)
            limit = getattr(self.model.config, "max_position_embeddings", None)
            length = enc["input_ids"].shape[1] + (0 if self.encoder_decoder else max_tokens)
            if limit and length > limit:
                raise TeacherError(f"prompt of {enc['input_ids'].shape[1]} tokens + {max_tokens} new "
                                   f"tokens exceeds the model's {limit} positions")
            sample = temperature > 0
            out = self.model.generate(
                **enc, max_new_tokens=max_tokens, num_return_sequences=n, do_sample=sample,
                temperature=temperature if sample else None, top_p=None, top_k=None,
                num_beams=1, pad_token_id=self.tokenizer.pad_token_id)
            start = 0 if self.encoder_decoder else enc["input_ids"].shape[1]
            new = out[:, start:]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
            generated = int((new != self.tokenizer.pad_token_id).sum())
            return Completion(texts=texts, prompt_tokens=int(enc["input_ids"].shape[1]),
                              completion_tokens=generated, finish_reasons=[None] * n)

    async def complete(self, prompt: str, n: int, temperature: float, max_tokens: int) -> Completion:
        try:
            return await asyncio.to_thread(self._generate, prompt, n, temperature, max_tokens)
        except TeacherError:
            raise
        except (RuntimeError, ValueError, IndexError) as exc:
            raise TeacherError(f"generation failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None

    async def aclose(self) -> None:
        return None
