"""The greeting probe against tiny loopback HTTP servers started by each test.

Each server answers every connection with one canned response (or never answers), on
127.0.0.1 port 0, inside the test's own task group; both backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from lmstudio_sdk._async._http import GreetingFailed, fetch_greeting
from lmstudio_sdk.errors import LMStudioConnectionError

GOOD_BODY = b'{"lmstudio":true}'


def response(body: bytes, *, status: str = "200 OK", headers: str | None = None) -> bytes:
    if headers is None:
        headers = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return f"HTTP/1.1 {status}\r\n{headers}\r\n".encode() + body


class HttpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[bytes] = []


@asynccontextmanager
async def serve(answer: bytes | None) -> AsyncIterator[HttpServer]:
    """Serve ``answer`` then close, on every connection; ``None`` means never answer."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = HttpServer(listener.extra(SocketAttribute.local_port))

    async def handle(stream: SocketStream) -> None:
        async with stream:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive()
            server.requests.append(request)
            if answer is None:
                await anyio.sleep_forever()  # a server that accepts and then says nothing
            else:
                # The probe may hang up mid-answer (it caps what it reads): not our failure.
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stream.send(answer)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield server
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(response(GOOD_BODY), id="content-length"),
        pytest.param(
            response(
                b'5;ext=1\r\n{"lms\r\nc\r\ntudio": true\r\n1\r\n}\r\n0\r\nX-Trailer: yes\r\n\r\n',
                headers="Transfer-Encoding: chunked\r\n",
            ),
            id="chunked",
        ),
        pytest.param(
            response(b'{"lmstudio": true, "version": "0.3.20"}', headers="Connection: close\r\n"),
            id="read-to-end",
        ),
    ],
)
async def test_good_greeting(answer: bytes) -> None:
    async with serve(answer) as server:
        greeting = await fetch_greeting("127.0.0.1", server.port, timeout=5)
    assert greeting["lmstudio"] is True
    request_line, *header_lines = server.requests[0].decode().split("\r\n")
    assert request_line == "GET /lmstudio-greeting HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}" in header_lines


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(response(b'{"lmstudio": "true"}'), '"lmstudio": true', id="string-true"),
        pytest.param(response(b'{"lmstudio": 1}'), '"lmstudio": true', id="number-one"),
        pytest.param(response(b'{"ollama": true}'), '"lmstudio": true', id="wrong-json"),
        pytest.param(response(b"[true]"), '"lmstudio": true', id="json-array"),
        pytest.param(response(b"<html>hello</html>"), "not JSON", id="html"),
        pytest.param(response(b"not found", status="404 Not Found"), "HTTP 404", id="404"),
        pytest.param(response(GOOD_BODY, status="301 Moved"), "HTTP 301", id="redirect"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", "before a complete HTTP", id="not-http-eof"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP/1.x", id="not-http"),
        pytest.param(b"", "before a complete HTTP", id="closes-at-once"),
        pytest.param(
            response(GOOD_BODY[:5], headers="Content-Length: 17\r\n"), "before", id="short"
        ),
        pytest.param(
            response(b"", headers="Content-Length: 10000000\r\n"), "too large", id="huge-length"
        ),
        pytest.param(
            response(b"fffffff\r\n", headers="Transfer-Encoding: chunked\r\n"),
            "too large",
            id="huge-chunk",
        ),
        pytest.param(
            response(b"x" * 70_000, headers="Connection: close\r\n"), "too large", id="huge-eof"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 5000, "header over", id="huge-head"),
    ],
)
async def test_not_lm_studio(answer: bytes, expected: str) -> None:
    async with serve(answer) as server:
        with pytest.raises(GreetingFailed) as info:
            await fetch_greeting("127.0.0.1", server.port, timeout=5)
    failure = info.value
    assert failure.kind == "not_lmstudio"
    assert expected in failure.reason
    assert failure.reason.startswith("not LM Studio")
    assert failure.place == f"127.0.0.1:{server.port}"


async def test_refused(refused_port: int) -> None:
    with pytest.raises(GreetingFailed) as info:
        await fetch_greeting("127.0.0.1", refused_port, timeout=5)
    assert info.value.kind == "refused"
    assert info.value.reason == "connection refused"
    assert isinstance(info.value, LMStudioConnectionError)
    assert info.value.attempts == ((f"127.0.0.1:{refused_port}", "connection refused"),)
    assert f"127.0.0.1:{refused_port}: connection refused" in str(info.value)


async def test_silent_server_times_out() -> None:
    async with serve(None) as server:
        with anyio.fail_after(5), pytest.raises(GreetingFailed) as info:
            await fetch_greeting("127.0.0.1", server.port, timeout=0.2)
    assert info.value.kind == "timeout"
    assert info.value.reason == "no answer within 0.2 s"


async def test_every_failure_is_told_apart(refused_port: int) -> None:
    """What discovery does: probe several places at once and name each failure."""
    failures: dict[str, str] = {}
    async with serve(None) as silent, serve(response(b"{}")) as other:
        ports = {"refused": refused_port, "timeout": silent.port, "not_lmstudio": other.port}

        async def probe(port: int) -> None:
            try:
                await fetch_greeting("127.0.0.1", port, timeout=0.2)
            except GreetingFailed as exc:
                failures[exc.place] = exc.kind

        async with anyio.create_task_group() as tg:
            for port in ports.values():
                tg.start_soon(probe, port)
    assert failures == {f"127.0.0.1:{port}": kind for kind, port in ports.items()}


async def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        await fetch_greeting("127.0.0.1", 1, timeout=0)
