"""The ``lmsdk`` command line (also ``python -m lmstudio_sdk``).

Each command lives in its own module of this package with a ``register(subparsers)``
function that adds its sub-parser and sets ``func`` (called with the parsed arguments,
returning the exit status). To add a command, write the module and list it in
:data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import difflib
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
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _unrecognized(parser, args, unknown)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    status = func(args)
    return int(status or 0)


def _unrecognized(
    parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: Sequence[str]
) -> None:
    """Exit 2 with the usage of the command the arguments were meant for (not the top-level
    one argparse would show) and, for a mistyped option, the closest real one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and args.command in action.choices:
            parser = action.choices[args.command]
    message = f"unrecognized arguments: {' '.join(unknown)}"
    known = [option for action in parser._actions for option in action.option_strings]
    for word in unknown:
        name = word.split("=", 1)[0]
        if name.startswith("-"):
            # "--max_tokens" is one character away from "--max-tokens": compare as dashes.
            close = difflib.get_close_matches(name.replace("_", "-"), known, n=1)
            if close:
                message += f"\n  {name}: did you mean {close[0]}?"
    parser.error(message)
