"""Predictions, chat histories, structured output and introspection against the local server.

Real sockets, real clocks, the scripted engine. Its echo mode answers with the last user
message of the prompt (or the whole prompt when it has no chat markup), so the answer
shows what reached the server; the server's diagnostics log (``llm.prediction.input`` and
``llm.prediction.output``) shows the formatted prompt and the text it generated.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs
import pydantic
import pytest

from lmstudio_sdk import (
    AsyncClient,
    AsyncEmbeddingModel,
    AsyncLLM,
    Chat,
    LMStudioModelNotFoundError,
    LMStudioServerError,
    PredictionConfig,
    PredictionFragment,
    PromptProcessingProgress,
    StructuredOutputError,
)
from lmstudio_sdk.protocol.endpoints import diagnostics
from lmstudio_sdk.server import BackgroundServer, Script, ServerOptions, scripted_model

KEY = "scripted-llm"
EMBEDDING = "scripted-embedding"
ECHO = Script(echo=True)
SLOW = Script(fragments=("tok ",) * 2000, fragments_per_second=200)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    models = (scripted_model(KEY, script=ECHO), scripted_model(domain="embedding"))
    with BackgroundServer(ServerOptions(port=0, models=models)) as running:
        yield running


@asynccontextmanager
async def llm(server: BackgroundServer) -> AsyncIterator[AsyncLLM]:
    async with AsyncClient(server.url) as client:
        yield await client.llm.model(KEY)


async def next_log(logs: Any, kind: type[Any]) -> Any:
    """The next entry of type ``kind`` in the server's log stream."""
    with anyio.fail_after(10):
        async for event in logs:
            if isinstance(event.data, kind):
                return event.data
    raise AssertionError("the log stream ended")


def chat_of(system: str, user: str) -> Chat:
    chat = Chat(system)
    chat.add_user_message(user)
    return chat


# ------------------------------------------------------------------------------ respond


async def test_respond_to_a_string_returns_the_answer_and_the_servers_stats(
    server: BackgroundServer,
) -> None:
    question = "What is the capital of France?"
    async with llm(server) as model:
        result = await model.respond(question)
        tokens = await model.count_tokens(question)
    assert result.content == question  # echoed: the prompt arrived
    assert result.non_reasoning_content == result.content
    assert result.stop_reason == "eosFound"
    assert result.stats.predicted_tokens_count == tokens
    assert result.stats.prompt_tokens_count is not None
    assert result.stats.prompt_tokens_count > 0
    assert result.model_info.identifier == KEY
    assert str(result) == result.content


@pytest.mark.parametrize(
    "history",
    [
        pytest.param(lambda: chat_of("You are terse.", "Hi there"), id="Chat"),
        pytest.param(
            lambda: [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi!"},
                {"role": "user", "content": [{"type": "text", "text": "Hi there"}]},
            ],
            id="list-of-dicts",
        ),
        pytest.param(
            lambda: {
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
            },
            id="wire-dict",
        ),
    ],
)
async def test_respond_accepts_every_history_form(
    server: BackgroundServer, history: Callable[[], Any]
) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(KEY)
        async with client.diagnostics.stream_logs() as logs:
            result = await model.respond(history())
            prompt = (await next_log(logs, diagnostics.LLMPredictionInputLog)).input
    assert result.content == "Hi there"  # the last user message
    assert "<|user|>\nHi there\n<|end|>" in prompt
    assert prompt.endswith("<|assistant|>\n")


async def test_on_message_appends_the_answer_to_the_chat(server: BackgroundServer) -> None:
    chat = Chat("You are terse.")
    chat.add_user_message("Ping")
    async with llm(server) as model:
        result = await model.respond(chat, on_message=chat.append)
        assert [m.role for m in chat] == ["system", "user", "assistant"]
        assert chat[-1].content[0].text == result.content == "Ping"
        chat.add_user_message("Pong")
        assert (await model.respond(chat)).content == "Pong"


async def test_callbacks_see_the_prediction_as_it_goes(server: BackgroundServer) -> None:
    seen: list[Any] = []

    async def on_fragment(fragment: PredictionFragment) -> None:  # a coroutine function
        await anyio.lowlevel.checkpoint()
        seen.append(("fragment", fragment.content))

    async with llm(server) as model:
        result = await model.respond(
            "one two three",
            on_first_token=lambda: seen.append("first"),
            on_prediction_fragment=on_fragment,
            on_prompt_processing_progress=lambda p: seen.append(("progress", p)),
            on_message=lambda m: seen.append(("message", m.content[0].text)),
        )
    assert seen[0] == ("progress", 1.0)
    assert seen[1] == "first"
    assert seen[2:-1] == [("fragment", "one"), ("fragment", " two"), ("fragment", " three")]
    assert seen[-1] == ("message", result.content)


