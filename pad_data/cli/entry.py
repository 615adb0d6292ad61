"""The `pad` command. ``pad sql`` and ``pad stats`` (what one polls while a stage runs) are first
put to the stage writing the store, if one is serving reads (:mod:`pad_data.store.live_reads`), before
anything heavy is imported; everything else, and those two with no stage to answer them, is
:mod:`pad_data.cli.commands`."""

from __future__ import annotations

import os
import signal
import sys

from pad_data.store import live_reads
from pad_data.store.paths import DEFAULT_DB


def _terminated(signum, frame) -> None:
    """SIGTERM handled as Ctrl-C is, by whatever handles SIGINT then (asyncio cancels its task at
    the next await, so no paid response is dropped half-stored): committed work is kept, scratch
    files removed. A second SIGTERM does not cut that cleanup short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):  # e.g. started with `&`
        raise KeyboardInterrupt
    signal.raise_signal(signal.SIGINT)


def sigterm_as_ctrl_c() -> None:
    """A scheduler's or `timeout`'s SIGTERM would otherwise end the process before any cleanup ran:
    the `pad` and `pad-train` commands take it as Ctrl-C (:func:`_terminated`)."""
    signal.signal(signal.SIGTERM, _terminated)


def main() -> None:
    sigterm_as_ctrl_c()
    try:
        reply = live_command(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    if reply is None:
        from pad_data.cli.commands import main as cli_main

        cli_main()
        return
    sys.stdout.write(reply.get("out") or "")
    sys.stderr.write(reply.get("err") or "")
    sys.exit(reply["code"])


LIVE_COMMANDS = ("sql", "stats")


def live_command(args: list[str]) -> dict | None:
    """``pad [--db DB] sql|stats ...`` answered by a stage writing DB (``{"code", "out", "err"}``),
    or None: not such a command, no stage serving, or something only the full CLI handles."""
    db, i = None, 0
    while i < len(args) and args[i] not in LIVE_COMMANDS:  # the group's one option, --db, may come first
        if args[i] == "--db" and i + 1 < len(args):
            db, i = args[i + 1], i + 2
        elif args[i].startswith("--db="):
            db, i = args[i][len("--db="):], i + 1
        else:
            return None
    if i == len(args):
        return None
    rest = args[i + 1:]
    if "--help" in rest:
        return None
    terminal = sys.stdout.isatty()
    path = db or os.environ.get("PAD_DB") or DEFAULT_DB  # as paths.resolve_path
    reply = live_reads.ask(path, {
        "command": args[i], "args": rest, "db": path, "terminal": terminal,
        "width": os.get_terminal_size(sys.stdout.fileno()).columns if terminal else None})
    if reply is None or not isinstance(reply.get("code"), int):
        return None
    return reply
