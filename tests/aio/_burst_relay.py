"""A websocket relay that turns each prediction into one burst, for the fair-delivery tests.

Every frame goes to the real server and back unchanged, except that the ``channelSend``
frames of each ``predict`` channel are held back until the server ends that channel, and
then written to the client with its ``channelClose`` in ONE socket write. So the client's
reader finds the whole prediction already waiting in its socket: the case where a reader
that never yields fills a stream's buffer before its consumer runs once.

It runs its own asyncio loop in a background thread (so any client backend can use it):
``with BurstRelay(upstream_url) as relay: ... relay.url``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from types import TracebackType
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed


def _text_frame(text: str) -> bytes:
    """One unmasked, final text frame (RFC 6455 section 5.2), as a server sends it."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes([0x81, size]) + payload
    if size < 1 << 16:
        return bytes([0x81, 126]) + size.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + size.to_bytes(8, "big") + payload


class BurstRelay:
    """See the module doc."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Server | None = None
        self.bursts = 0  # predictions written as one burst

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def __enter__(self) -> BurstRelay:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = future.result(timeout=10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> Server:
        return await serve(self._relay, "127.0.0.1", 0, compression=None, max_size=None)

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _relay(self, client: ServerConnection) -> None:
        path = client.request.path if client.request else "/"
        predict: set[int] = set()
        held: dict[int, list[bytes]] = {}
        async with connect(
            self._upstream + path, compression=None, proxy=None, max_size=None
        ) as upstream:

            async def to_upstream() -> None:
                try:
                    async for message in client:
                        frame = _parse(message)
                        if frame.get("type") == "channelCreate" and frame["endpoint"] == "predict":
                            predict.add(frame["channelId"])
                        await upstream.send(message)
                except ConnectionClosed:
                    pass
                await upstream.close()

            forward = asyncio.create_task(to_upstream())
            try:
                async for message in upstream:
                    frame = _parse(message)
                    channel = frame.get("channelId")
                    if channel not in predict:
                        await client.send(message)
                    elif frame["type"] == "channelSend":
                        held.setdefault(channel, []).append(_text_frame(str(message)))
                    else:  # the end: everything the channel sent, in one write
                        burst = [*held.pop(channel, []), _text_frame(str(message))]
                        client.transport.write(b"".join(burst))
                        predict.discard(channel)
                        self.bursts += 1
            except ConnectionClosed:
                pass
            finally:
                forward.cancel()
            await client.close()


def _parse(message: str | bytes) -> dict[str, Any]:
    parsed = json.loads(message)
    return parsed if isinstance(parsed, dict) else {}
