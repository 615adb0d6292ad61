"""Working on a program's syntax tree, whatever its shape: the one guard every ``ast`` use goes through.

CPython's ``ast`` code recurses once per level of nesting, so one correct but deep program
can stop a stage: ``return 1+1+...+1`` with 600 terms parses and compiles, yet ``ast.unparse``
and every ``NodeVisitor`` / ``NodeTransformer`` raise RecursionError on it (an ``elif`` chain of
800 branches does it to ``ast.dump``); from ~3,000 terms ``ast.parse`` itself does, and a
huge program can raise MemoryError. :func:`tree_work` turns those into :class:`TooDeep`, so
each stage applies its stated rule to such a program (``pad curate`` keeps it, keyed on its
text and ranked last; ``pad inject-errors`` skips it) and counts it, instead of failing.
"""

from __future__ import annotations

import ast
import functools
from typing import Callable, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
TREE_ERRORS = (RecursionError, MemoryError)  # what a too deep or too large tree raises


class TooDeep(ValueError):
    """A program whose syntax tree is too deep (or too large) to process."""


def tree_work(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` (work on a program's syntax tree), raising :class:`TooDeep` where the tree made it
    raise RecursionError or MemoryError."""
    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TREE_ERRORS as exc:
            raise TooDeep(f"syntax tree too deep or too large to process ({type(exc).__name__})") from None
    return guarded


# ast.parse: SyntaxError (or ValueError, for a NUL byte) for text that is not Python, TooDeep for a tree too deep
parse = tree_work(ast.parse)
