"""The protocol package is sans-io: no sockets, threads, clocks or async libraries.

Two checks, because neither is enough alone: importing the package in a fresh interpreter
must not load any async or websocket library (a ``sys.modules`` check cannot cover
``threading`` and ``time``, which attrs, cattrs and logging already import), and no file
of the package may import the forbidden modules itself (an AST scan).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import lmstudio_sdk.protocol

PROTOCOL_DIR = Path(lmstudio_sdk.protocol.__file__).parent

FORBIDDEN_IMPORTS = frozenset(
    {
        "socket",
        "threading",
        "time",
        "asyncio",
        "select",
        "selectors",
        "anyio",
        "trio",
        "websockets",
        "trio_websocket",
        "wsproto",
        "sniffio",
    }
)
FORBIDDEN_LOADED = frozenset(
    {"anyio", "trio", "asyncio", "sniffio", "websockets", "trio_websocket", "wsproto", "socket"}
)


def test_importing_the_protocol_loads_no_async_or_network_library() -> None:
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        import lmstudio_sdk.protocol as protocol
        for module in pkgutil.walk_packages(protocol.__path__, protocol.__name__ + "."):
            importlib.import_module(module.name)
        loaded = sorted(set({sorted(FORBIDDEN_LOADED)!r}) & {{m.split(".")[0] for m in sys.modules}})
        assert not loaded, f"importing lmstudio_sdk.protocol loaded {{loaded}}"
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every import of a forbidden module in ``source``, as ``file:line module``."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        found += [
            f"{filename}:{node.lineno} {m}" for m in modules if m.split(".")[0] in FORBIDDEN_IMPORTS
        ]
    return found


def test_no_protocol_module_imports_io_modules() -> None:
    files = sorted(PROTOCOL_DIR.rglob("*.py"))
    names = {f.name for f in files}
    assert {"codec.py", "wire.py", "session.py", "server_session.py", "events.py"} <= names
    found = []
    for path in files:
        found += forbidden_imports(path.read_text(), str(path.relative_to(PROTOCOL_DIR)))
    assert found == []


def test_the_scan_catches_forbidden_imports() -> None:
    source = textwrap.dedent(
        """
        import json, time
        import asyncio.events
        from trio import sleep
        from . import socket
        from .time import clock
        def f():
            import threading
        """
    )
    assert forbidden_imports(source) == [
        "<source>:2 time",
        "<source>:3 asyncio.events",
        "<source>:4 trio",
        "<source>:8 threading",
    ]
