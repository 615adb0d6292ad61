"""What every pad-train trainer shares: where the model comes from, LoRA, checkpoints, resume, Ctrl-C.

- :func:`check_model_source`: a local directory, or a Hub name already in the Hugging Face cache,
  or a Hub name with the Hub reachable; offline (``HF_HUB_OFFLINE`` or no route to the Hub) a
  name that is none of these fails at once with one line, instead of after the Hub client's retries.
- :func:`lora_config`: a peft ``LoraConfig`` from ``--lora-r/--lora-alpha/--lora-targets``.
- :func:`resume_point`: the newest ``OUT/checkpoint-N`` for ``--resume``; none is an error.
- :func:`saved_note`: what an interrupted run left in ``OUT``, said exactly.
- :func:`quiet`: no log dicts printed by the trainer itself.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

HUB_PROBE_S = 2.0  # how long a Hub name waits for a TCP connection before pad-train calls it offline


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check_model_source(name: str) -> None:
    """ValueError, at once, when ``name`` cannot be loaded here (see the module docstring)."""
    if Path(name).is_dir():
        return
    if Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ValueError(f"cannot load model {name!r}: no such directory")
    from huggingface_hub import try_to_load_from_cache

    try:
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # in the local cache: loads without the network
    except ValueError:  # not a valid repo id
        raise ValueError(f"cannot load model {name!r}: not a local directory nor a Hub model name") from None
    if _offline_env():
        raise ValueError(f"cannot load model {name!r}: not a local directory nor in the Hugging Face cache, "
                         "and HF_HUB_OFFLINE is set")
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co",
                                  endpoint.port or (80 if endpoint.scheme == "http" else 443)), HUB_PROBE_S).close()
    except OSError as exc:
        raise ValueError(f"cannot load model {name!r}: not a local directory nor in the Hugging Face cache, and "
                         f"the Hub ({endpoint.hostname}) is unreachable: {exc.strerror or exc}") from None


def lora_config(r: int, alpha: float, targets: str | None, task_type: str):
    """A peft ``LoraConfig`` (``targets``: comma-separated module names [default: peft's for the model])."""
    if r < 1:
        raise ValueError("--lora-r must be >= 1")
    try:
        from peft import LoraConfig
    except ImportError:
        raise ValueError("--lora needs peft: pip install 'pad[train]' (or pip install peft)") from None
    modules = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    return LoraConfig(r=r, lora_alpha=alpha, target_modules=modules, lora_dropout=0.0, task_type=task_type)


def quiet(trainer) -> None:
    """Drop transformers' printer of every log dict (``disable_tqdm`` puts it on stdout): pad-train
    reports progress and results itself."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def checkpoints(out: str | Path) -> list[Path]:
    """Complete ``OUT/checkpoint-N`` folders, oldest first (the trainers write ``trainer_state.json``
    last, so a folder without it was cut short and cannot be resumed from)."""
    found = [p for p in Path(out).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def resume_point(out: str | Path, resume: bool) -> str | None:
    """The checkpoint ``--resume`` continues from; without ``--resume``, None (a fresh run). A
    ``--resume`` with no checkpoint in ``out`` is a ValueError, never a silent fresh start."""
    if not resume:
        return None
    found = checkpoints(out)
    if not found:
        raise ValueError(f"--resume: no checkpoint in {out} (nothing to resume; run without --resume to start)")
    return str(found[-1])


def saved_note(out: str | Path, every: int, otherwise: str = "none is written before the end") -> str:
    """What an interrupted run left in ``out``, for the Ctrl-C message (``every``: the checkpoint
    interval in steps; 0: ``otherwise`` says when they are written)."""
    found = checkpoints(out)
    if not found:
        when = f"one is written every {every} steps" if every else otherwise
        return f"interrupted: nothing saved (no checkpoint yet: {when}); rerun without --resume to start again"
    last = found[-1]
    return (f"interrupted: the last checkpoint is {last} (step {last.name.split('-')[-1]}); "
            f"rerun with --resume to continue from it")


def load_model(name: str):
    """``(model, tokenizer, is_seq2seq)`` for a local directory or a Hub name."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # pad-train shows its own progress
    check_model_source(name)
    try:
        config = AutoConfig.from_pretrained(name)
        tok = AutoTokenizer.from_pretrained(name)
        seq2seq = bool(config.is_encoder_decoder)
        model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, seq2seq
