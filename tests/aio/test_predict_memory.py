"""Predictions over the in-memory transport, with a fake LM Studio in the same loop.

Timing scenarios (a cancel scope that cuts a stream, an inactivity timeout) run on asyncio,
Trio and Trio's autojump clock; the fake server records every frame and cancel it gets,
so "nothing was sent" and "the cancel reached the server" are checked, not assumed.
"""

# pytest.raises() wraps whole stream scopes on purpose: the error must come out of them.
# ruff: noqa: PT012

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from _fake_server import (
    FakeServer,
    ServerChannel,
    backend,
    connected,
    fragment,
    llm_instance,
    stream_until_cancelled,
    success,
)

from lmstudio_sdk import (
    AsyncLLM,
    LMStudioError,
    LMStudioServerError,
    LMStudioTimeoutError,
    PredictionFragment,
    RemoteProtocolError,
    StructuredOutputError,
)
from lmstudio_sdk.protocol.endpoints import llm

MODEL = "smollm2-135m-instruct"
TIMING = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio", "autojump"], indirect=True)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    return backend(request.param)


def fake_server() -> FakeServer:
    server = FakeServer()

    async def already_loaded(ch: ServerChannel) -> None:
        await ch.send(llm.GetOrLoadAlreadyLoaded(llm_instance(MODEL)))

    server.channels["llm.getOrLoad"] = already_loaded
    return server


@asynccontextmanager
async def model_of(server: FakeServer, **options: Any) -> AsyncIterator[AsyncLLM]:
    async with connected(server, **options) as client:
        yield await client.llm.model(MODEL)


def created(server: FakeServer) -> list[dict[str, Any]]:
    """The ``channelCreate`` frames the server got on the llm socket (predictions)."""
    return [
        frame
        for frame in server.received("llm")
        if frame.get("type") == "channelCreate" and frame.get("endpoint") != "getOrLoad"
    ]


