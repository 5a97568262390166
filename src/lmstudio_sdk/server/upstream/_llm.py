"""A language model served by upstreams: one streaming HTTP request per generation.

The server-sent events of ``/chat/completions`` (or ``/completions``) become the engine's
events: ``delta.content`` becomes :class:`TokenPiece` (through :class:`StreamAssembler`,
for stop strings and ``<think>`` tags in the text), ``delta.reasoning_content`` becomes
reasoning pieces between structural tags, ``delta.tool_calls`` become tool-call events, and
the last chunks give the stop reason and, where the upstream sends them, the token counts.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

import anyio
import attrs
import httpx

from ...protocol.codec import loads
from ..engines import events
from ..engines._assembly import StreamAssembler
from ..engines._templates import render_chat_template
from ..engines.base import (
    ContextLengthState,
    EngineError,
    GenerationRequest,
    GenerationStream,
    LLMEngine,
    ModelFacts,
    ModelNotLoadedError,
    ProgressCallback,
    TemplateMessage,
    TemplateOptions,
)
from ._pool import Member, UpstreamError, UpstreamPool, send
from ._request import build_body

__all__ = ["UpstreamLLMEngine"]


_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""What ``applyPromptTemplate`` shows: the upstream applies its own template, unseen here."""


PROMPT_COUNT_TIMEOUT = 2.0
"""Seconds the prompt-token count may take at the end of a generation (stats only)."""


@attrs.define
class _Call:
    call_id: str | None
    name: str = ""
    arguments: list[str] = attrs.Factory(list)


