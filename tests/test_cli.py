"""The client commands of ``lmsdk`` (``main(argv)``, output captured) against the local
server: ls, ps, load, unload, complete, embed, chat (scripted stdin), version, and how
errors are reported. ``log stream`` needs Ctrl-C to stop, so it runs as a subprocess.
"""

from __future__ import annotations

import io
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from lmstudio_sdk import Client, __version__
from lmstudio_sdk.cli import main
from lmstudio_sdk.server import BackgroundServer, Script, ServerOptions, scripted_model

KEY = "scripted-llm"
EMBEDDING = "scripted-embedding"
TOKEN = "sk-lm-Abcd1234:Zyxw9876Vuts5432Rqpo"
TEXT = Script(text="It was a bright cold day in April.")


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    models = (scripted_model(KEY, script=TEXT), scripted_model(EMBEDDING, domain="embedding"))
    # share_logs: `lmsdk log stream` is a client of its own, watching the others' activity.
    with BackgroundServer(ServerOptions(port=0, models=models, share_logs=True)) as running:
        yield running


def cells(row: str) -> list[str]:
    """The cells of a table row (columns are at least two spaces apart)."""
    return re.split(r"\s{2,}", row.strip())


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_ls_lists_the_downloaded_models(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "--host", server.url, "ls")
    assert status == 0
    assert "Downloaded models (2)" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("scripted")}
    assert set(rows) == {KEY, EMBEDDING}
    assert "llm" in rows[KEY]
    assert "embedding" in rows[EMBEDDING]

    # Options after the command work too; --json is one object per model.
    status, out, _ = run(capsys, "ls", "--host", server.url, "--embedding", "--json")
    assert status == 0
    assert [json.loads(line)["model_key"] for line in out.splitlines()] == [EMBEDDING]


def test_load_ps_unload(server: BackgroundServer, capsys: pytest.CaptureFixture[str]) -> None:
    host = ["--host", server.url]
    assert run(capsys, *host, "ps")[:2] == (0, "No models are loaded.\n")

    status, out, _ = run(
        capsys,
        *host,
        "load",
        KEY,
        "--identifier",
        "mine",
        "--ttl",
        "600",
        "--context-length",
        "1024",
    )
    assert (status, out) == (0, f"Loaded {KEY} as mine (llm).\n")
    status, out, _ = run(capsys, *host, "load", EMBEDDING)
    assert (status, out) == (0, f"Loaded {EMBEDDING} as {EMBEDDING} (embedding).\n")
    assert sorted(server.loaded_identifiers()) == sorted(["mine", EMBEDDING])

    status, out, _ = run(capsys, *host, "ps")
    assert status == 0
    mine = next(line for line in out.splitlines() if line.startswith("mine"))
    assert cells(mine) == ["mine", KEY, "llm", "1024", "600 s"]
    status, out, _ = run(capsys, *host, "ps", "--json")
    infos = {json.loads(line)["identifier"]: json.loads(line) for line in out.splitlines()}
    assert infos["mine"]["context_length"] == 1024
    assert infos["mine"]["ttl_ms"] == 600_000

    status, out, err = run(capsys, *host, "unload", "nope")
    assert status == 1
    assert "'nope'" in err
    assert "mine" in err  # says what is loaded
    assert run(capsys, *host, "unload", "mine")[:2] == (0, "Unloaded mine.\n")
    assert server.loaded_identifiers() == [EMBEDDING]
    assert run(capsys, *host, "unload", "--all")[:2] == (0, f"Unloaded {EMBEDDING}.\n")
    assert server.loaded_identifiers() == []


def test_load_refuses_bad_values(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "--host", server.url, "load", KEY, "--ttl", "-3")
    assert status == 2
    assert "--ttl" in err
    status, _, err = run(capsys, "--host", server.url, "load", "no-such-model")
    assert status == 1
    assert "no-such-model" in err
    # The suggestion names what a user can run, not the protocol's endpoint.
    assert "`lmsdk ls` or client.system.list_downloaded_models()" in err
    assert "Traceback" not in err


