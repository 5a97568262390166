"""The blocking ``Client`` against the real local server over loopback.

The server's own record of a prediction is its diagnostics log: after each prediction it
publishes ``llm.prediction.output`` with the text it generated and its stop reason, and only
the client's cancel packet makes that ``userStopped``. Tests that cut a stream short check
that record. They read it with a second client whose log stream is bounded by a watchdog
(a timer that closes that client), so a missing record fails the test instead of hanging it.

Ctrl-C is simulated with a real SIGINT sent to this (main) thread by a helper thread once
the stream is under way; Python's default handler turns it into ``KeyboardInterrupt``
wherever the main thread is.
"""

# pytest.raises() wraps whole `with` blocks on purpose: the error must come out of the
# block's exit, after the cancel reached the server.
# ruff: noqa: PT012

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from lmstudio_sdk import (
    LLM,
    Client,
    EmbeddingModel,
    LMStudioConnectionError,
    LMStudioModelNotFoundError,
    LMStudioServerError,
    LMStudioTimeoutError,
    PredictionFragment,
    PromptProcessingProgress,
    SyncInAsyncContextError,
)
from lmstudio_sdk.protocol.endpoints.diagnostics import LLMPredictionOutputLog
from lmstudio_sdk.server import (
    BackgroundServer,
    Faults,
    Script,
    ScriptedToolCall,
    ServerOptions,
    scripted_model,
)

KEY = "scripted-llm"
EMBEDDING = "scripted-embedding"
FRAGMENTS = 2000
SLOW = Script(fragments=("tok ",) * FRAGMENTS, fragments_per_second=200)
TEXT = Script(text="The quick brown fox jumps over the lazy dog.")


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    models = (scripted_model(KEY, script=SLOW), scripted_model(EMBEDDING, domain="embedding"))
    # share_logs: server_records() watches the test client's predictions from another client.
    options = ServerOptions(port=0, models=models, share_logs=True)
    with BackgroundServer(options) as running:
        yield running


@pytest.fixture
def client(server: BackgroundServer) -> Iterator[Client]:
    with Client(server.url, timeout=20) as opened:
        yield opened


@contextmanager
def server_records(server: BackgroundServer) -> Iterator[Callable[[], LLMPredictionOutputLog]]:
    """``next_record()``: the server's log entry of the next prediction that ends."""
    with Client(server.url) as watcher, watcher.diagnostics.stream_logs() as logs:

        def next_event(wanted: Callable[[Any], bool]) -> Any:
            watchdog = threading.Timer(20, watcher.close)
            watchdog.start()
            try:
                for event in logs:
                    if wanted(event.data):
                        return event.data
            finally:
                watchdog.cancel()
            raise AssertionError("the log stream ended before the expected event")

        with subscribed(watcher):
            next_event(lambda data: "Notification: watching" in getattr(data, "content", ""))
        yield lambda: next_event(lambda data: isinstance(data, LLMPredictionOutputLog))


@contextmanager
def subscribed(watcher: Client) -> Iterator[None]:
    """Have the server log notifications until the block is left (the log stream got one:
    it is subscribed, so no later event can be missed)."""
    seen = threading.Event()

    def notify() -> None:
        while not seen.is_set():
            watcher.system.notify("watching")
            seen.wait(0.2)

    helper = threading.Thread(target=notify)
    helper.start()
    try:
        yield
    finally:
        seen.set()
        helper.join()


@contextmanager
def ctrl_c_when(event: threading.Event) -> Iterator[None]:
    """Send SIGINT to the main thread as soon as ``event`` is set."""
    if not hasattr(signal, "pthread_kill"):
        pytest.skip("needs signal.pthread_kill (POSIX)")
    main = threading.main_thread().ident
    assert main == threading.get_ident(), "run this test in the main thread"
    done = threading.Event()

    def interrupt() -> None:
        while not done.is_set():
            if event.wait(0.05):
                signal.pthread_kill(main, signal.SIGINT)
                return

    helper = threading.Thread(target=interrupt)
    helper.start()
    try:
        yield
    finally:
        done.set()
        helper.join()


