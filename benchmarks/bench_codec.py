"""Codec cost of one streamed token: decode and encode a ``channelSend`` fragment frame.

The frame is an ``llm.predict`` fragment, the message a client receives once per token.
Each row is the best of several repeats, in microseconds per operation:

* decode rows go from text to objects: bare JSON parsing (the floor), the envelope
  only, then envelope plus packet (what ``ClientSession.receive_text`` does);
* encode rows go from objects to text: packet plus envelope, then the checked path of
  ``ServerSession.send_packet`` (which also validates the packet before sending).

Usage: ``python benchmarks/bench_codec.py [--quick] [--json PATH]``. Other scripts may
import :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmstudio_sdk.protocol import codec, wire
from lmstudio_sdk.protocol.endpoints import llm

FRAME = json.dumps(
    {
        "type": "channelSend",
        "channelId": 2,
        "message": {
            "type": "fragment",
            "fragment": {
                "content": " world",
                "tokensCount": 1,
                "containsDrafted": False,
                "reasoningType": "none",
                "isStructural": False,
            },
        },
    },
    separators=(",", ":"),
)


def _best_us(func: Callable[[], object], number: int, repeat: int) -> float:
    func()  # warm up: cattrs generates its hooks on first use
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def run(quick: bool = False) -> dict[str, Any]:
    """Time every row; return ``{"python", "orjson", "results": {row: µs per op}}``."""
    number, repeat = (2_000, 3) if quick else (20_000, 5)
    to_client = llm.PREDICT.to_client
    message = wire.decode_server_message(FRAME)
    assert isinstance(message, wire.ChannelSend)
    packet = wire.decode_payload(message.message, to_client, what="packet")
    assert type(packet).__name__ != "Unknown", "the fragment did not decode to its class"

    def decode_json() -> object:
        return codec.loads(FRAME)

    def decode_envelope() -> object:
        return wire.decode_server_message(FRAME)

    def decode_full() -> object:
        envelope = wire.decode_server_message(FRAME)
        return wire.decode_payload(envelope.message, to_client, what="packet")  # type: ignore[union-attr]

    def encode_plain() -> str:
        raw = codec.unstructure(packet, to_client)
        return codec.dumps({"type": "channelSend", "channelId": 2, "message": raw})

    def encode_checked() -> str:
        raw = wire.encode_payload(packet, to_client, what="packet")
        return codec.dumps({"type": "channelSend", "channelId": 2, "message": raw})

    assert json.loads(encode_checked()) == json.loads(FRAME)
    rows = {
        "decode: JSON only": decode_json,
        "decode: envelope": decode_envelope,
        "decode: envelope + fragment packet": decode_full,
        "encode: fragment packet + envelope": encode_plain,
        "encode: checked (ServerSession.send_packet)": encode_checked,
    }
    return {
        "python": platform.python_version(),
        "orjson": codec.USING_ORJSON,
        "results": {name: round(_best_us(func, number, repeat), 3) for name, func in rows.items()},
    }


def print_table(title: str, report: dict[str, Any], unit: str) -> None:
    orjson = "yes" if report["orjson"] else "no (stdlib json)"
    print(f"{title} (Python {report['python']}, orjson: {orjson})")
    width = max(len(name) for name in report["results"])
    print(f"{'operation':<{width}}  {unit:>12}")
    for name, value in report["results"].items():
        print(f"{name:<{width}}  {value:>12,.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    report = run(quick=args.quick)
    print_table("codec: one channelSend fragment frame", report, "µs/op")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
