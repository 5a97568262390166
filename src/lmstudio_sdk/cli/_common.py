"""What the client commands of ``lmsdk`` share: connection options, errors, output.

Connection options are accepted before the command (``lmsdk --host H ls``) and after it
(``lmsdk ls --host H``). ``--host`` defaults to ``LMSTUDIO_HOST``, else the local LM Studio
found by probing its ports; ``--api-token`` to ``LM_API_TOKEN``, else
``LMSTUDIO_API_TOKEN`` (the client reads those variables). ``--embedded`` starts the local
server in the background for the duration of the command, and says so.

Every command returns its exit status: 0 done, 1 the server could not be reached or
refused (the client's message names every place tried; no traceback), 2 bad usage, 130
interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TextIO

from ..errors import LMStudioConnectionError, LMStudioError

if TYPE_CHECKING:
    from ..sync import Client

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "UsageError",
    "add_command",
    "add_global_options",
    "command",
    "connection_parent",
    "error",
    "format_size",
    "get_model",
    "print_table",
    "progress_bar",
    "session",
    "waiting",
]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_HOST_HELP = (
    "LM Studio to talk to: ws://host:port, http://host:port or host:port "
    "(default: $LMSTUDIO_HOST, else the local LM Studio found by probing its ports)"
)
_TOKEN_HELP = "API token (default: $LM_API_TOKEN, else $LMSTUDIO_API_TOKEN; never printed)"
_EMBEDDED_HELP = (
    "start the local LM Studio-compatible server in the background for this command "
    "(the bundled models if installed, else the scripted ones)"
)
_SCRIPTED_HELP = "with --embedded: serve the scripted test models"


class UsageError(Exception):
    """A command-line value that cannot be used (the message says why)."""


def _add_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection")
    group.add_argument(
        "--host", dest="client_host", metavar="HOST", default=default(None), help=_HOST_HELP
    )
    group.add_argument(
        "--api-token",
        dest="client_api_token",
        metavar="TOKEN",
        default=default(None),
        help=_TOKEN_HELP,
    )
    group.add_argument(
        "--embedded", action="store_true", default=default(False), help=_EMBEDDED_HELP
    )
    group.add_argument(
        "--scripted", action="store_true", default=default(False), help=_SCRIPTED_HELP
    )


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The connection options of the top-level ``lmsdk`` parser (before the command)."""
    _add_options(parser, suppress=False)


@functools.lru_cache(maxsize=1)
def connection_parent() -> argparse.ArgumentParser:
    """A parent parser with the connection options, for the commands (after the command).

    Their defaults are suppressed, so a value given before the command is kept.
    """
    parent = argparse.ArgumentParser(add_help=False)
    _add_options(parent, suppress=True)
    return parent


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    function: Callable[[argparse.Namespace], int],
    help: str,
    *,
    description: str | None = None,
    client: bool = True,
) -> argparse.ArgumentParser:
    """Add the command ``name``, run by ``function``; returns its parser for its arguments.

    Its description is ``function``'s docstring, or ``description`` shown as written (line
    breaks kept). A ``client`` command takes the connection options.
    """
    parser = subparsers.add_parser(
        name,
        parents=[connection_parent()] if client else [],
        help=help,
        description=description or function.__doc__,
        formatter_class=(
            argparse.RawDescriptionHelpFormatter if description else argparse.HelpFormatter
        ),
    )
    parser.set_defaults(func=function)
    return parser


def error(message: str) -> None:
    """Print ``lmsdk: error: message`` to stderr."""
    print(f"lmsdk: error: {message}", file=sys.stderr, flush=True)


