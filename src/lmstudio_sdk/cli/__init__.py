"""The ``lmsdk`` command line (also ``python -m lmstudio_sdk``).

Each command lives in its own module of this package with a ``register(subparsers)``
function that adds its sub-parser and sets ``func`` (called with the parsed arguments,
returning the exit status). To add a command, write the module and list it in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from .._version import __version__
from . import chat, logs, models, predict, serve, version
from ._common import add_global_options

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[ModuleType, ...] = (serve, models, chat, predict, logs, version)
"""Command modules, in the order ``lmsdk --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``lmsdk`` parser with every command registered."""
    parser = argparse.ArgumentParser(
        prog="lmsdk",
        description="Talk to LM Studio, or run a local LM Studio-compatible server.",
    )
    parser.add_argument("--version", action="version", version=f"lmsdk {__version__}")
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lmsdk`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    status = func(args)
    return int(status or 0)
