# PoT-style AQuA preamble, written for pad: Program-of-Thoughts ran its AQuA programs after
# `from sympy import *` and `import math`, with a helper `solve_it` for equations, so the
# programs use Symbol, symbols, Eq, solve, simplify... and solve_it without defining them.
# (sympy's star import sends programs to the sandbox's forked path, as it would in the program.)
import math
from sympy import *


def solve_it(equation, variable):
    """A solution of ``equation`` (an expression equal to 0, or an Eq) for ``variable`` (a symbol
    or a list of them) as {symbol: value}, or {symbol: None} for each when there is none."""
    solutions = solve(equation, variable, dict=True)
    if not solutions:
        return {v: None for v in (variable if isinstance(variable, (list, tuple)) else [variable])}
    return solutions[0]
