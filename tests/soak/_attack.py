"""The hostile side of the load test, in its own process: ``python _attack.py PORT``.

Opens 500 websockets that complete the handshake and then sit idle (from 127.0.0.2 to
127.0.0.6, as five machines would), prints ``ready``, then keeps 4 unauthenticated sockets
sending 60 MB frames (reconnecting whenever the server closes one) until stdin closes.
Prints ``done <idle sockets still open> <flood attempts> <seconds since the first idle
socket was opened>`` at the end.

It runs at the lowest CPU priority: the test is about how the server copes with what the
attackers send, as if they were other machines, not about the test machine's CPU
being shared with the attacking process.
"""

from __future__ import annotations

import os
import struct
import sys
import time

import anyio
import anyio.abc

IDLE = 500
FLOODERS = 4
FRAME = 60 * 2**20
UPGRADE = (
    b"GET /llm HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def handshake(port: int, local_host: str) -> anyio.abc.SocketStream:
    stream = await anyio.connect_tcp("127.0.0.1", port, local_host=local_host)
    await stream.send(UPGRADE)
    received = b""
    while b"\r\n\r\n" not in received:
        received += await stream.receive()
    if not received.startswith(b"HTTP/1.1 101"):
        await stream.aclose()
        raise ConnectionError(received.split(b"\r\n", 1)[0].decode())
    return stream


async def flood(port: int, stop: anyio.Event, attempts: list[int]) -> None:
    chunk = os.urandom(2**16)
    header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", FRAME) + b"\x01\x02\x03\x04"
    while not stop.is_set():
        attempts[0] += 1
        try:
            stream = await handshake(port, "127.0.0.1")
        except (OSError, ConnectionError, anyio.EndOfStream, anyio.BrokenResourceError):
            # Refused, or held by the server and then dropped: retry at once.
            await anyio.sleep(0.01)
            continue
        async with stream:
            try:
                await stream.send(header)
                for _ in range(FRAME // len(chunk)):
                    if stop.is_set():
                        break
                    await stream.send(chunk)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # the server closed it (1009) and the rest of the frame is refused


async def main(port: int) -> None:
    idle: list[anyio.abc.SocketStream] = []
    started = time.monotonic()
    for index in range(IDLE):
        idle.append(await handshake(port, f"127.0.0.{2 + index % 5}"))
    print("ready", flush=True)
    stop = anyio.Event()
    attempts = [0]
    async with anyio.create_task_group() as tg:
        for _ in range(FLOODERS):
            tg.start_soon(flood, port, stop, attempts)
        await anyio.to_thread.run_sync(sys.stdin.read)
        # All at once, not one after the other: this process runs at the lowest priority,
        # and the server closes idle sockets after its auth timeout (10 s).
        quiet: list[anyio.abc.SocketStream] = []
        async with anyio.create_task_group() as checks:
            for stream in idle:
                checks.start_soon(_check_quiet, stream, quiet)
        still_open = len(quiet)
        elapsed = time.monotonic() - started
        stop.set()
    for stream in idle:
        await stream.aclose()
    print(f"done {still_open} {attempts[0]} {elapsed:.1f}", flush=True)


async def _check_quiet(stream: anyio.abc.SocketStream, quiet: list[anyio.abc.SocketStream]) -> None:
    """Add ``stream`` to ``quiet`` if the server sends nothing on it (holds it open)."""
    try:
        with anyio.fail_after(0.05):
            await stream.receive()
    except TimeoutError:
        quiet.append(stream)  # nothing came: the server still holds it open
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        pass  # a close (after data, such as the auth timeout's failure reply, too)


if __name__ == "__main__":
    os.nice(19)
    anyio.run(main, int(sys.argv[1]))
