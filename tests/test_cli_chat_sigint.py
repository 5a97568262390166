"""``lmsdk chat`` in a real process: Ctrl-C (SIGINT) during an answer stops the
generation on the server, and the program goes on until the end of its input.

The program's output is read by a thread into a queue; every wait on it is bounded, so a
program that misbehaves fails the test instead of hanging it. The server's own record of
each prediction comes from its diagnostics log (see ``tests/sync/test_sync_client.py``).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lmstudio_sdk import Client
from lmstudio_sdk.protocol.endpoints.diagnostics import LLMPredictionOutputLog
from lmstudio_sdk.server import BackgroundServer, Script, ServerOptions, scripted_model

KEY = "scripted-llm"
SLOW = Script(fragments=("tok ",) * 2000, fragments_per_second=100)
SHORT = Script(text="Short answer.")
WAIT = 30  # seconds any one step may take before the test fails


@pytest.fixture
def server() -> Iterator[BackgroundServer]:
    # share_logs: the test watches the CLI's predictions from another client.
    models = (scripted_model(KEY, script=SLOW),)
    with BackgroundServer(ServerOptions(port=0, models=models, share_logs=True)) as s:
        yield s


class Output:
    """The program's stdout, read character by character in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._chunks: queue.Queue[str] = queue.Queue()
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(process,))
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        while chunk := process.stdout.read(1):
            self._chunks.put(chunk)

    def wait_for(self, expected: str, start: int = 0) -> int:
        """Read until ``expected`` appears after ``start``; its end position."""
        while (found := self.text.find(expected, start)) < 0:
            try:
                self.text += self._chunks.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(
                    f"{expected!r} did not appear; the output was {self.text!r}"
                ) from None
        return found + len(expected)

    def join(self) -> None:
        self._thread.join(WAIT)


def test_ctrl_c_stops_the_answer_on_the_server_and_the_chat_goes_on(
    server: BackgroundServer,
) -> None:
    with (
        Client(server.url) as watcher,
        watcher.diagnostics.stream_logs() as logs,
        subprocess.Popen(
            [sys.executable, "-m", "lmstudio_sdk", "--host", server.url, "chat", KEY],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=0,
        ) as process,
    ):
        assert process.stdin is not None
        assert process.stderr is not None
        with subscribed(watcher):  # no prediction record can be missed after this
            next_log(logs, watcher, lambda data: "watching" in getattr(data, "content", ""))
        output = Output(process)
        watchdog = threading.Timer(4 * WAIT, process.kill)
        watchdog.start()
        try:
            position = output.wait_for("Ctrl-D exits.")
            process.stdin.write("Tell me a long story\n")
            process.stdin.flush()
            position = output.wait_for("tok tok tok ", position)  # generation under way

            process.send_signal(signal.SIGINT)
            position = output.wait_for("[stopped]", position)
            shown = output.text[: position - len("[stopped]")].count("tok ")

            record = next_prediction_record(logs, watcher)
            assert record.stats.stop_reason == "userStopped"  # type: ignore[union-attr]
            assert shown <= record.output.count("tok ") < 2000

            # Still running: the next question gets a whole answer.
            server.set_script(KEY, script=SHORT)
            process.stdin.write("And now?\n")
            process.stdin.flush()
            output.wait_for(SHORT.text, position)
            record = next_prediction_record(logs, watcher)
            assert record.stats.stop_reason == "eosFound"  # type: ignore[union-attr]

            process.stdin.close()  # end of input: the program exits
            assert process.wait(timeout=WAIT) == 0
            errors = process.stderr.read()
            assert "Traceback" not in errors, errors
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
            output.join()


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


def next_log(logs: object, watcher: Client, wanted: Callable[[Any], bool]) -> Any:
    """The data of the next server log event that is ``wanted`` (bounded wait)."""
    watchdog = threading.Timer(WAIT, watcher.close)
    watchdog.start()
    try:
        for event in logs:  # type: ignore[attr-defined]
            if wanted(event.data):
                return event.data
    finally:
        watchdog.cancel()
    raise AssertionError("the log stream ended before the expected event")


def next_prediction_record(logs: object, watcher: Client) -> LLMPredictionOutputLog:
    """The server's log entry for the next prediction that ends."""
    record: LLMPredictionOutputLog = next_log(
        logs, watcher, lambda data: isinstance(data, LLMPredictionOutputLog)
    )
    return record
