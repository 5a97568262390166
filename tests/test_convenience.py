"""The module-level convenience API and its process-wide default client.

In-process tests reset the module's state around each test (``fresh``); what happens at
interpreter exit is checked in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

import lmstudio_sdk as lms
from lmstudio_sdk import LMStudioAuthError
from lmstudio_sdk.server import BackgroundServer, Faults, Script, ServerOptions, scripted_model

KEY = "scripted-llm"
EMBEDDING = "scripted-embedding"
TOKEN = "sk-lm-Abcd1234:Zyxw9876Vuts5432Rqpo"
TEXT = Script(text="Hello from the default client.")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def models() -> tuple[object, ...]:
    return (scripted_model(KEY, script=TEXT), scripted_model(EMBEDDING, domain="embedding"))


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerOptions(port=0, models=models())) as running:  # type: ignore[arg-type]
        yield running


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The convenience module with no default client and no settings (restored after)."""
    from lmstudio_sdk import _convenience

    monkeypatch.setattr(_convenience, "_default", None)
    monkeypatch.setattr(_convenience, "_settings", {})
    monkeypatch.setattr(_convenience, "_interpreter_exiting", False)
    yield _convenience
    client = _convenience._default
    if client is not None:
        client.close()


def test_module_functions_use_one_default_client(
    fresh: ModuleType, server: BackgroundServer
) -> None:
    lms.configure_default_client(server.url)
    model = lms.llm(KEY)
    assert isinstance(model, lms.LLM)
    assert model.respond("Hi").content == TEXT.text
    client = lms.get_default_client()
    assert client is lms.get_default_client()
    assert client.base_url == server.url
    assert {m.model_key for m in lms.list_downloaded_models()} == {KEY, EMBEDDING}
    assert [m.model_key for m in lms.list_downloaded_models("llm")] == [KEY]
    embedder = lms.embedding_model(EMBEDDING)
    assert isinstance(embedder, lms.EmbeddingModel)
    assert len(embedder.embed("x")) > 0
    assert [m.identifier for m in lms.list_loaded_models()] == [KEY, EMBEDDING]
    assert [m.identifier for m in lms.list_loaded_models("embedding")] == [EMBEDDING]
    assert lms.llm() == model  # no key: any loaded LLM
    image = lms.prepare_image(PNG, "pixel")
    assert image.name == "pixel.png"
    assert image.is_image
    with pytest.raises(ValueError, match="domain"):
        lms.list_loaded_models("vision")


def test_creation_is_thread_safe(fresh: ModuleType, server: BackgroundServer) -> None:
    lms.configure_default_client(server.url)
    barrier = threading.Barrier(8)
    clients: list[lms.Client] = []

    def get() -> None:
        barrier.wait()
        clients.append(lms.get_default_client())

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(clients) == 8
    assert all(client is clients[0] for client in clients)


def test_configure_after_creation_is_refused(fresh: ModuleType, server: BackgroundServer) -> None:
    lms.configure_default_client(server.url)
    lms.get_default_client()
    with pytest.raises(RuntimeError, match="already exists"):
        lms.configure_default_client("localhost:1")
    assert lms.get_default_client().base_url == server.url


def test_configure_timeout_given_none_or_not(fresh: ModuleType) -> None:
    slow = scripted_model(KEY, script=TEXT, faults=Faults(delay=1.0))
    with BackgroundServer(ServerOptions(port=0, models=(slow,))) as running:
        lms.configure_default_client(running.url, timeout=0.3)
        with pytest.raises(lms.LMStudioTimeoutError):
            lms.llm(KEY).respond("Hi")
        fresh._default.close()
        fresh._default = None
        # None is "no limit" (as for Client), not "not given" (the 60 s default).
        lms.configure_default_client(running.url, timeout=None)
        assert lms.get_default_client()._async._settings.timeout is None
        assert lms.llm(KEY).respond("Hi").content == TEXT.text
        fresh._default.close()
        fresh._default = None
        lms.configure_default_client(running.url)
        assert lms.get_default_client()._async._settings.timeout == 60.0


def test_configure_checks_its_arguments(fresh: ModuleType) -> None:
    with pytest.raises(ValueError, match="host"):
        lms.configure_default_client("ftp://nowhere")
    with pytest.raises(ValueError, match="api_token"):
        lms.configure_default_client("localhost:1", api_token="sk-lm-bad")


def test_the_api_token_is_not_dropped(fresh: ModuleType) -> None:
    options = ServerOptions(port=0, models=models(), api_tokens=[TOKEN])  # type: ignore[arg-type]
    with BackgroundServer(options) as server:
        lms.configure_default_client(server.url, api_token=TOKEN)
        assert not lms.get_default_client().is_guest
        assert [m.model_key for m in lms.list_downloaded_models("llm")] == [KEY]
        assert "Zyxw" not in repr(lms.get_default_client())
        # The same server refuses a client without the token.
        with lms.Client(server.url) as guest, pytest.raises(LMStudioAuthError):
            guest.system.version()


def test_closing_at_exit_refuses_a_new_client(fresh: ModuleType, server: BackgroundServer) -> None:
    lms.configure_default_client(server.url)
    client = lms.get_default_client()
    client.system.version()
    fresh._close_default_client()
    assert client.closed
    with pytest.raises(RuntimeError, match="exiting"):
        lms.get_default_client()


def test_a_closed_default_client_is_replaced(fresh: ModuleType, server: BackgroundServer) -> None:
    lms.configure_default_client(server.url)
    first = lms.get_default_client()
    first.close()
    second = lms.get_default_client()
    assert second is not first
    assert second.system.version().version


def test_interpreter_exit_closes_the_default_client(server: BackgroundServer) -> None:
    """A program that never closes the default client exits cleanly; an atexit hook
    registered after the import may still use it; one registered before sees it closed."""
    code = f"""
        import atexit, threading

        def early_hook():  # registered before lmstudio_sdk: runs after its cleanup
            try:
                lms.get_default_client()
            except RuntimeError as exc:
                print("early hook:", exc)

        atexit.register(early_hook)
        import lmstudio_sdk as lms

        lms.configure_default_client({server.url!r})
        model = lms.llm({KEY!r})
        print("answer:", model.respond("Hi").content)

        def late_hook():  # registered after: runs first, the client still works
            print("late hook:", [m.identifier for m in lms.list_loaded_models()])
            print("threads:", threading.active_count())

        atexit.register(late_hook)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"answer: {TEXT.text}"
    assert lines[1] == f"late hook: [{KEY!r}]"
    assert lines[2] == "threads: 2"  # the main thread and the client's event loop
    assert lines[3].startswith("early hook: the interpreter is exiting")
