"""``python -m pad_data.cli``: the commands, without the entry point's live answer."""

from pad_data.cli.commands import main

main()