class Ticker:
    """A predict handler: one fragment every ``interval`` s until the client cancels, then
    ``success`` with ``userStopped``, like LM Studio. Records what it sent."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.sent: list[str] = []

    async def __call__(self, ch: ServerChannel) -> None:
        n = 0
        while not ch.cancelled.is_set():
            text = f"t{n} "
            await ch.send(fragment(text))
            self.sent.append(text)
            n += 1
            with anyio.move_on_after(self.interval):
                await ch.cancelled.wait()
        await ch.send(success("userStopped"))


# ------------------------------------------------------------------------------ timing


@TIMING
async def test_move_on_after_cuts_the_stream_and_the_result_is_the_servers(
    anyio_backend: Any,
) -> None:
    server = fake_server()
    ticker = server.channels["llm.predict"] = Ticker(0.05)
    seen: list[str] = []
    async with model_of(server) as model:
        with anyio.move_on_after(0.175) as scope:
            async with model.respond_stream("Hi") as stream:
                async for event in stream.fragments():
                    seen.append(event.content)
    assert scope.cancelled_caught
    assert server.cancels == ["llm.predict"]
    result = stream.result()
    assert result.stop_reason == "userStopped"
    assert result.content == "".join(ticker.sent)  # consumed + drained: nothing lost
    assert "".join(seen) == result.content[: len("".join(seen))]
    if anyio_backend[1]:  # the autojump clock: fragments at t = 0, 0.05, 0.1, 0.15
        assert ticker.sent == ["t0 ", "t1 ", "t2 ", "t3 "]


@TIMING
async def test_respond_cancelled_by_fail_after_cancels_on_the_server(anyio_backend: Any) -> None:
    server = fake_server()
    server.channels["llm.predict"] = Ticker(0.05)
    async with model_of(server) as model:
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.12):
                await model.respond("Hi")
        assert server.cancels == ["llm.predict"]


@TIMING
async def test_a_silent_prediction_fails_with_a_timeout_not_a_hang(anyio_backend: Any) -> None:
    server = fake_server()

    async def one_then_silence(ch: ServerChannel) -> None:
        await stream_until_cancelled(ch, count=1)

    server.channels["llm.predict"] = one_then_silence
    async with model_of(server) as model:
        with anyio.fail_after(30), pytest.raises(LMStudioTimeoutError, match=r"nothing for 0\.5 s"):
            await model.respond("Hi", timeout=0.5)
        assert server.cancels == ["llm.predict"]
        # The client default applies without timeout=.
    async with model_of(server, timeout=0.5) as model:
        with pytest.raises(LMStudioTimeoutError):
            await model.respond("Hi")


@TIMING
async def test_a_slow_but_steady_prediction_is_not_a_timeout(anyio_backend: Any) -> None:
    server = fake_server()

    async def steady(ch: ServerChannel) -> None:
        for n in range(6):  # 6 x 0.1 s: longer than the timeout, never silent that long
            await ch.send(fragment(f"w{n} "))
            await anyio.sleep(0.1)
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = steady
    async with model_of(server) as model:
        result = await model.respond("Hi", timeout=0.3)
    assert result.content == "w0 w1 w2 w3 w4 w5 "
    assert server.cancels == []


# ------------------------------------------------------------------------------ leaving


async def test_leaving_without_reading_cancels_and_keeps_the_servers_end() -> None:
    server = fake_server()
    server.channels["llm.predict"] = stream_until_cancelled
    async with model_of(server) as model, model.respond_stream("Hi") as stream:
        pass
    assert server.cancels == ["llm.predict"]
    result = stream.result()
    assert result.stop_reason == "userStopped"
    assert result.content == "tok0 tok1 tok2 "


async def test_exception_in_the_block_cancels_and_keeps_the_partial_result() -> None:
    server = fake_server()
    server.channels["llm.predict"] = stream_until_cancelled
    async with model_of(server) as model:
        with pytest.raises(KeyError):
            async with model.respond_stream("Hi") as stream:
                await stream.receive()
                raise KeyError("mine")
    assert server.cancels == ["llm.predict"]
    assert stream.result().stop_reason == "userStopped"


async def test_cancel_then_read_to_the_end() -> None:
    server = fake_server()
    server.channels["llm.predict"] = stream_until_cancelled
    async with model_of(server) as model, model.respond_stream("Hi") as stream:
        first = await stream.receive()
        await stream.cancel()
        rest = [event async for event in stream]
        assert stream.finished
    assert server.cancels == ["llm.predict"]
    texts = [e.content for e in [first, *rest] if isinstance(e, PredictionFragment)]
    assert texts == ["tok0 ", "tok1 ", "tok2 "]
    assert stream.result().stop_reason == "userStopped"


async def test_cancel_after_the_end_sends_nothing() -> None:
    server = fake_server()

    async def complete(ch: ServerChannel) -> None:
        await ch.send(fragment("done"))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = complete
    async with model_of(server) as model:
        async with model.respond_stream("Hi") as stream:
            async for _ in stream:
                pass
            await stream.cancel()
        assert server.cancels == []
    assert stream.result().stop_reason == "eosFound"


async def test_a_server_error_is_raised_by_the_stream_and_by_result() -> None:
    server = fake_server()

    async def crash(ch: ServerChannel) -> None:
        await ch.send(fragment("partial"))
        raise LMStudioServerError("Model crashed", cause="out of memory")

    server.channels["llm.predict"] = crash
    async with model_of(server) as model:
        with pytest.raises(LMStudioServerError, match="Model crashed") as caught:
            async with model.respond_stream("Hi") as stream:
                async for _ in stream:
                    pass
        assert stream.content == "partial"
        with pytest.raises(LMStudioServerError) as again:
            stream.result()
        assert again.value is caught.value
        with pytest.raises(LMStudioServerError, match="out of memory"):
            await model.respond("Hi")


async def test_a_server_that_ends_without_success_is_a_protocol_error() -> None:
    server = fake_server()

    async def rude(ch: ServerChannel) -> None:
        await ch.send(fragment("partial"))

    server.channels["llm.predict"] = rude
    async with model_of(server) as model:
        with pytest.raises(RemoteProtocolError, match="without a success"):
            await model.respond("Hi")


async def test_a_server_that_never_confirms_the_cancel_gives_no_invented_result() -> None:
    server = fake_server()

    async def deaf(ch: ServerChannel) -> None:
        await ch.send(fragment("partial"))
        await anyio.sleep_forever()

    server.channels["llm.predict"] = deaf
    async with model_of(server, drain_timeout=0.2) as model, model.respond_stream("Hi") as stream:
        await stream.receive()
    with pytest.raises(LMStudioError, match="did not confirm"):
        stream.result()  # no userStopped invented by the client


# ------------------------------------------------------------------------------ callbacks


async def test_sync_and_async_callbacks_in_order() -> None:
    server = fake_server()

    async def answer(ch: ServerChannel) -> None:
        await ch.send(llm.PredictPromptProcessingProgress(0.5))
        await ch.send(llm.PredictPromptProcessingProgress(1.0))
        for word in ("Hello", " world"):
            await ch.send(fragment(word))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = answer
    calls: list[Any] = []

    async def first() -> None:
        await anyio.lowlevel.checkpoint()
        calls.append("first")

    async with model_of(server) as model:
        result = await model.respond(
            "Hi",
            on_prompt_processing_progress=calls.append,
            on_first_token=first,
            on_prediction_fragment=lambda f: calls.append(f.content),
            on_message=lambda m: calls.append(m.role),
        )
    assert calls == [0.5, 1.0, "first", "Hello", " world", "assistant"]
    assert result.content == "Hello world"


async def test_a_callback_that_raises_ends_the_prediction_on_the_server() -> None:
    server = fake_server()
    server.channels["llm.predict"] = stream_until_cancelled

    def explode(_: Any) -> None:
        raise ZeroDivisionError

    async with model_of(server) as model:
        with pytest.raises(ZeroDivisionError):
            await model.respond("Hi", on_prediction_fragment=explode)
    assert server.cancels == ["llm.predict"]


# ------------------------------------------------------------------------------ bad input


BAD_INPUT: list[tuple[str, Callable[[AsyncLLM], Any], type[Exception], str]] = [
    ("unknown option", lambda m: m.respond("Hi", max_tokns=5), ValueError, "max_tokns"),
    (
        "unknown config key",
        lambda m: m.respond("Hi", config={"maxTokenz": 5}),
        ValueError,
        "maxTokenz",
    ),
    ("negative max tokens", lambda m: m.respond("Hi", max_tokens=-5), ValueError, "max_tokens"),
    ("bad temperature", lambda m: m.respond("Hi", temperature="hot"), ValueError, "temperature"),
    (
        "non-serialisable schema",
        lambda m: m.respond("Hi", response_format={"type": "object", "default": object()}),
        ValueError,
        "JSON-serialisable",
    ),
    (
        "not a schema",
        lambda m: m.respond("Hi", response_format=42),
        ValueError,
        "response_format",
    ),
    (
        "format given twice",
        lambda m: m.respond(
            "Hi", response_format={"type": "object"}, structured={"type": "object"}
        ),
        ValueError,
        "twice",
    ),
    ("bad history", lambda m: m.respond(42), ValueError, "chat history"),
    ("empty chat", lambda m: m.respond([]), ValueError, "empty"),
    ("bad role", lambda m: m.respond([{"role": "robot", "content": "x"}]), ValueError, "robot"),
    ("callback", lambda m: m.respond("Hi", on_message="print"), TypeError, "on_message"),
    ("prompt type", lambda m: m.complete(["Hi"]), TypeError, "prompt"),
    (
        "tools in raw completion",
        lambda m: m.complete("Hi", raw_text_endpoint=True, tool_choice="required"),
        ValueError,
        "tools",
    ),
    ("stream option", lambda m: m.respond_stream("Hi", seed="x"), ValueError, "seed"),
    ("tokenize type", lambda m: m.tokenize(5), TypeError, "tokenize"),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT]
)
async def test_bad_input_is_refused_before_anything_is_sent(
    call: Callable[[AsyncLLM], Any], error: type[Exception], match: str
) -> None:
    server = fake_server()
    server.channels["llm.predict"] = stream_until_cancelled
    async with model_of(server) as model:
        with anyio.fail_after(10), pytest.raises(error, match=match):
            outcome = call(model)
            if hasattr(outcome, "__await__"):
                await outcome
        assert created(server) == []
        assert not any(f.get("type") == "rpcCall" for f in server.received("llm"))


async def test_a_reply_that_does_not_parse_keeps_the_raw_text() -> None:
    server = fake_server()

    async def not_json(ch: ServerChannel) -> None:
        await ch.send(fragment("{'name': 'single quotes'}"))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = not_json
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    async with model_of(server) as model:
        with pytest.raises(StructuredOutputError, match="not valid JSON") as caught:
            await model.respond("Hi", response_format=schema)
    assert caught.value.raw_text == "{'name': 'single quotes'}"
    sent = created(server)[0]["creationParameter"]["predictionConfigStack"]["layers"][0]
    structured = {f["key"]: f["value"] for f in sent["config"]["fields"]}
    assert structured["llm.prediction.structured"] == {"type": "json", "jsonSchema": schema}


async def test_a_partial_structured_reply_after_a_cancel_is_not_an_error() -> None:
    server = fake_server()

    async def half(ch: ServerChannel) -> None:
        await ch.send(fragment('{"name": "Al'))
        await ch.cancelled.wait()
        await ch.send(success("userStopped"))

    server.channels["llm.predict"] = half
    schema = {"type": "object"}
    async with (
        model_of(server) as model,
        model.respond_stream("Hi", response_format=schema) as stream,
    ):
        await stream.receive()
    result = stream.result()
    assert result.stop_reason == "userStopped"
    assert result.parsed is None
    assert result.content == '{"name": "Al'


async def test_complete_sends_the_complete_mode_layer_or_the_raw_endpoint() -> None:
    server = fake_server()

    async def echo(ch: ServerChannel) -> None:
        await ch.send(fragment("ok"))
        await ch.send(success("eosFound"))

    server.channels["llm.predict"] = echo
    server.channels["llm.completeRawText"] = echo
    async with model_of(server) as model:
        await model.complete("Once upon", max_tokens=5)
        await model.complete("Once upon", raw_text_endpoint=True)
    via_predict, via_raw = created(server)
    assert via_predict["endpoint"] == "predict"
    layers = via_predict["creationParameter"]["predictionConfigStack"]["layers"]
    assert [layer["layerName"] for layer in layers] == ["apiOverride", "completeModeFormatting"]
    template = layers[1]["config"]["fields"][0]
    assert template["key"] == "llm.prediction.promptTemplate"
    assert template["value"]["jinjaPromptTemplate"]["template"] == (
        "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    )
    history = via_predict["creationParameter"]["history"]
    assert history == {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Once upon"}]}]
    }
    assert via_raw["endpoint"] == "completeRawText"
    assert via_raw["creationParameter"]["rawPrompt"] == "Once upon"
    fields = via_raw["creationParameter"]["predictionConfigStack"]["layers"][0]["config"]["fields"]
    assert {"key": "llm.prediction.stopStrings", "value": []} in fields


# ------------------------------------------------------------------------------ introspection


@pytest.mark.parametrize(
    ("load_config", "expected"),
    [
        pytest.param({"llm.load.contextLength": 2048}, 2048, id="from-the-load-config"),
        pytest.param({}, 4096, id="from-the-instance-info"),
    ],
)
async def test_context_length_prefers_the_load_config(
    load_config: dict[str, Any], expected: int
) -> None:
    from lmstudio_sdk.protocol.kv import kv_config_from_dict

    server = fake_server()

    async def get_load_config(parameter: Any) -> Any:
        assert parameter.specifier.query.identifier == MODEL
        return kv_config_from_dict(load_config)

    async def get_model_info(parameter: Any) -> Any:
        return llm_instance(MODEL)  # context_length 4096

    server.rpc["llm.getLoadConfig"] = get_load_config
    server.rpc["llm.getModelInfo"] = get_model_info
    async with model_of(server) as model:
        assert await model.get_context_length() == expected


def embedding_instance(key: str = "minilm") -> Any:
    from lmstudio_sdk.protocol.endpoints import shared

    return shared.EmbeddingModelInstanceInfo(
        model_key=key,
        format="safetensors",
        display_name="MiniLM",
        path=f"x/{key}",
        size_bytes=1,
        max_context_length=512,
        identifier=key,
        instance_reference=f"ref-{key}",
        context_length=512,
    )


class Latency:
    """An RPC handler answering ``answer(text)`` after a latency that shrinks with each
    call (later requests finish first), recording how many were in flight at most."""

    def __init__(self, answer: Callable[[str], Any]) -> None:
        self.answer = answer
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, parameter: Any) -> Any:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        # Server latency (not a wait for something): long enough for a whole batch of requests
        # to be in flight together, shorter for later calls so that they finish first.
        await anyio.sleep(0.2 + 0.05 / self.calls)
        self.in_flight -= 1
        return self.answer(parameter.input_string)


@TIMING
async def test_tokenize_and_embed_lists_run_concurrently_bounded_and_in_order(
    anyio_backend: Any,
) -> None:
    from lmstudio_sdk._async.handles import MAX_CONCURRENT_REQUESTS as LIMIT
    from lmstudio_sdk.protocol.endpoints import embedding, shared

    server = fake_server()

    async def embedding_loaded(ch: ServerChannel) -> None:
        await ch.send(embedding.GetOrLoadAlreadyLoaded(embedding_instance()))

    tokenize = Latency(lambda text: shared.TokenizeResult([len(text)]))
    embed = Latency(lambda text: embedding.EmbedStringResult([float(len(text)), 0.5]))
    server.channels["embedding.getOrLoad"] = embedding_loaded
    server.rpc["llm.tokenize"] = tokenize
    server.rpc["embedding.embedString"] = embed
    texts = ["x" * n for n in range(1, LIMIT + 9)]
    async with connected(server) as client:
        model = await client.llm.model(MODEL)
        assert await model.tokenize(texts) == [[n] for n in range(1, LIMIT + 9)]
        embedder = await client.embedding.model("minilm")
        assert await embedder.embed(texts) == [[float(n), 0.5] for n in range(1, LIMIT + 9)]
    assert tokenize.calls == embed.calls == LIMIT + 8
    assert tokenize.max_in_flight == embed.max_in_flight == LIMIT  # concurrent, and bounded


async def test_a_failing_item_fails_the_list_with_that_error() -> None:
    from lmstudio_sdk.protocol.endpoints import shared

    server = fake_server()

    async def picky(parameter: Any) -> Any:
        if parameter.input_string == "bad":
            raise LMStudioServerError("cannot tokenize this")
        await anyio.sleep(0.01)
        return shared.TokenizeResult([1])

    server.rpc["llm.tokenize"] = picky
    async with model_of(server) as model:
        with pytest.raises(LMStudioServerError, match="cannot tokenize this"):
            await model.tokenize(["ok", "ok", "bad", "ok"])
        assert await model.tokenize(["ok"]) == [[1]]
