"""A stream source that is never the bottleneck: pre-encoded fragment frames, relayed protocol.

Started by ``benchmarks/run.py`` as ``python benchmarks/_fastsource.py '<json config>'``
with ``{"upstream": "127.0.0.1:PORT", "n": N, "fps": F, "port": 0}``; prints
``READY {"port": ...}`` once it listens, and exits on end of input.

Why: streaming from our own server, the server's cost per fragment (~10-30 us) is above the
client's, so the client's overhead hides in the wait. Here a client's measured cost is its
own: each websocket this process accepts is relayed frame by frame to the same path on the
real benchmark server (``_server.py``), so greeting, authentication, ``getOrLoad``, model
info and the prediction's ``success`` and ``channelClose`` all come from the real server,
exactly as any client expects them. Only the prediction's fragments are replaced: the
model ``bench-fast`` sends one fragment, and this relay sends ``N`` copies of that frame,
already encoded as websocket bytes, straight into the socket:

* ``fps`` 0 (burst): all ``N`` frames in one write (the kernel hands them to the client as
  fast as it reads);
* ``fps`` > 0 (paced): frames written on a 1 ms tick, as many as are due by then.

Nothing is parsed per fragment and nothing is encoded per fragment; the per-frame cost of
this process is a memory copy. Messages from the client are parsed (to spot a
``channelCreate`` of ``predict``) and relayed unchanged.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

TICK_S = 0.001


def encode_text_frame(text: str) -> bytes:
    """One unmasked, final text frame (RFC 6455 section 5.2), as a server sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes([0x81, size])
    elif size < 1 << 16:
        header = bytes([0x81, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + size.to_bytes(8, "big")
    return header + payload


class Relay:
    """One accepted client websocket and its upstream twin."""

    def __init__(self, config: dict[str, Any], client: ServerConnection) -> None:
        self.n: int = config["n"]
        self.fps: float = config["fps"]
        self.upstream_host: str = config["upstream"]
        self.client = client
        self.predict_channels: set[int] = set()
        self.expanded = 0

    async def run(self) -> None:
        path = self.client.request.path if self.client.request else "/"
        async with connect(
            f"ws://{self.upstream_host}{path}", compression=None, proxy=None, max_size=None
        ) as upstream:
            to_upstream = asyncio.create_task(self._client_to_upstream(upstream))
            try:
                await self._upstream_to_client(upstream)
            finally:
                to_upstream.cancel()

    async def _client_to_upstream(self, upstream: ClientConnection) -> None:
        try:
            async for message in self.client:
                if isinstance(message, str) and '"channelCreate"' in message:
                    frame = json.loads(message)
                    if frame.get("type") == "channelCreate" and frame.get("endpoint") == "predict":
                        self.predict_channels.add(frame["channelId"])
                await upstream.send(message)
        except ConnectionClosed:
            pass
        await upstream.close()

    async def _upstream_to_client(self, upstream: ClientConnection) -> None:
        try:
            async for message in upstream:
                if (
                    isinstance(message, str)
                    and self.predict_channels
                    and '"fragment"' in message
                    and self._is_predict_fragment(message)
                ):
                    await self._expand(message)
                    continue
                await self.client.send(message)
        except ConnectionClosed:
            pass
        await self.client.close()

    def _is_predict_fragment(self, message: str) -> bool:
        frame = json.loads(message)
        return (
            frame.get("type") == "channelSend"
            and frame.get("channelId") in self.predict_channels
            and frame.get("message", {}).get("type") == "fragment"
        )

    async def _expand(self, message: str) -> None:
        transport = self.client.transport
        frame = encode_text_frame(message)
        if self.fps <= 0:
            transport.write(frame * self.n)
        else:
            start = time.perf_counter()
            sent = 0
            while sent < self.n:
                due = min(self.n, int((time.perf_counter() - start) * self.fps) + 1)
                if due > sent:
                    transport.write(frame * (due - sent))
                    sent = due
                await asyncio.sleep(TICK_S)
        self.expanded += self.n


def _greeting(upstream: str) -> bytes:
    with urllib.request.urlopen(f"http://{upstream}/lmstudio-greeting", timeout=10) as reply:
        body: bytes = reply.read()
    return body


async def main() -> None:
    config = json.loads(sys.argv[1])
    greeting = _greeting(config["upstream"])

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        # Discovery's plain HTTP probe: answer as the real server does.
        if request.headers.get("Upgrade", "").lower() != "websocket":
            headers = Headers(
                [("Content-Type", "application/json"), ("Content-Length", str(len(greeting)))]
            )
            return Response(200, "OK", headers, greeting)
        return None

    async def handler(connection: ServerConnection) -> None:
        await Relay(config, connection).run()

    async with serve(
        handler,
        "127.0.0.1",
        config.get("port", 0),
        compression=None,
        max_size=None,
        process_request=process_request,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print("READY " + json.dumps({"port": port}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
