"""Pull the program out of an LLM completion or an imported record.

Completions arrive as bare code, as markdown fences (```python ... ```), with prose before
and after, or with several fenced blocks. The rule, in order:
1. if the whole text (without the blank lines around it) already parses as Python, it is the
   program, kept whole: top-level constants (a multi-line dict, a triple-quoted string), an
   ``if __name__ == "__main__":`` block, a PoT-style script that just sets ``ans``... A
   markdown fence is a syntax error outside a string, so fenced completions never get here;
2. among fenced blocks, the first that defines ``solution`` (else the first that parses,
   else the first block);
3. without fences, the lines from the first ``def``/``import``/``from`` line up to the first
   prose line after the code (a non-indented line that does not parse as Python);
4. otherwise the whole text, stripped.
The program always ends with exactly one newline. The raw completion is always stored too,
so nothing is lost by extraction.
"""

from __future__ import annotations

import re

from pad_data.rules.syntax import parse

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(def |import |from |class |@)")
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t\f]*\r?\n)+")


def _parses(code: str) -> bool:
    """Whether ``code`` parses (a tree too deep to parse counts as not: syntax.TooDeep is a ValueError)."""
    try:
        parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def extract_program(text: str, entry: str = "solution") -> str:
    """The code in ``text`` (see module docstring for the rules)."""
    if text is None:
        return ""
    whole = _LEADING_BLANK_LINES.sub("", text).rstrip()
    if whole and _parses(whole):
        return whole + "\n"
    blocks = [m.group(2) for m in _FENCE.finditer(text)
              if m.group(1).lower() in ("", "python", "py", "python3")]
    if blocks:
        defines = [b for b in blocks if re.search(rf"^\s*def {entry}\s*\(", b, re.M)]
        chosen = defines[0] if defines else next((b for b in blocks if _parses(b)), blocks[0])
        return chosen.strip("\n").rstrip() + "\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return text.strip() + "\n" if text.strip() else ""
    end = len(lines)
    for j in range(start + 1, len(lines)):
        line = lines[j]
        if line and not line[0].isspace() and not _CODE_START.match(line) and not line.startswith("#"):
            if not _parses(line):
                end = j
                break
    return "\n".join(lines[start:end]).strip("\n").rstrip() + "\n"