def assert_stopped_by_user(record: LLMPredictionOutputLog, result: Any, seen: list[str]) -> None:
    assert record.stats.stop_reason == "userStopped"  # type: ignore[union-attr]
    assert result.stop_reason == "userStopped"  # the client kept what the server said
    assert result.content == record.output  # nothing was lost
    assert record.output.startswith("".join(seen))  # what the user saw is a prefix
    assert 0 < len(record.output) < len("tok ") * FRAGMENTS


# ---------------------------------------------------------------------------- results


def test_calls_return_results(server: BackgroundServer, client: Client) -> None:
    server.set_script(KEY, script=TEXT)
    assert client.system.version().version
    keys = {m.model_key for m in client.system.list_downloaded_models()}
    assert keys == {KEY, EMBEDDING}
    assert [m.model_key for m in client.system.list_downloaded_models("embedding")] == [EMBEDDING]

    model = client.llm.model(KEY)
    assert isinstance(model, LLM)
    assert model.identifier == KEY
    assert client.llm.list_loaded() == [model]
    assert model.get_info().model_key == KEY

    result = model.respond("Hi")
    assert result.content == TEXT.text
    assert result.stop_reason == "eosFound"
    assert model.complete("Once upon a time").content == TEXT.text
    tokens = model.tokenize("a few words")
    assert isinstance(tokens, list)
    assert len(tokens) == model.count_tokens("a few words") == 3
    assert model.tokenize(["a", "b c"]) == [model.tokenize("a"), model.tokenize("b c")]
    assert model.get_context_length() > 0
    assert model.get_load_config().context_length == model.get_context_length()
    assert "Hi" in model.apply_prompt_template("Hi")

    embedder = client.embedding.model(EMBEDDING)
    assert isinstance(embedder, EmbeddingModel)
    vector = embedder.embed("hello")
    assert len(vector) > 0
    assert all(isinstance(x, float) for x in vector)
    assert embedder.embed(["hello", "world"])[0] == vector

    model.unload()
    assert client.llm.list_loaded() == []


def test_load_stream_and_unload(server: BackgroundServer, client: Client) -> None:
    with client.llm.load_stream(KEY, identifier="second", ttl=300) as load:
        progress = list(load)
    assert progress[-1] == 1.0
    assert progress == sorted(progress)
    handle = load.result()
    assert handle.identifier == "second"
    assert load.resolved is not None
    assert load.resolved.model_key == KEY
    assert server.loaded_identifiers() == ["second"]
    client.llm.unload("second")
    assert server.loaded_identifiers() == []


def test_streams_the_whole_prediction(server: BackgroundServer, client: Client) -> None:
    server.set_script(KEY, script=Script(fragments=("a", "b", "c") * 400))
    model = client.llm.model(KEY)
    with model.respond_stream("Hi") as stream:
        events = list(stream)
    fragments = [e for e in events if isinstance(e, PredictionFragment)]
    assert {type(e) for e in events} <= {PredictionFragment, PromptProcessingProgress}
    assert "".join(e.content for e in fragments) == "abc" * 400
    assert stream.result().content == "abc" * 400
    assert stream.finished


# ---------------------------------------------------------------------------- errors


