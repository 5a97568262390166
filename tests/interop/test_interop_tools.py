"""Tool calls from the real SmolLM2 through our server, as each client's ``act()`` sees them.

SmolLM2 has no native tool-call tokens; the server gives it LM Studio's treatment (a tool-use
prompt and a grammar admitting text or one call). The official clients run the same scripts
as through the gateway (``gateway_extras.py`` / ``.mjs``: structured output, then ``act()``
with an ``add`` tool); our SDK runs ``act()`` in-process. Each asserts the tool really ran
with integer arguments, and the loop ended after the model's answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_interop import LLM_KEY, TEST_TIMEOUT, run_passing_scenario

pytestmark = [pytest.mark.interop, pytest.mark.model]

HERE = Path(__file__).resolve().parent


def _check(summary: dict[str, Any], client_log: list[Any]) -> None:
    assert summary["structured"] in ({"answer": "yes"}, {"answer": "no"})
    assert len(summary["toolCalls"]) >= 1, summary
    assert all(isinstance(x, int) for call in summary["toolCalls"] for x in call)
    assert summary["rounds"] == 2
    assert client_log == [], f"the official client logged warnings/errors: {client_log}"


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_python_client_act_calls_the_tool(
    interop_server: Any, python_client_command: list[str]
) -> None:
    host = urlsplit(interop_server.url).netloc
    command = [python_client_command[0], str(HERE / "gateway_extras.py")]
    summary = run_passing_scenario([*command, "--host", host, "--llm", LLM_KEY])
    _check(summary, summary["clientLog"])


@pytest.mark.timeout(TEST_TIMEOUT)
def test_official_js_client_act_calls_the_tool(
    interop_server: Any, js_client_command: list[str]
) -> None:
    command = [js_client_command[0], str(HERE / "gateway_extras.mjs")]
    summary = run_passing_scenario([*command, "--base-url", interop_server.url, "--llm", LLM_KEY])
    _check(summary, summary["sdkLog"])


@pytest.mark.timeout(TEST_TIMEOUT)
async def test_our_sdk_act_calls_the_tool(interop_server: Any) -> None:
    from lmstudio_sdk import AsyncClient

    calls: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two integers."""
        calls.append((a, b))
        return a + b

    async with AsyncClient(interop_server.url) as client:
        model = await client.llm.model(LLM_KEY)
        result = await model.act(
            "Use the add tool to add 2 and 3.",
            [add],
            max_prediction_rounds=2,
            temperature=0,
            max_tokens=40,
        )
    assert calls, "the model did not call the tool"
    assert all(isinstance(x, int) for call in calls for x in call)
    assert result.rounds == 2


@pytest.mark.timeout(TEST_TIMEOUT)
def test_the_tool_calling_example_really_calls_a_tool(interop_server: Any) -> None:
    example = HERE.parent.parent / "examples" / "tool_calling.py"
    env = {**os.environ, "LMSTUDIO_HOST": interop_server.url, "NO_PROXY": "127.0.0.1"}
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=TEST_TIMEOUT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.startswith(("assistant: calls add(", "assistant: calls weather(")) for line in lines
    )
    assert any(line.startswith(("tool add: ", "tool weather: ")) for line in lines), done.stdout


@pytest.mark.timeout(TEST_TIMEOUT)
def test_a_catalogue_model_reported_as_trained_for_tools_calls_them_too(
    catalog_server: Any, python_client_command: list[str]
) -> None:
    # The example catalogue reports SmolLM2 as `llama-3.2-1b-instruct`, trained for tool use;
    # its chat template still knows no tools, so it gets the same tool-use prompt.
    host = urlsplit(catalog_server.url).netloc
    command = [python_client_command[0], str(HERE / "gateway_extras.py")]
    summary = run_passing_scenario([*command, "--host", host, "--llm", "llama-3.2-1b-instruct"])
    _check(summary, summary["clientLog"])