# ------------------------------------------------------------------------------ streams


async def test_stream_yields_typed_events_then_the_result(server: BackgroundServer) -> None:
    async with llm(server) as model:
        async with model.respond_stream("alpha beta gamma") as stream:
            events = [event async for event in stream]
        result = stream.result()
    assert isinstance(events[0], PromptProcessingProgress)
    fragments = [e for e in events if isinstance(e, PredictionFragment)]
    assert "".join(f.content for f in fragments) == result.content == "alpha beta gamma"
    assert sum(f.tokens_count for f in fragments) == result.stats.predicted_tokens_count


async def test_fragments_yields_only_text(server: BackgroundServer) -> None:
    async with llm(server) as model, model.respond_stream("alpha beta") as stream:
        texts = [fragment.content async for fragment in stream.fragments()]
    assert texts == ["alpha", " beta"]
    assert stream.result().content == "alpha beta"


async def test_result_inside_the_block_before_the_end_is_an_error(
    server: BackgroundServer,
) -> None:
    async with llm(server) as model, model.respond_stream("alpha beta") as stream:
        with pytest.raises(RuntimeError, match="has not finished"):
            stream.result()
        await stream.receive()
        with pytest.raises(RuntimeError, match="has not finished"):
            stream.result()
        async for _ in stream:
            pass
        assert stream.result().content == "alpha beta"


async def test_break_cancels_on_the_server_and_keeps_the_partial_result(
    server: BackgroundServer,
) -> None:
    server.set_script(KEY, script=SLOW)
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(KEY)
        async with client.diagnostics.stream_logs() as logs:
            seen = []
            async with model.respond_stream("Go") as stream:
                async for fragment in stream.fragments():
                    seen.append(fragment.content)
                    if len(seen) == 3:
                        break
            record = await next_log(logs, diagnostics.LLMPredictionOutputLog)
    result = stream.result()
    assert result.stop_reason == "userStopped"  # what the server sent after our cancel
    assert record.stats.stop_reason == "userStopped"
    assert result.content == record.output  # every token the server generated
    assert result.content.startswith("tok tok tok ")
    assert len(result.content) < len("tok ") * 2000


async def test_move_on_after_cancels_on_the_server_and_keeps_the_partial_result(
    server: BackgroundServer,
) -> None:
    server.set_script(KEY, script=SLOW)
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(KEY)
        async with client.diagnostics.stream_logs() as logs:
            with anyio.move_on_after(0.3) as scope:
                async with model.respond_stream("Go") as stream:
                    async for _ in stream:
                        pass
            record = await next_log(logs, diagnostics.LLMPredictionOutputLog)
    assert scope.cancelled_caught
    result = stream.result()
    assert result.stop_reason == record.stats.stop_reason == "userStopped"
    assert result.content == record.output != ""


async def test_explicit_cancel_then_read_to_the_end(server: BackgroundServer) -> None:
    server.set_script(KEY, script=SLOW)
    async with llm(server) as model, model.respond_stream("Go") as stream:
        count = 0
        async for _ in stream.fragments():
            count += 1
            if count == 2:
                await stream.cancel()
        assert stream.finished  # the stream ended by itself, with the server's success
    result = stream.result()
    assert result.stop_reason == "userStopped"
    assert result.content.count("tok ") >= 2


async def test_other_requests_work_while_a_stream_is_open(server: BackgroundServer) -> None:
    server.set_script(KEY, script=SLOW)
    async with llm(server) as model, model.respond_stream("Go") as stream:
        await stream.receive()
        assert await model.count_tokens("a b c") == 3
        assert (await model.respond("Hello", max_tokens=1)).content == "tok "
    assert stream.result().stop_reason == "userStopped"


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"max_tokens": 3}, id="keyword"),
        pytest.param({"config": {"maxTokens": 3}}, id="camelCase-dict"),
        pytest.param({"config": {"max_tokens": 3}}, id="snake_case-dict"),
        pytest.param({"config": PredictionConfig(max_tokens=3)}, id="PredictionConfig"),
        pytest.param({"config": {"maxTokens": 50}, "max_tokens": 3}, id="keyword-wins"),
    ],
)
async def test_prediction_options_reach_the_server(
    server: BackgroundServer, how: dict[str, Any]
) -> None:
    async with llm(server) as model:
        result = await model.respond("one two three four five six", **how)
    assert result.stop_reason == "maxPredictedTokensReached"
    assert result.stats.predicted_tokens_count == 3
    assert result.content == "one two three"
    assert result.prediction_config.max_tokens == 3  # the config the server used