def test_complete_prints_the_completion(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "--host", server.url, "complete", KEY, "Once upon a time")
    assert status == 0
    assert out == TEXT.text + "\n"
    assert "thinking" not in err  # no spinner when stderr is not a terminal


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_chat_says_thinking_until_the_first_token_on_a_terminal(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n"))
    status, out, _ = run(capsys, "--host", server.url, "chat", KEY)
    assert status == 0
    assert TEXT.text in out
    assert "thinking..." in terminal.getvalue()


def test_embed_prints_summaries_or_vectors(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with Client(server.url) as client:
        expected = client.embedding.model(EMBEDDING).embed(["first text", "second"])
    status, out, _ = run(capsys, "--host", server.url, "embed", EMBEDDING, "first text", "second")
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"'first text': {len(expected[0])} dimensions, norm ")
    assert lines[1].startswith("'second': ")

    status, out, _ = run(capsys, "--host", server.url, "embed", EMBEDDING, "first text", "--full")
    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == expected[:1]


def test_chat_with_scripted_input(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server.set_script(KEY, script=Script(echo=True, echo_prefix="echo: "))
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello there\n\nsecond question\n"))
    status, out, _ = run(capsys, "--host", server.url, "chat", KEY, "--system", "Be brief.")
    assert status == 0  # ended by end of input
    assert out.startswith(f"Chatting with {KEY}.")
    assert "echo: hello there\n" in out
    assert "echo: second question\n" in out
    assert out.index("hello there") < out.index("second question")
    assert "[stopped]" not in out


def test_chat_without_a_key_needs_a_loaded_model(
    server: BackgroundServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    status, _, err = run(capsys, "--host", server.url, "chat")
    assert status == 1
    assert "Traceback" not in err
    with Client(server.url) as client:
        client.llm.model(KEY)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    status, out, _ = run(capsys, "--host", server.url, "chat")
    assert status == 0
    assert TEXT.text in out


def test_version(server: BackgroundServer, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--host", server.url, "version")
    assert status == 0
    with Client(server.url) as client:
        server_version = client.system.version().version
    assert out.splitlines() == [
        f"lmstudio-sdk {__version__}",
        f"server {server_version} (build 0) at {server.url}",
    ]


def test_connection_errors_name_the_host_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, "--host", "127.0.0.1:1", "ls")
    assert status == 1
    assert out == ""
    assert err.startswith("lmsdk: error: ")
    assert "ws://127.0.0.1:1/system" in err
    assert "Is LM Studio running? Start it (or `lmsdk serve`)" in err  # as with discovery
    assert "Traceback" not in err


def test_api_token_option_and_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = (scripted_model(KEY, script=TEXT),)
    with BackgroundServer(ServerOptions(port=0, models=models, api_tokens=[TOKEN])) as server:
        status, _, err = run(capsys, "--host", server.url, "ls")
        assert status == 1
        assert "lmsdk: error:" in err
        status, out, err = run(capsys, "--host", server.url, "--api-token", TOKEN, "ls")
        assert status == 0
        assert KEY in out
        assert "Zyxw" not in out + err
        monkeypatch.setenv("LM_API_TOKEN", TOKEN)
        monkeypatch.setenv("LMSTUDIO_HOST", server.url)
        status, out, _ = run(capsys, "ls")
        assert status == 0
        assert KEY in out


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "--embedded", "--host", "127.0.0.1:1", "ls")
    assert status == 2
    assert "--embedded and --host" in err
    status, _, err = run(capsys, "--scripted", "ls")
    assert status == 2
    assert "--embedded" in err
    status, out, err = run(capsys, "--api-token", "sk-lm-secretvalue", "ls")
    assert status == 2
    assert "api_token is not a valid" in err
    assert "secretvalue" not in out + err
    with pytest.raises(SystemExit) as caught:
        main(["unload"])  # IDENTIFIER or --all is required
    assert caught.value.code == 2


def test_a_mistyped_option_shows_the_command_usage_and_the_closest_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["complete", "some-model", "Hi", "--max_tokens", "5"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lmsdk complete ")
    assert "lmsdk complete: error: unrecognized arguments: --max_tokens 5" in err
    assert "--max_tokens: did you mean --max-tokens?" in err
    with pytest.raises(SystemExit):
        main(["ls", "--jsn"])
    err = capsys.readouterr().err
    assert err.startswith("usage: lmsdk ls ")
    assert "--jsn: did you mean --json?" in err


def test_embedded_server_is_started_and_announced(capsys: pytest.CaptureFixture[str]) -> None:
    before = threading.active_count()
    status, out, err = run(capsys, "--embedded", "--scripted", "complete", KEY, "Hi")
    assert status == 0
    assert out.strip()  # the scripted model answered
    assert "started an embedded LM Studio-compatible server at ws://127.0.0.1:" in err
    assert threading.active_count() == before  # server and client are gone


def test_log_stream_prints_events_until_ctrl_c(server: BackgroundServer) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "lmstudio_sdk", "--host", server.url, "log", "stream"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            for line in process.stdout or ():
                lines.put(line)

        reader = threading.Thread(target=read)
        reader.start()
        try:
            _watch_logs(server, process, lines)
        finally:
            if process.poll() is None:
                process.kill()
            reader.join()


def _watch_logs(
    server: BackgroundServer, process: subprocess.Popen[str], lines: queue.Queue[str]
) -> None:
    assert process.stderr is not None
    assert "Streaming the server's logs" in process.stderr.readline()
    with Client(server.url) as client:
        # Once a notification is printed the stream is subscribed (notify until one is).
        for _ in range(40):
            client.system.notify("watching")
            try:
                if "Notification: watching" in lines.get(timeout=0.5):
                    break
            except queue.Empty:
                continue
        else:
            raise AssertionError("lmsdk log stream printed no notification")
        client.llm.model(KEY).respond("Hi")
    while True:
        line = lines.get(timeout=20)
        if "llm.prediction.output" in line:
            break
    assert TEXT.text in line
    assert "(eosFound)" in line
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
