"""``pad-train``: the training side. Not implemented yet (see the pad-train issue).

The commands exist so the interface is visible, but each one exits non-zero and says that
it is not implemented: nothing here pretends to train or evaluate.
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="pad-train: fine-tune a student on curated splits (not implemented yet).")


def _not_yet(what: str) -> None:
    typer.echo(f"error: `pad-train {what}` is not implemented yet in this version of pad", err=True)
    raise typer.Exit(2)


@app.command()
def sft() -> None:
    """Fine-tune a student on a curated split (not implemented yet)."""
    _not_yet("sft")


@app.command("eval")
def eval_() -> None:
    """Evaluate a student by executing its programs (not implemented yet)."""
    _not_yet("eval")


def main() -> None:
    app()
