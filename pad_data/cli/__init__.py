"""The command line: :mod:`pad_data.cli.entry` starts ``pad`` (it puts ``pad sql``/``pad stats`` to a
running stage before anything heavy is loaded), :mod:`pad_data.cli.commands` holds the commands.

``pad_data.cli.app``, ``.main`` and the rest of :mod:`~pad_data.cli.commands` are loaded on first use,
so that importing the entry point loads nothing else.
"""

import importlib


def __getattr__(name: str):
    if name.startswith("__") or name == "commands":  # (import machinery's probes; the submodule itself)
        raise AttributeError(f"module 'pad_data.cli' has no attribute {name!r}")
    return getattr(importlib.import_module("pad_data.cli.commands"), name)
