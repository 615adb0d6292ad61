"""The prompt library: PaL-style few-shot prompts, written for pad.

A prompt is a text with one ``{question}`` placeholder, sent as a single user message.
Select a built-in by name (``arithmetic``, ``coin_flip``, ``last_letters``) or pass a path
to your own file. Prompts are stored in the ``prompts`` table under a content hash, and every
generated program records the ``prompt_id`` it came from.

``pad synthesize`` has a prompt of its own (``synthesize/word_problems.txt``): a text with one
``{examples}`` placeholder, where the seed problems shown go.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pad_data.store import content_id

HERE = Path(__file__).parent
BUILTIN = {p.stem: p for p in sorted(HERE.glob("*.txt"))}
DEFAULT_FOR_DATASET = {"pad-coin": "coin_flip", "pad-letters": "last_letters"}


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str

    @property
    def prompt_id(self) -> str:
        return content_id("prompt", self.text)

    def render(self, question: str) -> str:
        return self.text.replace("{question}", question.strip())


def load_prompt(name_or_path: str | None, dataset: str | None = None) -> Prompt:
    """A built-in prompt by name, a prompt file by path, or the default for ``dataset``."""
    name = name_or_path or DEFAULT_FOR_DATASET.get(dataset or "", "arithmetic")
    if name in BUILTIN:
        return Prompt(name, BUILTIN[name].read_text())
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"unknown prompt {name!r}: not one of {', '.join(BUILTIN)} and not a file")
    text = path.read_text(encoding="utf-8")
    if "{question}" not in text:
        raise ValueError(f"{path}: a prompt file needs a {{question}} placeholder")
    return Prompt(path.stem, text)


SYNTHESIZE = HERE / "synthesize" / "word_problems.txt"


def load_synthesis_prompt(path: str | None = None) -> Prompt:
    """The few-shot prompt of ``pad synthesize``: pad's own, or a file with an ``{examples}`` placeholder."""
    if path is None:
        return Prompt("synthesize", SYNTHESIZE.read_text())
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: prompt file not found")
    text = p.read_text(encoding="utf-8")
    if "{examples}" not in text:
        raise ValueError(f"{p}: a synthesis prompt file needs an {{examples}} placeholder")
    return Prompt(p.stem, text)
