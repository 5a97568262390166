"""``lmsdk serve``: run the local LM Studio-compatible server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from ._common import UsageError, add_command
from ._serve_report import default_threads, no_model_message, print_banner

__all__ = ["build_options", "register", "run"]

_DESCRIPTION = """\
Run a local server that speaks the LM Studio websocket protocol, so that LM Studio clients
(this SDK, the official lmstudio and @lmstudio/sdk packages) work without LM Studio.
By default it serves the bundled real models that are installed (SmolLM2-135M-Instruct,
all-MiniLM-L6-v2); --model adds any local GGUF file and --scripted serves deterministic
fake models instead.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    from ..server import DEFAULT_PORT

    parser = add_command(
        subparsers,
        "serve",
        run,
        "run a local LM Studio-compatible server",
        description=_DESCRIPTION,
        client=False,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default: 127.0.0.1, this machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default: {DEFAULT_PORT}, the first one clients probe; 0 = any free port)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=PATH.gguf",
        help="also serve a local GGUF model under KEY: a language model, or an embedding "
        "model (bert, nomic-bert...: the file header decides) (repeatable)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        default=None,
        metavar="FILE.toml",
        help="serve the models of this catalogue file (LM Studio keys and paths, preloads; "
        "see docs/server.md) instead of the bundled ones",
    )
    parser.add_argument(
        "--scripted",
        action="store_true",
        help="serve the scripted models (scripted-llm, scripted-embedding) instead of the "
        "bundled real ones",
    )
    parser.add_argument(
        "--api-token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="accept this API token (sk-lm-XXXXXXXX:YYYYYYYYYYYYYYYYYYYY; repeatable). "
        "With a token, clients without one are refused unless --allow-guests is given. "
        "Other users of this machine can read the command line: prefer --api-token-file "
        "or the LMSDK_SERVER_API_TOKENS environment variable",
    )
    parser.add_argument(
        "--api-token-file",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="accept the API tokens in this file (one per line, # comments; repeatable)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let browser pages from ORIGIN (e.g. http://localhost:3000) open websockets; "
        "by default every request with an Origin header is refused (repeatable)",
    )
    parser.add_argument(
        "--share-logs",
        action="store_true",
        help="let every client read every client's prompts and outputs in "
        "diagnostics.streamLogs (LM Studio's behaviour); by default each sees its own",
    )
    parser.add_argument(
        "--allow-guests",
        action="store_true",
        help="with --api-token, still let clients without a token in",
    )
    parser.add_argument(
        "--strict-errors",
        action="store_true",
        help="answer unknown endpoints and bad parameters with an error reply instead of "
        "only a warning (LM Studio's behaviour, where the caller waits forever)",
    )
    parser.add_argument(
        "--file-dir",
        type=Path,
        default=None,
        help="keep uploaded files here (default: a temporary directory, removed on exit)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for each llama.cpp model and for numpy's BLAS in the MiniLM engine "
        "(default: half the CPUs, 1 on 2 cores: "
        "llama.cpp's threads stall when another process takes a core)",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="URL",
        help="also serve the models of this OpenAI-compatible server (vLLM, llama.cpp's "
        "server, Ollama...), e.g. http://127.0.0.1:8000/v1 (repeatable; a model several "
        "upstreams serve is routed to the least busy)",
    )
    parser.add_argument(
        "--upstream-key-env",
        metavar="NAME",
        default=None,
        help="send the API key in environment variable NAME to the upstreams "
        "(never put the key itself on the command line)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connection")


def _parse_model(spec: str) -> tuple[str, Path]:
    key, sep, path = spec.partition("=")
    key, path = key.strip(), path.strip()
    if not sep or not key or not path:
        raise UsageError(f"--model takes KEY=PATH.gguf, got {spec!r}")
    return key, Path(path)


def _api_tokens(args: argparse.Namespace) -> tuple[str, ...]:
    from ..server._auth import tokens_from_env, tokens_from_file

    if args.api_token:
        logging.getLogger("lmstudio_sdk.server").warning(
            "--api-token puts the token on the command line, where other users of this machine "
            "can read it; use --api-token-file or LMSDK_SERVER_API_TOKENS instead"
        )
    tokens = [*args.api_token, *tokens_from_env()]
    for path in args.api_token_file:
        tokens.extend(tokens_from_file(path))
    return tuple(tokens)


def build_options(args: argparse.Namespace) -> Any:
    """The :class:`~lmstudio_sdk.server.ServerOptions` the arguments describe."""
    from ..errors import LMStudioError
    from ..server import (
        CatalogError,
        ServerOptions,
        bundled_models,
        gguf_model,
        load_catalog,
        scripted_models,
    )
    from ..server.engines import missing_bundled_models
    from ..server.upstream import Upstream

    threads = args.threads
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be 1 or more, got {threads}")
    try:
        upstreams = [Upstream(url=url, api_key_env=args.upstream_key_env) for url in args.upstream]
        for upstream in upstreams:
            upstream.api_key()  # a missing variable is a usage error now, not at start-up
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    catalog = args.catalog
    if args.scripted:
        models = list(scripted_models())
    else:
        models = [] if catalog is not None else list(bundled_models())
    for spec in args.model:
        key, path = _parse_model(spec)
        try:
            models.append(gguf_model(path, key=key))
        except LMStudioError as exc:
            raise UsageError(f"--model {key}={path}: {exc}") from None
    if catalog is not None:
        try:
            catalog = load_catalog(catalog)
        except CatalogError as exc:
            raise UsageError(f"--catalog: {exc}") from None
    elif not models and not upstreams:
        raise UsageError(no_model_message(missing_bundled_models()))
    try:
        tokens = _api_tokens(args)
        return ServerOptions(
            host=args.host,
            port=args.port,
            models=models,
            api_tokens=tokens,
            require_auth=bool(tokens) and not args.allow_guests,
            share_logs=args.share_logs,
            allowed_origins=args.allow_origin,
            strict_errors=args.strict_errors,
            file_storage_dir=args.file_dir,
            llama_threads=default_threads() if threads is None else threads,
            catalog=catalog,
            upstreams=upstreams,
        )
    except (ValueError, TypeError, LMStudioError) as exc:
        raise UsageError(str(exc)) from None


async def _serve_until_signal(options: Any, missing: dict[str, str], out: TextIO) -> None:
    from ..server import running_server

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on Windows' default loop: Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with running_server(options) as server:
            print_banner(server, missing, out)
            await stop.wait()
            print("Stopping...", file=out, flush=True)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``lmsdk serve``: returns 0 after a clean stop, 1 if it cannot serve, 2 on bad usage."""
    from ..errors import LMStudioError

    out = out if out is not None else sys.stdout
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("websockets").setLevel(logging.ERROR)
    try:
        options = build_options(args)
    except UsageError as exc:
        print(f"lmsdk serve: error: {exc}", file=sys.stderr)
        return 2
    from ..server.engines import missing_bundled_models

    # The bundled models left out, and why (not asked for with --scripted).
    missing = {} if args.scripted else missing_bundled_models()
    try:
        asyncio.run(_serve_until_signal(options, missing, out))
    except KeyboardInterrupt:
        print("Stopped.", file=out, flush=True)
    except OSError as exc:
        print(
            f"lmsdk serve: error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    except (LMStudioError, ImportError) as exc:  # e.g. no upstream answered, httpx missing
        print(f"lmsdk serve: error: {exc}", file=sys.stderr)
        return 1
    return 0
