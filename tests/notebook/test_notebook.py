"""The blocking API in a real Jupyter kernel: ``lms.llm()``, streams, ``Client`` and interrupts.

A real ipykernel (started by ``nbclient`` / ``jupyter_client``, with this Python) executes
notebook cells against the local server with scripted models; the server's URL reaches the
kernel through the environment. Cells run inside a task of the kernel's asyncio loop: the
blocking API must work there, and must still refuse to run in a task the notebook creates.

Runs in the tox env ``py311`` (which installs ipykernel and nbclient); skipped where they are
not installed, but a skip under ``CI=true`` on Python 3.11 fails (see tests/conftest.py).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lmstudio_sdk.server import BackgroundServer, Script, ServerOptions, scripted_model

try:
    import ipykernel  # noqa: F401 - the kernel the tests start
    import jupyter_client.manager
    import nbclient
    import nbformat
except ImportError as exc:  # skipped per test, so that CI=true can turn the skip into a failure
    MISSING: str | None = f"the notebook test needs ipykernel and nbclient: {exc}"
else:
    MISSING = None

pytestmark = pytest.mark.notebook

QUICK = "scripted-llm"
ENDLESS = "endless-llm"
# A generation of 100 000 fragments at 50 per second: over half an hour unless cancelled.
ENDLESS_SCRIPT = Script(fragments=("word ",) * 100_000, fragments_per_second=50)
URL_VARIABLE = "LMSTUDIO_NOTEBOOK_TEST_URL"
SETUP = f"""
import os
import lmstudio_sdk as lms
URL = os.environ["{URL_VARIABLE}"]
lms.configure_default_client(URL)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    models = (scripted_model(QUICK), scripted_model(ENDLESS, script=ENDLESS_SCRIPT))
    with BackgroundServer(ServerOptions(port=0, models=models)) as running:
        yield running


@pytest.fixture
def kernel_env(
    server: BackgroundServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> BackgroundServer:
    """The kernel inherits this environment: the server's URL, a private IPython dir."""
    if MISSING is not None:
        pytest.skip(MISSING)
    monkeypatch.setenv(URL_VARIABLE, server.url)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return server


def cell(source: str) -> Any:
    return nbformat.v4.new_code_cell(textwrap.dedent(source).strip())


def text_of(executed: Any) -> str:
    """Everything a cell printed."""
    return "".join(
        output.get("text", "") for output in executed.outputs if output.output_type == "stream"
    )


def test_lms_llm_a_stream_and_a_client_in_with_work_in_notebook_cells(
    kernel_env: BackgroundServer,
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        cell(SETUP),
        cell(f"""
            model = lms.llm("{QUICK}")
            print("respond:", model.respond("Hi").content)
        """),
        cell("""
            with model.respond_stream("Hi") as stream:
                parts = [fragment.content for fragment in stream.fragments()]
            print("fragments:", len(parts), "".join(parts) == stream.result().content)
        """),
        cell(f"""
            with lms.Client(URL) as client:
                print("client:", client.llm.model("{QUICK}").respond("Hi").stop_reason)
        """),
        # Top-level await runs in the cell's own task: still the kernel's, still allowed.
        cell("""
            import asyncio
            await asyncio.sleep(0)
            print("after await:", model.respond("Hi").stop_reason)
        """),
        # A task the notebook creates is application code: the blocking API is refused.
        cell(f"""
            async def in_a_task():
                lms.llm("{QUICK}")

            try:
                await asyncio.create_task(in_a_task())
            except lms.SyncInAsyncContextError as exc:
                print("refused:", "AsyncClient" in str(exc))
        """),
    ]
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3")
    client.execute()
    outputs = [text_of(executed) for executed in notebook.cells]
    assert outputs[1].startswith("respond: ")
    assert len(outputs[1].strip()) > len("respond:")
    count, same = outputs[2].split()[1:]
    assert int(count) > 1
    assert same == "True"
    assert outputs[3].strip() == "client: eosFound"
    assert outputs[4].strip() == "after await: eosFound"
    assert outputs[5].strip() == "refused: True"
    assert kernel_env.stats.snapshot().open_by_endpoint.get("llm.predict", 0) == 0


def test_interrupting_the_kernel_cancels_a_long_generation_on_the_server(
    kernel_env: BackgroundServer,
) -> None:
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        run(client, SETUP)
        long_cell = f"""
            with lms.llm("{ENDLESS}").respond_stream("Go on forever") as stream:
                for fragment in stream.fragments():
                    print(fragment.content, end="", flush=True)
        """
        message_id = client.execute(textwrap.dedent(long_cell).strip())
        # Wait until the generation streams into the cell's output.
        while True:
            message = client.get_iopub_msg(timeout=30)
            if message["parent_header"].get("msg_id") == message_id and (
                message["msg_type"] == "stream"
            ):
                break
        assert kernel_env.stats.snapshot().open_by_endpoint.get("llm.predict") == 1
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        while reply["parent_header"].get("msg_id") != message_id:
            reply = client.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        # The interrupt cancelled the generation on the server (it would run for half an
        # hour otherwise), and the kernel's client still works afterwards.
        assert kernel_env.stats.snapshot().open_by_endpoint.get("llm.predict", 0) == 0
        assert run(client, f'print(lms.llm("{QUICK}").respond("Hi").stop_reason)') == "eosFound"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client: Any, source: str) -> str:
    """Execute ``source`` in the kernel; return what it printed (fail on an error)."""
    for _ in range(5):
        collected = _Collector()
        reply = client.execute_interactive(
            textwrap.dedent(source).strip(), timeout=60, output_hook=collected
        )
        # Right after a cell failed (the interrupt), ipykernel aborts the requests that reach
        # it before its abort window closes; that is Jupyter's doing, not ours: ask again.
        if reply["content"]["status"] != "aborted":
            break
    assert reply["content"]["status"] == "ok", collected.errors
    return "".join(collected.texts).strip()


class _Collector:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors: list[str] = []

    def __call__(self, message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            self.texts.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            self.errors.append("\n".join(message["content"]["traceback"]))