class _UpstreamStream(GenerationStream):
    def __init__(
        self,
        pool: UpstreamPool,
        member: Member,
        response: httpx.Response,
        request: GenerationRequest,
        started: float,
        model_id: str,
    ) -> None:
        self._pool = pool
        self._member = member
        self._response = response
        # Raw network chunks, split into lines here: one read (and one cancel scope) per
        # chunk the upstream flushed, not per line.
        self._chunks = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
        self._lines: deque[bytes] = deque()
        self._partial = b""
        self._request = request
        self._model_id = model_id
        self._started = started
        self._assembler = StreamAssembler(request.stop_strings, request.reasoning)
        self._queue: deque[events.GenerationEvent] = deque()
        self._stop_requested: events.StopReason | None = None
        self._scope: anyio.CancelScope | None = None
        self._ended = False
        self._counted = 0
        self._first_token: float | None = None
        self._usage: Mapping[str, Any] | None = None
        self._finish_reason: str | None = None
        self._upstream_stop: object = None
        self._stop_string: str | None = None
        self._calls: dict[int, _Call] = {}
        self._in_reasoning_field = False
        self._prompt_tokens = 0

    def stop(self, reason: events.StopReason = "userStopped") -> None:
        if self._finished is not None or self._stop_requested is not None:
            return
        self._stop_requested = reason
        if self._scope is not None:
            self._scope.cancel()  # interrupts the read that waits for the next chunk

    async def __anext__(self) -> events.GenerationEvent:
        while not self._queue:
            if self._finished is not None:
                raise StopAsyncIteration
            if self._stop_requested is not None or self._ended:
                await self._close()
                await self._count_prompt_tokens()
                self._finish(self._stop_requested)
                continue
            if self._lines:
                self._handle_line(self._lines.popleft())
                continue
            data: bytes | None = None
            with anyio.CancelScope() as scope:
                self._scope = scope
                try:
                    data = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._ended = True
                    if self._partial:  # a last line without a newline
                        self._handle_line(self._partial)
                    if self._finish_reason is None:
                        await self._unfinished()
                except httpx.HTTPError as exc:
                    if not self._may_ask_unstreamed():
                        raise self._pool.broken(self._member, exc) from exc
                    # A dead upstream fails this too, and is then marked down.
                    self._ended = True
                    await self._without_streaming()
            self._scope = None
            if data is not None and not scope.cancelled_caught:
                *lines, self._partial = (self._partial + data).split(b"\n")
                self._lines.extend(lines)
        event = self._queue.popleft()
        if isinstance(event, events.Finished):
            self._finished = event
        return event

    def _may_ask_unstreamed(self) -> bool:
        """llama-cpp-python fails a streamed request when the model picks a tool on its own
        ("Automatic streaming tool choice is not supported"): the stream breaks off or ends
        without a finish reason. With tools and nothing sent yet, the request is asked
        again without streaming."""
        return (
            bool(self._request.tools) and self._request.messages is not None and not (self._counted)
        )

    async def _unfinished(self) -> None:
        """The upstream ended its answer cleanly but without a finish reason: it failed the
        request (its own log says why); see :meth:`_may_ask_unstreamed`."""
        if self._may_ask_unstreamed():
            await self._without_streaming()
            return
        raise UpstreamError(
            f"{self._member.describe()} ended its answer without a finish reason.",
            suggestion="The upstream's log says why.",
        )

    async def _without_streaming(self) -> None:
        member = self._member
        path, body = build_body(
            self._model_id,
            self._request,
            json_object_dialect=member.json_object_dialect,
            extensions=member.config.sampling_extensions,
        )
        body["stream"] = False
        body.pop("stream_options", None)
        try:
            response = await send(
                member, member.client.build_request("POST", path, json=body), stream=False
            )
        except httpx.HTTPError as exc:
            raise self._pool.broken(member, exc) from exc
        if response.status_code >= 400:
            raise self._pool.refusal(member, response)
        try:
            answer = response.json()
            choice = answer["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._pool.broken(member, exc) from exc
        if isinstance(answer.get("usage"), Mapping):
            self._usage = answer["usage"]
        calls = message.get("tool_calls") or []
        delta = {
            "content": message.get("content"),
            "reasoning_content": message.get("reasoning_content"),
            "tool_calls": [
                {**call, "index": index}
                for index, call in enumerate(calls)
                if isinstance(call, Mapping)
            ],
        }
        self._handle_choice(
            {"delta": delta, "finish_reason": choice.get("finish_reason") or "stop"}
        )

    async def _close(self) -> None:
        """Close the HTTP response (the upstream sees its client go away) and the reader."""
        with anyio.CancelScope(shield=True):
            await self._response.aclose()
            await self._chunks.aclose()

    async def _count_prompt_tokens(self) -> None:
        """Without a usage report (llama-cpp-python sends none when streaming), count the
        prompt with the upstream's tokenizer: exact for ChatML models, else close."""
        if isinstance((self._usage or {}).get("prompt_tokens"), int):
            return
        # No tokenizer to ask (or too slow): the stats say 0.
        with (
            anyio.move_on_after(PROMPT_COUNT_TIMEOUT, shield=True),
            contextlib.suppress(EngineError, httpx.HTTPError, ValueError),
        ):
            tokens = await self._pool.tokenize(
                self._model_id, self._request.prompt, member=self._member
            )
            self._prompt_tokens = len(tokens)

    # --- parsing --------------------------------------------------------------------------

    def _handle_line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return  # blank separators, ": ping" comments, "event:" lines
        data = line[5:].strip()
        if data == b"[DONE]":
            self._ended = True
            return
        try:
            chunk = loads(data)  # orjson when installed (the `fast` extra)
        except ValueError as exc:
            raise self._pool.broken(self._member, exc) from exc
        if not isinstance(chunk, Mapping):
            return
        if chunk.get("error"):
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, Mapping) else error
            raise UpstreamError(f"{self._member.describe()} reported: {message}")
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if isinstance(choice, Mapping) and choice.get("index", 0) == 0:
                self._handle_choice(choice)

    def _token_arrived(self) -> None:
        self._counted += 1
        if self._first_token is None:
            self._first_token = anyio.current_time()

    def _handle_choice(self, choice: Mapping[str, Any]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, Mapping):
            delta = {"content": choice.get("text")}  # /completions
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self._token_arrived()
            self._reasoning(reasoning)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._token_arrived()
            self._end_reasoning()
            pieces, stop_string = self._assembler.feed(content)
            self._queue.extend(pieces)
            if stop_string is not None:
                # The upstream did not stop on it (or does not support stop): we do.
                self._stop_string = stop_string
                self._stop_requested = "stopStringFound"
        for call in delta.get("tool_calls") or []:
            if isinstance(call, Mapping):
                self._tool_call(call)
        if choice.get("finish_reason"):
            self._finish_reason = str(choice["finish_reason"])
            self._upstream_stop = choice.get("stop_reason")  # vLLM: the stop string matched

    def _reasoning(self, text: str) -> None:
        parsing = self._request.reasoning
        if parsing is None:
            self._queue.append(events.TokenPiece(text, 1))
            return
        if not self._in_reasoning_field:
            self._in_reasoning_field = True
            self._queue.append(
                events.TokenPiece(parsing.start_string, 0, "reasoningStartTag", True)
            )
        self._queue.append(events.TokenPiece(text, 1, "reasoning"))

    def _end_reasoning(self) -> None:
        if self._in_reasoning_field and self._request.reasoning is not None:
            self._in_reasoning_field = False
            end = self._request.reasoning.end_string
            self._queue.append(events.TokenPiece(end, 0, "reasoningEndTag", True))

    def _tool_call(self, delta: Mapping[str, Any]) -> None:
        self._token_arrived()
        self._end_reasoning()
        index = delta.get("index", len(self._calls))
        index = index if isinstance(index, int) else len(self._calls)
        call = self._calls.get(index)
        if call is None:
            call_id = delta.get("id")
            call = self._calls[index] = _Call(call_id if isinstance(call_id, str) else None)
            self._queue.append(events.ToolCallStart(call.call_id))
        function = delta.get("function")
        if not isinstance(function, Mapping):
            return
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
            self._queue.append(events.ToolCallName(name))
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            call.arguments.append(arguments)
            self._queue.append(events.ToolCallArgumentFragment(arguments))
        elif isinstance(arguments, Mapping):  # some servers send an object
            text = json.dumps(arguments)
            call.arguments.append(text)
            self._queue.append(events.ToolCallArgumentFragment(text))

    # --- the end --------------------------------------------------------------------------

    def _finish(self, stopped: events.StopReason | None) -> None:
        if stopped != "userStopped" and stopped != "modelUnloaded":
            self._queue.extend(self._assembler.flush())
            self._end_reasoning()
            for call in self._calls.values():
                self._queue.append(self._end_call(call))
        now = anyio.current_time()
        usage = self._usage or {}
        predicted = usage.get("completion_tokens")
        if not isinstance(predicted, int) or stopped is not None:
            predicted = self._counted
        prompt = usage.get("prompt_tokens", self._prompt_tokens)
        first = self._first_token
        self._queue.append(
            events.Finished(
                stop_reason=stopped or self._stop_reason(),
                stop_string=self._stop_string,
                prompt_tokens=prompt if isinstance(prompt, int) else 0,
                predicted_tokens=predicted,
                time_to_first_token=None if first is None else first - self._started,
                tokens_per_second=(
                    predicted / (now - first) if first is not None and now > first else None
                ),
                total_time=now - self._started,
            )
        )
        self._pool.mark_up(self._member)

    def _end_call(self, call: _Call) -> events.GenerationEvent:
        raw = "".join(call.arguments)
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError:
            arguments = None
        if not call.name or not isinstance(arguments, Mapping):
            return events.ToolCallFailed(
                f"The upstream sent a tool call that cannot be used (name {call.name!r}, "
                f"arguments {raw[:200]!r}).",
                raw_content=raw,
            )
        return events.ToolCallEnd(call.name, arguments, call.call_id, raw_content=raw)

    def _stop_reason(self) -> events.StopReason:
        reason = self._finish_reason
        if self._calls or reason in ("tool_calls", "function_call"):
            return "toolCalls"
        if reason == "length":
            return (
                "maxPredictedTokensReached" if self._request.max_tokens else "contextLengthReached"
            )
        if (
            isinstance(self._upstream_stop, str)
            and self._upstream_stop in self._request.stop_strings
        ):
            self._stop_string = self._upstream_stop
            return "stopStringFound"
        return "eosFound"