async def test_reasoning_is_separated_from_the_answer(server: BackgroundServer) -> None:
    server.set_script(KEY, script=Script(reasoning="Let me think.", text="Paris."))
    async with llm(server) as model:
        result = await model.respond("Capital of France?")
    assert result.reasoning_content == "Let me think."
    assert result.non_reasoning_content == "Paris."
    assert result.content == "<think>Let me think.</think>Paris."


# ------------------------------------------------------------------------------ structured


class PersonModel(pydantic.BaseModel):
    name: str
    age: int


@attrs.frozen
class PersonAttrs:
    name: str
    age: int
    role: Literal["admin", "user"]


@dataclasses.dataclass
class PersonData:
    name: str
    tags: list[str]


@pytest.mark.parametrize("cls", [PersonModel, PersonAttrs, PersonData])
async def test_response_format_class_gives_a_validated_instance(
    server: BackgroundServer, cls: type
) -> None:
    async with llm(server) as model:
        result = await model.respond("Who?", response_format=cls)
    assert isinstance(result.parsed, cls)
    # The engine wrote JSON for the schema it received; parsed is that JSON, typed.
    reply = json.loads(result.content)
    fields = (
        cls.model_fields
        if cls is PersonModel
        else attrs.fields_dict(cls)
        if attrs.has(cls)
        else {f.name: f for f in dataclasses.fields(cls)}
    )
    assert set(reply) == set(fields)
    assert result.parsed == cls(**reply)


async def test_response_format_json_schema_gives_plain_json(server: BackgroundServer) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "sunny": {"type": "boolean"}},
        "required": ["city", "sunny"],
    }
    async with llm(server) as model:
        result = await model.respond("Weather?", response_format=schema)
    assert result.parsed == json.loads(result.content)
    assert set(result.parsed) == {"city", "sunny"}
    assert isinstance(result.parsed["sunny"], bool)


async def test_reply_that_does_not_validate_raises_with_the_raw_text(
    server: BackgroundServer,
) -> None:
    # The scripted engine fills strings with "example", which this pattern refuses.
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^[0-9]+$"}},
        "required": ["code"],
    }
    async with llm(server) as model:
        with pytest.raises(StructuredOutputError, match="code") as caught:
            await model.respond("Code?", response_format=schema)
        async with model.respond_stream("Code?", response_format=schema) as stream:
            async for _ in stream:
                pass
    assert json.loads(caught.value.raw_text) == {"code": "example"}
    with pytest.raises(StructuredOutputError):
        stream.result()


async def test_structured_option_in_config_works_like_response_format(
    server: BackgroundServer,
) -> None:
    async with llm(server) as model:
        result = await model.respond("Who?", config={"structured": PersonModel})
    assert isinstance(result.parsed, PersonModel)


# ------------------------------------------------------------------------------ complete


async def test_complete_sends_the_prompt_without_chat_markup(server: BackgroundServer) -> None:
    prompt = "Once upon a time,"
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(KEY)
        async with client.diagnostics.stream_logs() as logs:
            completed = await model.complete(prompt)
            completed_prompt = (await next_log(logs, diagnostics.LLMPredictionInputLog)).input
            responded = await model.respond(prompt)
            responded_prompt = (await next_log(logs, diagnostics.LLMPredictionInputLog)).input
            raw = await model.complete(prompt, raw_text_endpoint=True)
            raw_prompt = (await next_log(logs, diagnostics.LLMPredictionInputLog)).input
    assert completed_prompt == raw_prompt == prompt  # exactly the prompt, nothing around it
    assert responded_prompt != prompt
    assert "<|user|>" in responded_prompt
    assert completed.content == raw.content == responded.content == prompt


async def test_complete_stream_can_be_cut(server: BackgroundServer) -> None:
    server.set_script(KEY, script=SLOW)
    async with llm(server) as model:
        for raw_text_endpoint in (False, True):
            async with model.complete_stream("Go", raw_text_endpoint=raw_text_endpoint) as stream:
                await stream.receive()
            assert stream.result().stop_reason == "userStopped"


# ------------------------------------------------------------------------------ images


