"""The greeting probe: ``GET /lmstudio-greeting`` with a minimal HTTP/1.1 client.

LM Studio answers ``200 {"lmstudio":true}`` on its API port; discovery probes the
well-known ports with this and takes the first that answers. Anything else (another
HTTP server, a non-HTTP service, ``"lmstudio": "true"`` as a string) is "not LM Studio".

Plain ``anyio.connect_tcp``, so it runs on Trio and asyncio with no HTTP dependency. The
response is read with ``Connection: close``; ``Content-Length``, chunked and
read-to-end bodies are understood, and every part of the response is size-capped.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, Literal

import anyio
from anyio.abc import ByteReceiveStream

from ..errors import LMStudioConnectionError
from .transport import describe_os_error

__all__ = ["GreetingFailed", "GreetingFailureKind", "fetch_greeting"]

GREETING_PATH: Final = "/lmstudio-greeting"
MAX_HEAD_SIZE: Final = 16 * 1024
MAX_BODY_SIZE: Final = 64 * 1024

GreetingFailureKind = Literal["refused", "timeout", "unreachable", "not_lmstudio"]

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: .*)?")


class GreetingFailed(LMStudioConnectionError):
    """One place did not answer the LM Studio greeting.

    ``place`` is ``host:port``; ``kind`` is ``"refused"``, ``"timeout"``, ``"unreachable"``
    (DNS or other network error) or ``"not_lmstudio"`` (something else answered);
    ``reason`` says it in words. ``attempts`` is ``((place, reason),)``.
    """

    def __init__(self, place: str, kind: GreetingFailureKind, reason: str) -> None:
        self.place = place
        self.kind: GreetingFailureKind = kind
        self.reason = reason
        super().__init__("no LM Studio greeting", attempts=[(place, reason)])


class _NotLMStudio(Exception):
    """Internal: the peer answered, but not with the LM Studio greeting."""


# A per-probe timeout (not the caller's fail_after) because discovery runs several probes
# at once and must report each one that timed out, by name.
async def fetch_greeting(host: str, port: int, *, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    """Probe ``http://host:port/lmstudio-greeting``; return the greeting JSON object.

    Succeeds only for HTTP 200 with a JSON object body whose ``"lmstudio"`` is ``true``
    (the boolean). Otherwise raises :class:`GreetingFailed` saying why. The whole probe
    (connect, request, response) is bounded by ``timeout`` seconds.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    place = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    greeting: dict[str, Any] | None = None
    with anyio.move_on_after(timeout):
        try:
            greeting = await _probe(host, port, place)
        except _NotLMStudio as exc:
            raise GreetingFailed(place, "not_lmstudio", f"not LM Studio ({exc})") from None
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            reason = "not LM Studio (the connection closed before a complete HTTP response)"
            raise GreetingFailed(place, "not_lmstudio", reason) from exc
        except OSError as exc:
            reason = describe_os_error(exc)
            if reason == "connection refused":
                raise GreetingFailed(place, "refused", reason) from exc
            if reason == "timed out":  # the OS gave up before our timeout did
                raise GreetingFailed(place, "timeout", reason) from exc
            raise GreetingFailed(place, "unreachable", reason) from exc
    if greeting is None:
        raise GreetingFailed(place, "timeout", f"no answer within {timeout:g} s")
    return greeting


async def _probe(host: str, port: int, place: str) -> dict[str, Any]:
    request = (
        f"GET {GREETING_PATH} HTTP/1.1\r\n"
        f"Host: {place}\r\n"
        "Accept: application/json\r\n"
        "User-Agent: lmstudio-sdk\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode("ascii")
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(request)
        reader = _Reader(stream)
        status, headers = await _read_head(reader)
        if status != 200:
            raise _NotLMStudio(f"HTTP {status} for {GREETING_PATH}")
        body = await _read_body(reader, headers)
    return _parse_greeting(body)


async def _read_head(reader: _Reader) -> tuple[int, dict[str, str]]:
    head = await reader.read_until(b"\r\n\r\n", MAX_HEAD_SIZE, what="HTTP header")
    status_line, *header_lines = head.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise _NotLMStudio("the answer is not an HTTP/1.x response")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise _NotLMStudio("malformed HTTP header")
        headers[name.strip().lower()] = value.strip()
    return int(match.group(1)), headers


async def _read_body(reader: _Reader, headers: dict[str, str]) -> bytes:
    transfer_encoding = headers.get("transfer-encoding", "").lower()
    if transfer_encoding:
        if transfer_encoding.rsplit(",", 1)[-1].strip() != "chunked":
            raise _NotLMStudio(f"unsupported Transfer-Encoding {transfer_encoding!r}")
        return await _read_chunked(reader)
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise _NotLMStudio("invalid Content-Length") from None
        if not 0 <= length <= MAX_BODY_SIZE:
            raise _NotLMStudio(f"greeting body of {length} bytes is too large")
        return await reader.read_exactly(length)
    return await reader.read_to_end(MAX_BODY_SIZE)


async def _read_chunked(reader: _Reader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.read_until(b"\r\n", 1024, what="chunk size line")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _NotLMStudio("invalid chunk size in a chunked body") from None
        if size < 0 or len(body) + size > MAX_BODY_SIZE:
            raise _NotLMStudio(f"greeting body over {MAX_BODY_SIZE} bytes is too large")
        if size == 0:
            # Trailer fields, if any, end with an empty line.
            while await reader.read_until(b"\r\n", MAX_HEAD_SIZE, what="chunked trailer"):
                pass
            return bytes(body)
        body += await reader.read_exactly(size)
        if await reader.read_exactly(2) != b"\r\n":
            raise _NotLMStudio("malformed chunked body")


def _parse_greeting(body: bytes) -> dict[str, Any]:
    try:
        greeting = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _NotLMStudio("the greeting is not JSON") from None
    if not isinstance(greeting, dict) or greeting.get("lmstudio") is not True:
        raise _NotLMStudio('the greeting has no "lmstudio": true')
    return greeting


class _Reader:
    """Buffered reads over a byte stream, each one capped."""

    def __init__(self, stream: ByteReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def _fill(self) -> None:
        """Read more bytes; raises ``EndOfStream`` when the peer has finished."""
        self._buffer += await self._stream.receive()

    async def read_until(self, separator: bytes, limit: int, *, what: str) -> bytes:
        while (index := self._buffer.find(separator)) < 0:
            if len(self._buffer) > limit:
                raise _NotLMStudio(f"{what} over {limit} bytes")
            await self._fill()
        if index > limit:
            raise _NotLMStudio(f"{what} over {limit} bytes")
        data = bytes(self._buffer[:index])
        del self._buffer[: index + len(separator)]
        return data

    async def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def read_to_end(self, limit: int) -> bytes:
        try:
            while len(self._buffer) <= limit:
                await self._fill()
        except anyio.EndOfStream:
            return bytes(self._buffer)
        raise _NotLMStudio(f"greeting body over {limit} bytes is too large")
