"""``lmsdk ls``, ``ps``, ``load`` and ``unload``: the models on disk and in memory."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

import attrs

from ._common import (
    UsageError,
    add_command,
    command,
    error,
    format_size,
    print_table,
    progress_bar,
    session,
)

if TYPE_CHECKING:
    from ..results import ModelInfo
    from ..sync import Client
    from ..sync.handles import ModelHandle

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ls``, ``ps``, ``load`` and ``unload`` commands."""
    ls = add_command(subparsers, "ls", _ls, "list the downloaded models")
    kind = ls.add_mutually_exclusive_group()
    kind.add_argument("--llm", action="store_true", help="LLMs only")
    kind.add_argument("--embedding", action="store_true", help="embedding models only")
    ls.add_argument("--json", action="store_true", help="print JSON (one object per model)")

    ps = add_command(subparsers, "ps", _ps, "list the loaded models")
    ps.add_argument("--json", action="store_true", help="print JSON (one object per instance)")

    load = add_command(subparsers, "load", _load, "load a model")
    load.add_argument("key", metavar="KEY", help="the model key (see `lmsdk ls`)")
    load.add_argument("--identifier", help="name the loaded instance (default: the server's)")
    load.add_argument(
        "--ttl", type=float, metavar="SECONDS", help="unload after this much idle time"
    )
    load.add_argument("--context-length", type=int, metavar="TOKENS", help="context length")

    unload = add_command(subparsers, "unload", _unload, "unload a model")
    which = unload.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "identifier", nargs="?", metavar="IDENTIFIER", help="the instance (see `lmsdk ps`)"
    )
    which.add_argument("--all", action="store_true", help="unload every loaded model")


def _json_line(value: Any) -> str:
    return json.dumps(attrs.asdict(value), default=str, ensure_ascii=False)


@command
def _ls(args: argparse.Namespace) -> int:
    """List the models on disk (the server's downloaded models)."""
    domain = "llm" if args.llm else "embedding" if args.embedding else None
    with session(args) as client:
        models = client.system.list_downloaded_models(domain)
    if args.json:
        for model in models:
            print(_json_line(model))
        return 0
    if not models:
        print("No downloaded models.")
        return 0
    rows = [
        [
            m.model_key,
            m.type,
            m.params_string or "",
            m.architecture or "",
            m.quantization.name if m.quantization is not None else "",
            format_size(m.size_bytes),
            "" if m.max_context_length is None else str(m.max_context_length),
        ]
        for m in sorted(models, key=lambda m: (m.type, m.model_key))
    ]
    headers = ["Model key", "Type", "Params", "Arch", "Quant", "Size", "Context"]
    print_table(f"Downloaded models ({len(models)})", headers, rows, right=(5, 6))
    return 0


def _loaded(client: Client) -> list[ModelHandle]:
    return [*client.llm.list_loaded(), *client.embedding.list_loaded()]


@command
def _ps(args: argparse.Namespace) -> int:
    """List the loaded model instances."""
    with session(args) as client:
        loaded = _loaded(client)
    if args.json:
        for handle in loaded:
            print(_json_line(handle.info))
        return 0
    if not loaded:
        print("No models are loaded.")
        return 0
    rows = []
    for handle in loaded:
        info = handle.info
        ttl = "" if info.ttl_ms is None else f"{info.ttl_ms / 1000:g} s"
        rows.append([info.identifier, info.model_key, info.type, str(info.context_length), ttl])
    headers = ["Identifier", "Model key", "Type", "Context", "TTL"]
    print_table(f"Loaded models ({len(loaded)})", headers, rows, right=(3, 4))
    return 0


def _domain_of(client: Client, key: str) -> str:
    """``"llm"`` or ``"embedding"``: what the downloaded model ``key`` is."""
    models: list[ModelInfo] = client.system.list_downloaded_models()
    for model in models:
        if model.model_key == key:
            return model.type
    lowered = key.lower()
    for model in models:
        if model.model_key.lower() == lowered or model.path == key:
            return model.type
    return "llm"  # let the server say it does not know it


@command
def _load(args: argparse.Namespace) -> int:
    """Load a model, with a progress bar."""
    config: dict[str, Any] = {}
    if args.context_length is not None:
        if args.context_length < 1:
            raise UsageError("--context-length must be at least 1")
        config["context_length"] = args.context_length
    if args.ttl is not None and not args.ttl > 0:
        raise UsageError("--ttl must be a number of seconds > 0")
    with session(args) as client:
        domain = _domain_of(client, args.key)
        namespace = client.embedding if domain == "embedding" else client.llm
        with (
            progress_bar(f"Loading {args.key}") as update,
            namespace.load_stream(
                args.key, identifier=args.identifier, ttl=args.ttl, config=config or None
            ) as load,
        ):
            for fraction in load:
                update(fraction)
        handle = load.result()
    print(f"Loaded {args.key} as {handle.identifier} ({domain}).")
    return 0


@command
def _unload(args: argparse.Namespace) -> int:
    """Unload a model instance, or all of them (--all)."""
    with session(args) as client:
        loaded = _loaded(client)
        if args.all:
            for handle in loaded:
                handle.unload()
                print(f"Unloaded {handle.identifier}.")
            if not loaded:
                print("No models are loaded.")
            return 0
        matches = [h for h in loaded if h.identifier == args.identifier]
        if not matches:
            names = ", ".join(h.identifier for h in loaded) or "none"
            error(f"no loaded model is called {args.identifier!r} (loaded: {names})")
            return 1
        for handle in matches:
            handle.unload()
        print(f"Unloaded {args.identifier}.")
    sys.stdout.flush()
    return 0