async def test_prepare_image_uploads_and_the_chat_refers_to_it(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(PNG)
    # Only a vision model accepts images (as in LM Studio); this one echoes a placeholder.
    models = (scripted_model(KEY, script=ECHO, vision=True),)
    with BackgroundServer(ServerOptions(port=0, models=models)) as server:
        await _send_image(server, path)


async def _send_image(server: BackgroundServer, path: Path) -> None:
    async with AsyncClient(server.url) as client:
        from_path = await client.files.prepare_image(path)
        from_bytes = await client.files.prepare_image(PNG, name="snapshot")
        assert from_path.name == "photo.png"
        assert from_path.is_image
        assert from_bytes.name == "snapshot.png"
        assert from_bytes.is_image
        assert from_path.size_bytes == len(PNG)
        chat = Chat()
        chat.add_user_message("What is in it?", images=[from_path])
        model = await client.llm.model(KEY)
        result = await model.respond(chat)
    assert result.content == "[attached file: photo.png]\n\nWhat is in it?"


async def test_prepare_image_refuses_what_is_not_an_image(
    server: BackgroundServer, tmp_path: Path
) -> None:
    text_file = tmp_path / "notes.png"
    text_file.write_text("not really a png")
    async with AsyncClient(server.url) as client:
        with pytest.raises(ValueError, match="not an image"):
            await client.files.prepare_image(text_file)
        with pytest.raises(ValueError, match="not an image"):
            await client.files.prepare_image(b"GIF but not really")
        with pytest.raises(TypeError):
            await client.files.prepare_image(42)  # type: ignore[arg-type]
        assert not client.files._connection().connected  # nothing was sent


# ------------------------------------------------------------------------------ introspection


async def test_tokenize_one_or_many_keeps_order(server: BackgroundServer) -> None:
    texts = [f"word{i} and more" for i in range(20)]
    async with llm(server) as model:
        single = [await model.tokenize(text) for text in texts]
        many = await model.tokenize(texts)
        assert many == single
        assert len(set(map(tuple, many))) == 20
        assert await model.tokenize([]) == []
        assert await model.count_tokens("Hello, world!") == len(
            await model.tokenize("Hello, world!")
        )


async def test_apply_prompt_template_renders_the_chat_and_tools(
    server: BackgroundServer,
) -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    chat = Chat("Be brief.")
    chat.add_user_message("Hi")
    async with llm(server) as model:
        plain = await model.apply_prompt_template(chat)
        with_tools = await model.apply_prompt_template(chat, tools=[add])
    assert plain == "<|system|>\nBe brief.\n<|end|>\n<|user|>\nHi\n<|end|>\n<|assistant|>\n"
    header = with_tools.split("\n", 2)[1]
    assert json.loads(header)[0]["function"]["name"] == "add"
    assert json.loads(header)[0]["function"]["parameters"]["required"] == ["a", "b"]
    assert with_tools.endswith(plain)


async def test_context_length_and_load_config(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.llm.model(KEY, config={"contextLength": 1234})
        assert await model.get_context_length() == 1234
        assert (await model.get_load_config()).context_length == 1234
        assert (await model.get_info()).context_length == 1234
        default = await client.llm.load(KEY, identifier="second")
        assert await default.get_context_length() == (await default.get_info()).context_length


async def test_any_loaded_model(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        loaded = await client.llm.model(KEY)
        anyone = await client.llm.model()
        assert isinstance(anyone, AsyncLLM)
        assert anyone == loaded
        assert (await anyone.respond("Hi")).content == "Hi"


# ------------------------------------------------------------------------------ embeddings


async def test_embed_one_or_many_keeps_order(server: BackgroundServer) -> None:
    texts = [f"sentence number {i}" for i in range(20)]
    async with AsyncClient(server.url) as client:
        model = await client.embedding.model(EMBEDDING)
        assert isinstance(model, AsyncEmbeddingModel)
        one = await model.embed("hello")
        assert isinstance(one, list)
        assert all(isinstance(x, float) for x in one)
        single = [await model.embed(text) for text in texts]
        many = await model.embed(texts)
        assert many == single
        assert len({tuple(v) for v in many}) == 20
        assert await model.embed([]) == []
        assert await model.count_tokens("a b") == len(await model.tokenize("a b")) == 2
        assert await model.get_context_length() == (await model.get_info()).context_length


async def test_embed_refuses_what_is_not_text(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        model = await client.embedding.model(EMBEDDING)
        with pytest.raises(TypeError, match="item 1"):
            await model.embed(["ok", 3])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            await model.embed(b"bytes")  # type: ignore[call-overload]


# ------------------------------------------------------------------------------ bad input


async def test_missing_model_is_a_model_not_found_error(server: BackgroundServer) -> None:
    async with AsyncClient(server.url) as client:
        with anyio.fail_after(10), pytest.raises(LMStudioModelNotFoundError):
            await client.llm.model("no-such-model")
        model = await client.llm.model(KEY)
        await model.unload()
        with anyio.fail_after(10), pytest.raises(LMStudioModelNotFoundError):
            await model.respond("Hi")
        with anyio.fail_after(10), pytest.raises(LMStudioModelNotFoundError):
            await model.tokenize("Hi")


async def test_server_error_during_a_prediction_is_raised(server: BackgroundServer) -> None:
    async with llm(server) as model:
        with anyio.fail_after(10), pytest.raises(LMStudioServerError, match="GBNF"):
            await model.respond("Hi", response_format={"type": "gbnf", "gbnfGrammar": "root ::= x"})
        assert (await model.respond("still fine")).content == "still fine"
