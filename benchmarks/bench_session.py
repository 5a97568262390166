"""Throughput of the sans-io sessions, with no I/O at all (in the style of wsproto's bench).

Rows, in frames (or round trips) per second:

* ``client: receive fragments``: N ``llm.predict`` fragment frames pushed through
  ``ClientSession.receive_text`` on one open channel, as a streaming prediction does;
* ``server: send fragments``: N checked ``ServerSession.send_packet`` calls;
* ``pair: rpc round trips``: ``call`` -> server ``receive_text`` -> ``reply`` -> client
  ``receive_text``, for a void ``llm.listLoaded`` returning an empty list.

Usage: ``python benchmarks/bench_session.py [--quick] [--frames N] [--json PATH]``.
Other scripts may import :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import attrs

from lmstudio_sdk.protocol import (
    ChannelPacketReceived,
    ClientSession,
    IdentityRegistry,
    RpcSucceeded,
    ServerSession,
    codec,
)
from lmstudio_sdk.protocol.endpoints import llm

# The real predict packets, opened without a creation parameter to keep the bench small.
PREDICT = attrs.evolve(llm.PREDICT, creation_parameter=None)
LIST_LOADED = llm.LIST_LOADED
ENDPOINTS = {PREDICT.name: PREDICT, LIST_LOADED.name: LIST_LOADED}


def _connected_pair() -> tuple[ClientSession, ServerSession]:
    client = ClientSession("guest:bench", "bench-passkey", namespace="llm")
    server = ServerSession("llm", ENDPOINTS, IdentityRegistry())
    server.receive_text(client.start())
    for frame in server.data_to_send():
        client.receive_text(frame)
    return client, server


def _fragment_frame(channel_id: int, index: int) -> str:
    message = {
        "type": "fragment",
        "fragment": {
            "content": f" token{index}",
            "tokensCount": 1,
            "containsDrafted": False,
            "reasoningType": "none",
            "isStructural": False,
        },
    }
    return codec.dumps({"type": "channelSend", "channelId": channel_id, "message": message})


def bench_client_receive(frames: int) -> float:
    client, server = _connected_pair()
    channel_id, create = client.open_channel(PREDICT)
    server.receive_text(create)
    texts = [_fragment_frame(channel_id, i) for i in range(frames)]
    receive = client.receive_text
    start = time.perf_counter()
    for text in texts:
        receive(text)
    elapsed = time.perf_counter() - start
    [event] = client.receive_text(texts[-1])
    assert isinstance(event, ChannelPacketReceived), event
    return frames / elapsed


def bench_server_send(frames: int) -> float:
    client, server = _connected_pair()
    channel_id, create = client.open_channel(PREDICT)
    server.receive_text(create)
    [event] = client.receive_text(_fragment_frame(channel_id, 0))
    assert isinstance(event, ChannelPacketReceived)
    packet = event.packet
    send = server.send_packet
    start = time.perf_counter()
    for _ in range(frames):
        send(channel_id, packet)
    return frames / (time.perf_counter() - start)


def bench_rpc_round_trip(calls: int) -> float:
    client, server = _connected_pair()
    start = time.perf_counter()
    for _ in range(calls):
        call_id, frame = client.call(LIST_LOADED)
        server.receive_text(frame)
        events = client.receive_text(server.reply(call_id, []))
    elapsed = time.perf_counter() - start
    assert events == [RpcSucceeded(call_id, [])], events
    return calls / elapsed


def run(quick: bool = False, frames: int | None = None) -> dict[str, Any]:
    """Time every row; return ``{"python", "orjson", "frames", "results": {row: per second}}``."""
    frames = frames or (5_000 if quick else 100_000)
    best = {
        "client: receive fragments": max(bench_client_receive(frames) for _ in range(3)),
        "server: send fragments": max(bench_server_send(frames) for _ in range(3)),
        "pair: rpc round trips": max(bench_rpc_round_trip(frames // 5) for _ in range(3)),
    }
    return {
        "python": platform.python_version(),
        "orjson": codec.USING_ORJSON,
        "frames": frames,
        "results": {name: round(value) for name, value in best.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    parser.add_argument(
        "--frames", type=int, help="frames per row (default 100000, 5000 with --quick)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 5:
        parser.error("--frames must be at least 5")
    report = run(quick=args.quick, frames=args.frames)
    orjson = "yes" if report["orjson"] else "no (stdlib json)"
    print(
        f"sessions, no I/O: {report['frames']:,} frames per row (Python {report['python']}, orjson: {orjson})"
    )
    width = max(len(name) for name in report["results"])
    print(f"{'operation':<{width}}  {'per second':>12}")
    for name, value in report["results"].items():
        print(f"{name:<{width}}  {value:>12,}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
