"""The public namespace: lazy imports, ``__all__``, ``__version__``.

Import checks run in a fresh interpreter (a subprocess), since this test process has
already imported everything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import lmstudio_sdk
from lmstudio_sdk._version import __version__

ASYNC_LIBRARIES = ("anyio", "trio", "sniffio", "trio_websocket", "websockets")


def run_python(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_protocol_import_loads_no_async_library() -> None:
    run_python(
        f"""
        import sys
        import lmstudio_sdk.protocol
        import lmstudio_sdk.protocol.endpoints
        loaded = [m for m in {ASYNC_LIBRARIES!r} if m in sys.modules]
        assert not loaded, loaded
        """
    )


def test_package_import_is_lazy_and_transports_load_on_demand() -> None:
    run_python(
        """
        import sys
        import lmstudio_sdk
        assert "anyio" not in sys.modules and "trio" not in sys.modules
        assert lmstudio_sdk.LMStudioError.__module__ == "lmstudio_sdk.errors"
        assert "anyio" not in sys.modules
        client = lmstudio_sdk.AsyncClient("localhost:1")
        # The websocket libraries are imported only when a transport is opened.
        assert "trio_websocket" not in sys.modules and "websockets" not in sys.modules
        """
    )


def test_all_names_resolve_and_are_listed_in_dir() -> None:
    for name in lmstudio_sdk.__all__:
        assert getattr(lmstudio_sdk, name) is not None, name
    assert set(lmstudio_sdk.__all__) <= set(dir(lmstudio_sdk))
    assert lmstudio_sdk.__version__ == __version__


def test_public_names_are_the_real_objects() -> None:
    from lmstudio_sdk import errors
    from lmstudio_sdk._async.client import AsyncClient

    assert lmstudio_sdk.AsyncClient is AsyncClient
    assert lmstudio_sdk.LMStudioTimeoutError is errors.LMStudioTimeoutError
    assert issubclass(lmstudio_sdk.LMStudioAuthError, lmstudio_sdk.LMStudioConnectionError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        lmstudio_sdk.Nope  # noqa: B018
    assert not hasattr(lmstudio_sdk, "_secret_thing")
