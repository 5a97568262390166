"""``lmsdk log stream``: print the server's log events as they come (until Ctrl-C)."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

import attrs

from ..protocol._unset import UnsetType
from ._common import add_command, command, session

__all__ = ["format_event", "register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``log`` command (``log stream``)."""
    log = subparsers.add_parser("log", help="the server's logs", description="Server logs.")
    actions = log.add_subparsers(dest="log_action", metavar="ACTION", required=True)
    stream = add_command(actions, "stream", _stream, "print log events as they come, until Ctrl-C")
    stream.add_argument("--json", action="store_true", help="one JSON object per event")


def _plain(value: Any) -> Any:
    return None if isinstance(value, UnsetType) else value


def format_event(event: Any) -> str:
    """One line for a diagnostics log event: time, type and the gist of it."""
    when = datetime.datetime.fromtimestamp(event.timestamp / 1000).strftime("%H:%M:%S.%f")[:-3]
    data = event.data
    kind = getattr(data, "type", type(data).__name__)
    if kind == "server.log":
        text = f"[{data.level}] {data.content}"
    elif kind == "runtime.log":
        text = f"[{data.level}] {data.engine_name}: {data.message}"
    elif kind == "llm.prediction.input":
        text = f"{data.model_identifier} <- {data.input!r}"
    elif kind == "llm.prediction.output":
        stats = _plain(data.stats)
        reason = f" ({stats.stop_reason})" if stats is not None else ""
        text = f"{data.model_identifier} -> {data.output!r}{reason}"
    else:
        text = repr(data)
    return f"{when} {kind} {text}"


def _as_json(event: Any) -> str:
    def convert(_: Any, __: Any, value: Any) -> Any:
        return _plain(value)

    raw = attrs.asdict(event, value_serializer=convert) if attrs.has(type(event)) else event
    return json.dumps(raw, default=repr, ensure_ascii=False)


@command
def _stream(args: argparse.Namespace) -> int:
    """Print the server's log events as they come, until Ctrl-C."""
    with session(args) as client, client.diagnostics.stream_logs() as logs:
        print("Streaming the server's logs; Ctrl-C stops.", file=sys.stderr, flush=True)
        try:
            for event in logs:
                print(_as_json(event) if args.json else format_event(event), flush=True)
        except KeyboardInterrupt:
            return 0
    return 0