@contextmanager
def session(args: argparse.Namespace) -> Iterator[Client]:
    """A connected :class:`~lmstudio_sdk.Client` for the command (with ``--embedded``, on a
    local server started for the occasion)."""
    from ..sync import Client

    host: str | None = getattr(args, "client_host", None)
    token: str | None = getattr(args, "client_api_token", None)
    embedded = bool(getattr(args, "embedded", False))
    if getattr(args, "scripted", False) and not embedded:
        raise UsageError("--scripted only applies with --embedded")
    if not embedded:
        with Client(host, api_token=token) as client:
            yield client
        return
    if host is not None:
        raise UsageError("--embedded and --host cannot be used together")
    from ..server import BackgroundServer, ServerOptions, default_models, scripted_models

    models = scripted_models() if args.scripted else default_models()
    tokens: Any = [token] if token else []  # (attrs' tuple converter confuses mypy)
    options = ServerOptions(port=0, models=models, api_tokens=tokens)
    with BackgroundServer(options) as server:
        keys = ", ".join(server.model_keys)
        print(
            f"lmsdk: started an embedded LM Studio-compatible server at {server.url} "
            f"({keys}); it stops when this command ends",
            file=sys.stderr,
            flush=True,
        )
        with Client(server.url, api_token=token) as client:
            yield client


def command(function: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a command: its errors become a message on stderr and an exit status."""

    @functools.wraps(function)
    def run(args: argparse.Namespace) -> int:
        try:
            return function(args)
        except UsageError as exc:
            error(str(exc))
            return EXIT_USAGE
        except LMStudioConnectionError as exc:
            error(str(exc))
            if not getattr(args, "embedded", False):
                print(
                    "Give its address with --host, start a local server with `lmsdk serve`, "
                    "or add --embedded.",
                    file=sys.stderr,
                )
            return EXIT_ERROR
        except LMStudioError as exc:
            error(str(exc))
            return EXIT_ERROR
        except (ValueError, TypeError) as exc:  # bad input, found before anything was sent
            error(str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("\nInterrupted.", file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED

    return run


# ---------------------------------------------------------------------------- output


def _rich_console(file: TextIO) -> Any:
    try:
        from rich.console import Console
    except ImportError:
        return None
    # Not a terminal: wide enough that model keys are never cut.
    return Console(file=file, width=None if file.isatty() else 200, highlight=False)


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    file: TextIO | None = None,
    right: Sequence[int] = (),
) -> None:
    """A table (with rich when installed, else aligned plain text); ``right``: column
    indexes to right-align."""
    out = file if file is not None else sys.stdout
    console = _rich_console(out)
    if console is not None:
        from rich.box import SIMPLE_HEAD
        from rich.table import Table

        table = Table(box=SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for index, header in enumerate(headers):
            justify: Literal["left", "right"] = "right" if index in right else "left"
            table.add_column(header, no_wrap=index == 0, justify=justify)
        for row in rows:
            table.add_row(*row)
        console.print(title, style="italic")
        console.print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print(title, file=out)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    print(line(headers), file=out)
    for row in rows:
        print(line(row), file=out)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr (rich, on a terminal); yields ``update(fraction)``."""
    console = _rich_console(sys.stderr)
    if console is None or not console.is_terminal:
        yield lambda fraction: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=1.0)
        yield lambda fraction: progress.update(task, completed=fraction)


@contextmanager
def waiting(message: str) -> Iterator[Callable[[], None]]:
    """A spinner with ``message`` on stderr (rich, on a terminal) until ``done()`` is called
    or the block ends; yields ``done``. Off a terminal it prints nothing."""
    err = sys.stderr
    if not err.isatty():
        yield lambda: None
        return
    console = _rich_console(err)
    if console is None:  # without rich: the message, erased when done
        shown = True

        def erase() -> None:
            nonlocal shown
            if shown:
                shown = False
                err.write("\r" + " " * len(message) + "\r")
                err.flush()

        err.write(message)
        err.flush()
        try:
            yield erase
        finally:
            erase()
        return
    status = console.status(message, spinner="dots")
    status.start()
    try:
        yield status.stop  # (stopping twice is harmless)
    finally:
        status.stop()


def get_model(namespace: Any, key: str | None) -> Any:
    """``namespace.model(key)``, with a progress bar if it has to be loaded."""
    if key is None:
        return namespace.model()
    with progress_bar(f"Loading {key}") as update:
        return namespace.model(key, on_progress=update)


def format_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KB"`` (decimal units, as LM Studio shows them)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