def test_errors_are_the_sdk_errors(server: BackgroundServer, client: Client) -> None:
    with pytest.raises(LMStudioModelNotFoundError):
        client.llm.model("no-such-model")
    with pytest.raises(LMStudioModelNotFoundError):
        client.llm.get_model_info("not-loaded")
    with pytest.raises(ValueError, match="ttl"):
        client.llm.model(KEY, ttl=-1)
    model = client.llm.model(KEY)
    with pytest.raises(ValueError, match="no_such_option"):
        model.respond("Hi", no_such_option=1)
    with pytest.raises(TypeError, match="on_first_token"):
        model.respond_stream("Hi", on_first_token=42)  # type: ignore[arg-type]
    server.set_script(KEY, script=TEXT, faults=Faults(error="Out of cheese"))
    with pytest.raises(LMStudioServerError, match="Out of cheese"):
        model.respond("Hi")  # the error itself: no exception group, no CancelledError
    server.set_script(KEY, script=TEXT, faults=Faults())
    assert model.respond("Hi").content == TEXT.text  # the client is fine


def test_timeout_passes_through_and_cancels(server: BackgroundServer, client: Client) -> None:
    model = client.llm.model(KEY)
    server.set_script(KEY, script=SLOW, faults=Faults(never_answer=True))
    with pytest.raises(LMStudioTimeoutError, match=r"nothing for 0\.5 s"):
        model.respond("Hi", timeout=0.5)
    server.set_script(KEY, script=TEXT, faults=Faults())
    assert model.respond("Hi").content == TEXT.text


def test_stream_must_be_used_in_with(client: Client, server: BackgroundServer) -> None:
    model = client.llm.model(KEY)
    stream = model.respond_stream("Hi")
    with pytest.raises(RuntimeError, match="with"):
        iter(stream)
    with stream:
        next(iter(stream.fragments()))
    with pytest.raises(RuntimeError, match="block has been left"):
        next(stream.fragments())
    with pytest.raises(RuntimeError, match="only once"), stream:
        pass
    # Read to the end inside the block, or not: after it, reading is always this error
    # (never a StopIteration or fragments fetched before leaving, which depend on timing).
    with model.respond_stream("Hi") as stream:
        assert "".join(f.content for f in stream.fragments())
    with pytest.raises(RuntimeError, match="block has been left"):
        next(iter(stream))
    assert stream.result().content


# ---------------------------------------------------------------------------- leaving early


def test_break_then_another_call(server: BackgroundServer, client: Client) -> None:
    model = client.llm.model(KEY)
    seen: list[str] = []
    with server_records(server) as next_record:
        with model.respond_stream("Hi") as stream:
            for fragment in stream.fragments():
                seen.append(fragment.content)
                if len(seen) == 3:
                    break
            # Breaking loses nothing: a new loop goes on where the first stopped.
            for fragment in stream.fragments():
                seen.append(fragment.content)
                if len(seen) == 6:
                    break
        assert seen == ["tok "] * 6
        assert_stopped_by_user(next_record(), stream.result(), seen)

        # The portal still works: plain calls and a whole new stream.
        assert client.system.version().version
        server.set_script(KEY, script=TEXT)
        with model.respond_stream("Again") as again:
            text = "".join(f.content for f in again.fragments())
        assert text == TEXT.text
        assert next_record().stats.stop_reason == "eosFound"  # type: ignore[union-attr]


def test_exception_in_block_cancels_on_server(server: BackgroundServer, client: Client) -> None:
    model = client.llm.model(KEY)
    seen: list[str] = []
    with server_records(server) as next_record:
        with pytest.raises(ZeroDivisionError), model.respond_stream("Hi") as stream:
            for fragment in stream.fragments():
                seen.append(fragment.content)
                if len(seen) == 3:
                    _ = 1 / 0
        assert_stopped_by_user(next_record(), stream.result(), seen)


def test_cancel_then_read_to_the_end(server: BackgroundServer, client: Client) -> None:
    model = client.llm.model(KEY)
    with server_records(server) as next_record, model.respond_stream("Hi") as stream:
        first = next(stream.fragments())
        stream.cancel()
        rest = [f.content for f in stream.fragments()]  # ends: the server stopped
        record = next_record()
    assert_stopped_by_user(record, stream.result(), [first.content, *rest])


