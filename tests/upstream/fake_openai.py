"""A small OpenAI-compatible HTTP server for the upstream unit tests (not the real thing:
the ``model`` tests use llama-cpp-python's own server).

It runs its own asyncio loop in a thread, speaks HTTP/1.1 with chunked server-sent events,
records every request, and can misbehave on purpose: stream forever (to watch a client
disconnect), abort the connection after N tokens, refuse ``json_schema`` like
llama-cpp-python does, or lack ``/tokenize``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import attrs


@attrs.define
class Behaviour:
    tokens: list[str] = attrs.Factory(lambda: ["Hello", ",", " world", "!"])
    reasoning: list[str] = attrs.Factory(list)
    tool_call: dict[str, Any] | None = None  # {"name": ..., "arguments": "{...}"}
    endless: bool = False  # stream "tick " until the client goes away
    kill_after: int | None = None  # abort the TCP connection after this many tokens
    finish_reason: str = "stop"
    stop_reason: str | None = None  # vLLM's extra field
    usage: bool = True  # send a usage chunk when asked (stream_options.include_usage)
    reject_json_schema: bool = False
    has_tokenize: bool = True
    embedding_dimensions: int = 3
    refuse: tuple[int, str] | None = None  # answer completions with this error
    embeddings_fail: bool = False  # /v1/embeddings answers 500
    # Like llama-cpp-python: a streamed request with tools ends at once, without a finish
    # reason ("Automatic streaming tool choice is not supported"); unstreamed ones work.
    no_streaming_tools: bool = False


class FakeUpstream:
    """``with FakeUpstream(["m"]) as up: up.url`` is ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, models: list[str], behaviour: Behaviour | None = None) -> None:
        self.models = models
        self.behaviour = behaviour or Behaviour()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0  # streams whose client went away before the end
        self.tokens_sent = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0
        self.disconnected = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop.is_closed() or not self._loop.is_running():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                # Connections still open are aborted (a dead upstream).
                for writer in list(self._writers):
                    writer.transport.abort()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        self._writers: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.requests if p == path]

    # --- HTTP -----------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                length = int(headers.get("content-length", "0"))
                raw = await reader.readexactly(length) if length else b""
                body = json.loads(raw) if raw else {}
                self.requests.append((path, body))
                self.headers.append(headers)
                await self._route(method, path, body, headers, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _json(self, writer: asyncio.StreamWriter, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()

    async def _route(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str],
        writer: asyncio.StreamWriter,
    ) -> None:
        b = self.behaviour
        if path == "/v1/models":
            data = [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]
            await self._json(writer, 200, {"object": "list", "data": data})
        elif path == "/v1/embeddings" and b.embeddings_fail:
            await self._json(writer, 500, {"error": {"message": "not an embedding model"}})
        elif path == "/v1/embeddings":
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"index": i, "embedding": [float(len(t)), float(i), 1.0][: b.embedding_dimensions]}
                for i, t in enumerate(inputs)
            ]
            await self._json(writer, 200, {"object": "list", "data": data})
        elif path == "/tokenize" and b.has_tokenize:
            await self._json(writer, 200, {"tokens": [ord(c) for c in body["prompt"]]})
        elif path in ("/v1/chat/completions", "/v1/completions"):
            if b.refuse is not None:
                await self._json(writer, b.refuse[0], {"error": {"message": b.refuse[1]}})
                return
            rf = body.get("response_format")
            if b.reject_json_schema and isinstance(rf, dict) and rf.get("type") == "json_schema":
                # As llama-cpp-python does: a validation error, answered with status 500.
                message = (
                    "('body', 'response_format', 'type') Input should be 'text' or 'json_object'"
                )
                await self._json(writer, 500, {"error": {"message": message}})
                return
            if body.get("stream") is False:
                await self._complete(path, body, writer)
            elif b.no_streaming_tools and body.get("tools"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                )
                await writer.drain()
            else:
                await self._stream(path, body, writer)
        else:
            await self._json(writer, 404, {"detail": "Not Found"})

    async def _stream(self, path: str, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chat = path.endswith("chat/completions")
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            for chunk in self._chunks(chat, body):
                if chunk is None:  # kill: the upstream process dies
                    writer.transport.abort()
                    return
                data = f"data: {json.dumps(chunk) if isinstance(chunk, dict) else chunk}\n\n"
                encoded = data.encode()
                writer.write(b"%x\r\n%s\r\n" % (len(encoded), encoded))
                await writer.drain()
                await asyncio.sleep(0.002 if self.behaviour.endless else 0)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.disconnects += 1
            self.disconnected.set()
        finally:
            self._in_flight -= 1

    async def _complete(
        self, path: str, body: dict[str, Any], writer: asyncio.StreamWriter
    ) -> None:
        """An unstreamed answer: the chunks of a streamed one, put together."""
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        finish, usage = "stop", None
        for chunk in self._chunks(path.endswith("chat/completions"), body):
            if not isinstance(chunk, dict):
                continue
            usage = chunk.get("usage", usage)
            for choice in chunk["choices"]:
                delta = choice.get("delta", {})
                content.append(delta.get("content") or "")
                for call in delta.get("tool_calls", []):
                    entry = calls.setdefault(
                        call["index"],
                        {
                            "id": call.get("id"),
                            "type": "function",
                            "function": {"name": "", "arguments": ""},
                        },
                    )
                    function = call.get("function", {})
                    entry["function"]["name"] += function.get("name", "")
                    entry["function"]["arguments"] += function.get("arguments", "")
                finish = choice.get("finish_reason") or finish
        message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
        if calls:
            message["tool_calls"] = list(calls.values())
        answer = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        if usage is not None:
            answer["usage"] = usage
        await self._json(writer, 200, answer)

    def _chunks(self, chat: bool, body: dict[str, Any]) -> Iterator[dict[str, Any] | str | None]:
        b = self.behaviour

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                out["delta"] = delta
            else:
                out["text"] = delta.get("content", "")
            if finish and b.stop_reason is not None:
                out["stop_reason"] = b.stop_reason
            return {"id": "x", "object": "chunk", "choices": [out]}

        count = 0
        for text in b.reasoning:
            count += 1
            yield choice({"reasoning_content": text})
        if b.endless:
            while True:
                self.tokens_sent += 1
                yield choice({"content": "tick "})
        tokens = b.tokens
        if body.get("response_format"):
            tokens = ['{"answer"', ": ", "42}"]
        for text in tokens:
            if b.kill_after is not None and count >= b.kill_after:
                yield None
                return
            count += 1
            self.tokens_sent += 1
            yield choice({"content": text})
        finish = b.finish_reason
        messages = body.get("messages") or [{}]
        if b.tool_call is not None and body.get("tools") and messages[-1].get("role") != "tool":
            name, arguments = b.tool_call["name"], b.tool_call["arguments"]
            yield choice({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": name}}]})
            half = len(arguments) // 2
            for part in (arguments[:half], arguments[half:]):
                yield choice({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            count += 3
            finish = "tool_calls"
        yield choice({}, finish)
        if b.usage and body.get("stream_options", {}).get("include_usage"):
            yield {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": count}}
        yield "[DONE]"
