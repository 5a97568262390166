"""The official clients against our server: the proof that the server is faithful.

Each test runs one official client's scenario script (see README.md in this folder) as a
subprocess against ``interop_server`` and asserts on the JSON summary it prints: what a user
of that client would check. On failure the script's own message and its stderr (the client's
logging included) are shown.

``LMSDK_INTEROP_TIMEOUT`` (seconds, default 240) bounds one scenario run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
# Model keys our server serves with its default options.
LLM_KEY = "smollm2-135m-instruct"
EMBEDDING_KEY = "all-minilm-l6-v2"

SCENARIO_TIMEOUT = float(os.environ.get("LMSDK_INTEROP_TIMEOUT", "240"))
# The module-scoped server starts (and loads nothing) inside the first test's time budget.
TEST_TIMEOUT = SCENARIO_TIMEOUT + 120
STDERR_TAIL_LINES = 150


def _scenario_env() -> dict[str, str]:
    env = dict(os.environ)
    # httpx (the Python client's greeting probe and websockets) honours proxy variables;
    # loopback must never go through a proxy.
    no_proxy = [p for p in (env.get("NO_PROXY"), env.get("no_proxy")) if p]
    env["NO_PROXY"] = env["no_proxy"] = ",".join([*no_proxy, "127.0.0.1", "localhost"])
    env["NO_COLOR"] = "1"
    env["FORCE_COLOR"] = "0"
    return env


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data


def _tail(text: str) -> str:
    lines = text.splitlines()
    if len(lines) > STDERR_TAIL_LINES:
        lines = [
            f"... ({len(lines) - STDERR_TAIL_LINES} lines omitted)",
            *lines[-STDERR_TAIL_LINES:],
        ]
    return "\n".join(lines)


def run_scenario(
    command: list[str], timeout: float = SCENARIO_TIMEOUT
) -> tuple[int, dict[str, Any], str]:
    """Run a scenario script; return its exit status, its JSON summary and its stderr."""
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_scenario_env(),
            cwd=HERE,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"{' '.join(command)} did not finish within {timeout:g}s\n"
            f"--- stderr ---\n{_tail(_text(exc.stderr))}",
            pytrace=False,
        )
    lines = proc.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        summary = None
    if not isinstance(summary, dict):
        pytest.fail(
            f"{' '.join(command)} exited {proc.returncode} without a JSON summary on stdout\n"
            f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}",
            pytrace=False,
        )
    return proc.returncode, summary, proc.stderr


def run_passing_scenario(command: list[str]) -> dict[str, Any]:
    returncode, summary, stderr = run_scenario(command)
    if returncode != 0 or summary.get("ok") is not True:
        failure = summary.get("failure") or {}
        pytest.fail(
            f"{summary.get('client')} {summary.get('clientVersion')}: failed at step "
            f"{failure.get('step')!r}: {failure.get('message')} (exit {returncode})\n"
            f"--- stderr ---\n{_tail(stderr)}",
            pytrace=False,
        )
    return summary


def assert_user_level_results(summary: dict[str, Any], client_log: list[Any]) -> None:
    """What a user of either official client checks after running the scenario."""
    downloaded = {m["modelKey"]: m["type"] for m in summary["downloaded"]}
    assert downloaded.get(LLM_KEY) == "llm"
    assert downloaded.get(EMBEDDING_KEY) == "embedding"

    assert summary["load"]["modelKey"] == LLM_KEY
    assert summary["load"]["progress"], "get-or-load reported no progress"
    assert all(0 <= p <= 1 for p in summary["load"]["progress"])

    chat = summary["chat"]
    assert chat["text"].strip(), "the streamed chat response is empty"
    stats = chat["stats"]
    for field in (
        "stopReason",
        "tokensPerSecond",
        "timeToFirstTokenSec",
        "predictedTokensCount",
        "promptTokensCount",
    ):
        assert stats.get(field) is not None, f"chat stats lack {field}: {stats}"

    assert summary["cancel"]["stopReason"] == "userStopped"

    tokenize = summary["tokenize"]
    assert tokenize["tokens"]
    assert tokenize["count"] == len(tokenize["tokens"])

    template = summary["promptTemplate"]
    assert template["userText"] in template["formatted"]

    embedding = summary["embedding"]
    assert embedding["modelKey"] == EMBEDDING_KEY
    assert embedding["dimensions"] > 0
    assert embedding["cosineParaphrase"] > embedding["cosineUnrelated"]

    assert summary["unload"] == {"llmStillLoaded": False, "embeddingStillLoaded": False}
    assert client_log == [], f"the official client logged warnings/errors: {client_log}"


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client(interop_server: Any, js_client_command: list[str]) -> None:
    summary = run_passing_scenario([*js_client_command, "--base-url", interop_server.url])
    assert summary["greeting"] == {"lmstudio": True}
    # The JS client's model handles talk to the instance they loaded.
    assert summary["chat"]["modelIdentifier"] == summary["load"]["identifier"]
    # getContextLength() reads llm.load.contextLength from getLoadConfig.
    info = summary["modelInfo"]
    assert info["contextLengthFromLoadConfig"] == info["contextLength"]
    assert_user_level_results(summary, summary["sdkLog"])


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_python_client(interop_server: Any, python_client_command: list[str]) -> None:
    host = urlsplit(interop_server.url).netloc
    summary = run_passing_scenario([*python_client_command, "--host", host])
    assert summary["connected"] == host
    # The client reports 0.0 on startLoading and 1.0 on loadSuccess: a real load happened.
    progress = summary["load"]["progress"]
    assert progress[0] == 0.0
    assert progress[-1] == 1.0
    assert summary["chat"]["modelKey"] == LLM_KEY
    assert_user_level_results(summary, summary["clientLog"])


def _unused_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("client", ["js", "python"])
def test_scenario_fails_fast_without_server(client: str, request: pytest.FixtureRequest) -> None:
    """With nothing listening, a scenario fails at its first step, says where, and never hangs."""
    port = _unused_loopback_port()
    if client == "js":
        command = [
            *request.getfixturevalue("js_client_command"),
            "--base-url",
            f"ws://127.0.0.1:{port}",
        ]
    else:
        command = [*request.getfixturevalue("python_client_command"), "--host", f"127.0.0.1:{port}"]
    returncode, summary, _stderr = run_scenario(command, timeout=60)
    assert returncode == 1
    assert summary["ok"] is False
    assert summary["failure"]["step"] in ("greeting", "connect")
    assert f"127.0.0.1:{port}" in summary["failure"]["message"]