class UpstreamLLMEngine(ContextLengthState, LLMEngine):
    """A language model one or more upstreams serve (see :mod:`..upstream`).

    Loading is a no-op beyond checking the context length (the upstream owns its models);
    generations run concurrently, one HTTP request each.
    """

    def __init__(self, facts: ModelFacts, pool: UpstreamPool) -> None:
        self.facts = facts
        self._pool = pool
        self._streams: set[_UpstreamStream] = set()

    async def load(
        self, context_length: int | None = None, *, progress: ProgressCallback | None = None
    ) -> None:
        self._context_length = self._check_context_length(
            context_length, self.facts.max_context_length
        )
        if progress is not None:
            progress(1.0)

    async def aclose(self) -> None:
        self._context_length = None
        for stream in list(self._streams):
            stream.stop("modelUnloaded")

    async def tokenize(self, text: str) -> list[int]:
        return await self._pool.tokenize(self.facts.model_key, text)

    async def _apply_template(
        self,
        messages: Sequence[TemplateMessage] | Sequence[Mapping[str, Any]],
        options: TemplateOptions,
    ) -> str:
        return render_chat_template(
            options.template or _CHATML,
            messages,
            tools=options.tools,
            add_generation_prompt=options.add_generation_prompt,
        )

    def generate(self, request: GenerationRequest) -> AbstractAsyncContextManager[GenerationStream]:
        return self._generate(request)

    @asynccontextmanager
    async def _generate(self, request: GenerationRequest) -> AsyncIterator[GenerationStream]:
        if not self.loaded:
            raise ModelNotLoadedError(f"{self.facts.model_key} is not loaded.")
        model_id = self.facts.model_key
        started = anyio.current_time()

        def body(member: Member) -> Mapping[str, Any]:
            return build_body(
                model_id,
                request,
                json_object_dialect=member.json_object_dialect,
                extensions=member.config.sampling_extensions,
            )[1]

        path = build_body(model_id, request)[0]
        async with self._pool.stream(model_id, path, body) as (member, response):
            stream = _UpstreamStream(self._pool, member, response, request, started, model_id)
            self._streams.add(stream)
            try:
                yield stream
            finally:
                self._streams.discard(stream)
                await stream._close()