def test_ctrl_c_while_streaming_cancels_on_server(server: BackgroundServer, client: Client) -> None:
    model = client.llm.model(KEY)
    seen: list[str] = []
    third = threading.Event()
    with server_records(server) as next_record:
        with (
            pytest.raises(KeyboardInterrupt),
            ctrl_c_when(third),
            model.respond_stream("Hi") as stream,
        ):
            for fragment in stream.fragments():
                seen.append(fragment.content)
                if len(seen) == 3:
                    third.set()
        assert_stopped_by_user(next_record(), stream.result(), seen)
        assert model.count_tokens("still works") == 2


def test_ctrl_c_in_a_blocking_call_cancels_on_server(
    server: BackgroundServer, client: Client
) -> None:
    model = client.llm.model(KEY)
    seen: list[str] = []
    third = threading.Event()

    def on_fragment(fragment: PredictionFragment) -> None:
        seen.append(fragment.content)
        if len(seen) == 3:
            third.set()

    with server_records(server) as next_record:
        with pytest.raises(KeyboardInterrupt), ctrl_c_when(third):
            model.respond("Hi", on_prediction_fragment=on_fragment)
        record = next_record()
    assert record.stats.stop_reason == "userStopped"  # type: ignore[union-attr]
    assert record.output.startswith("".join(seen))
    assert client.system.version().version


def test_ctrl_c_during_a_load_cancels_it_on_server(
    server: BackgroundServer, client: Client
) -> None:
    server.set_script(KEY, script=Script(load_progress_steps=100, load_step_seconds=0.1))
    started = threading.Event()
    with pytest.raises(KeyboardInterrupt), ctrl_c_when(started):
        client.llm.load(KEY, identifier="slow", on_progress=lambda _: started.set())
    assert client.llm.list_loaded() == []
    # A load still running on the server would hold the identifier ("already loaded").
    server.set_script(KEY, script=Script())
    assert client.llm.load(KEY, identifier="slow").identifier == "slow"


def test_callback_error_cancels_and_is_raised(server: BackgroundServer, client: Client) -> None:
    model = client.llm.model(KEY)

    def explode(fragment: PredictionFragment) -> None:
        raise ArithmeticError("from the callback")

    with server_records(server) as next_record:
        with pytest.raises(ArithmeticError, match="from the callback"):
            model.respond("Hi", on_prediction_fragment=explode)
        assert next_record().stats.stop_reason == "userStopped"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- threads


def test_callbacks_run_in_the_calling_thread(server: BackgroundServer, client: Client) -> None:
    server.set_script(KEY, script=TEXT)
    me = threading.get_ident()
    threads: dict[str, set[int]] = {}

    def record(name: str) -> Callable[..., None]:
        return lambda *_: threads.setdefault(name, set()).add(threading.get_ident())

    model = client.llm.load(KEY, on_progress=record("on_progress"))
    messages: list[Any] = []
    model.respond(
        "Hi",
        on_message=messages.append,
        on_first_token=record("on_first_token"),
        on_prediction_fragment=record("on_prediction_fragment"),
        on_prompt_processing_progress=record("on_prompt_processing_progress"),
    )
    assert len(messages) == 1
    assert messages[0].role == "assistant"

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    result = model.act(
        "What is 1 + 2?",
        [add],
        on_round_start=record("on_round_start"),
        on_round_end=record("on_round_end"),
        on_message=record("act on_message"),
        on_prediction_completed=record("on_prediction_completed"),
    )
    assert result.rounds >= 1
    assert set(threads) >= {
        "on_progress",
        "on_first_token",
        "on_prediction_fragment",
        "on_round_start",
        "on_round_end",
        "act on_message",
        "on_prediction_completed",
    }
    assert all(idents == {me} for idents in threads.values()), threads


def test_one_client_shared_by_threads(server: BackgroundServer, client: Client) -> None:
    server.set_script(KEY, script=TEXT)
    model = client.llm.model(KEY)
    results: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                results.append(model.respond("Hi").content)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert results == [TEXT.text] * 12


def test_closing_leaves_no_thread(server: BackgroundServer) -> None:
    before = threading.active_count()
    client = Client(server.url)
    assert threading.active_count() == before  # the loop thread starts at first use
    model = client.llm.model(KEY)
    with model.respond_stream("Hi") as stream:
        next(stream.fragments())
    assert threading.active_count() == before + 1
    client.close()
    client.close()  # idempotent
    assert threading.active_count() == before
    assert client.closed
    with pytest.raises(LMStudioConnectionError, match="closed"):
        client.system.version()
    with pytest.raises(LMStudioConnectionError, match="closed"):
        model.count_tokens("x")


def test_a_forgotten_client_is_closed_when_collected(server: BackgroundServer) -> None:
    before = threading.active_count()
    client = Client(server.url)
    client.system.version()
    assert threading.active_count() == before + 1
    del client
    gc.collect()
    assert threading.active_count() == before


def test_close_from_another_thread_fails_the_waiting_call(
    server: BackgroundServer, client: Client
) -> None:
    model = client.llm.model(KEY)
    server.set_script(KEY, script=SLOW, faults=Faults(never_answer=True))
    entered = threading.Event()

    def close_when_entered() -> None:
        entered.wait(10)
        client.close()

    closer = threading.Thread(target=close_when_entered)
    closer.start()
    try:
        with (
            pytest.raises(LMStudioConnectionError, match="closed"),
            model.respond_stream("Hi") as stream,
        ):
            entered.set()
            list(stream)
    finally:
        closer.join()


# ---------------------------------------------------------------------------- event loops


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_calling_from_an_event_loop_is_a_clear_error(backend: str, client: Client) -> None:
    async def misuse() -> list[str]:
        messages = []
        with pytest.raises(SyncInAsyncContextError) as caught:
            client.system.version()
        messages.append(str(caught.value))
        with pytest.raises(SyncInAsyncContextError) as caught:
            Client("localhost:1")
        messages.append(str(caught.value))
        return messages

    for message in anyio.run(misuse, backend=backend):
        assert "AsyncClient" in message
        assert backend in message
    assert client.system.version().version  # fine again outside the loop


def test_bad_host_or_token_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="host"):
        Client("ftp://nowhere")
    with pytest.raises(ValueError, match="api_token") as caught:
        Client("localhost:1", api_token="sk-lm-not-a-real-token")
    assert "not-a-real" not in str(caught.value)


def test_connection_error_names_the_host() -> None:
    with Client("localhost:1") as client, pytest.raises(LMStudioConnectionError) as caught:
        client.system.version()
    assert "localhost:1" in str(caught.value)


def test_repr_hides_the_token(server: BackgroundServer) -> None:
    token = "sk-lm-Abcd1234:Zyxw9876Vuts5432Rqpo"
    with Client(server.url, api_token=token) as client:
        assert "Zyxw" not in repr(client)
        assert "Abcd" not in repr(client)


def test_act_tool_timeout_and_a_logging_handler_in_the_blocking_api(
    server: BackgroundServer, client: Client
) -> None:
    calls = (ScriptedToolCall(name="block"),)
    server.set_script(KEY, script=Script(echo=True, tool_calls=calls))
    release = threading.Event()

    def block() -> str:
        release.wait()
        return "late"

    logged: list[str] = []
    messages: list[Any] = []
    try:
        result = client.llm.model(KEY).act(
            "Go",
            [block],
            tool_timeout=0.2,
            handle_invalid_tool_request=lambda exc, request: logged.append(type(exc).__name__),
            on_message=messages.append,
        )
    finally:
        release.set()
    assert result.rounds == 2
    assert logged == ["ToolTimeoutError"]
    [tool_message] = [m for m in messages if m.role == "tool"]
    assert "'block' did not finish within its timeout of 0.2 s" in tool_message.text
