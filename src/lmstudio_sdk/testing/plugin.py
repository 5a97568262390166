"""The lmstudio-sdk pytest plugin (entry point ``pytest11: lmstudio_sdk``).

Fixtures:

``lmstudio_server_options`` (session)
    The :class:`~lmstudio_sdk.server.ServerOptions` of the scripted server: loopback, a
    free port, the scripted models. Override it in a ``conftest.py`` to serve other models
    or inject faults. With a model catalogue (``--lmstudio-catalog FILE.toml`` or the ini
    setting ``lmstudio_catalog``, relative to the rootdir), its models instead.
``lmstudio_server`` (session)
    A running :class:`~lmstudio_sdk.server.BackgroundServer`. Scripted by default; with
    the marker ``@pytest.mark.lmstudio_real_model``, or with
    ``@pytest.mark.parametrize("lmstudio_server", ["real"], indirect=True)``, the bundled
    real models (SmolLM2-135M-Instruct, all-MiniLM-L6-v2); the test is skipped when they are
    not installed. One server of each kind per test session.
``lmstudio_server_url``
    ``lmstudio_server.url`` (``ws://127.0.0.1:<port>``).
``lmstudio_no_open_channels``
    Use it in a test (or ``@pytest.mark.usefixtures``) to fail the test if it leaves a
    channel open on ``lmstudio_server`` (a stream never closed, a task still reading).

Connect your own client to ``lmstudio_server_url`` (``AsyncClient(lmstudio_server_url)``
or ``Client(lmstudio_server_url)``); see ``docs/testing.md``.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from ..server import BackgroundServer, ServerOptions, bundled_models, scripted_models
from ..server._options import REAL_MODELS_INSTALL_HINT
from ._channels import assert_no_open_channels

__all__ = [
    "REAL_MODEL_MARKER",
    "lmstudio_no_open_channels",
    "lmstudio_server",
    "lmstudio_server_options",
    "lmstudio_server_url",
]

REAL_MODEL_MARKER = "lmstudio_real_model"
_KINDS = ("scripted", "real")


CATALOG_SETTING = "lmstudio_catalog"


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = "a model catalogue TOML file the lmstudio_server fixture serves (docs/server.md)"
    parser.addini(CATALOG_SETTING, help_text, default="")
    parser.addoption("--lmstudio-catalog", dest=CATALOG_SETTING, default=None, help=help_text)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{REAL_MODEL_MARKER}: use the lmstudio_server fixture with the bundled real models "
        "(SmolLM2-135M-Instruct, all-MiniLM-L6-v2) instead of the scripted ones",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # The marker becomes an indirect parameter of the session-scoped fixture, so that tests
    # asking for the real models share one real server, and the others one scripted server.
    if "lmstudio_server" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker(REAL_MODEL_MARKER) is None:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "lmstudio_server" in names:
            return  # the test chose its server kind itself
    metafunc.parametrize("lmstudio_server", ["real"], indirect=True, ids=["real-model"])


@pytest.fixture(scope="session")
def lmstudio_server_options(pytestconfig: pytest.Config) -> ServerOptions:
    """Options of the scripted server (override to change models, faults or auth)."""
    catalog = pytestconfig.getoption(CATALOG_SETTING) or pytestconfig.getini(CATALOG_SETTING)
    if catalog:
        path = pytestconfig.rootpath / str(catalog)
        return ServerOptions(host="127.0.0.1", port=0, models=(), catalog=path)
    return ServerOptions(host="127.0.0.1", port=0, models=scripted_models())


@pytest.fixture(scope="session")
def lmstudio_server(
    request: pytest.FixtureRequest, lmstudio_server_options: ServerOptions
) -> Iterator[BackgroundServer]:
    """A local LM Studio-compatible server in a background thread (see the module doc)."""
    kind = getattr(request, "param", "scripted")
    if kind not in _KINDS:
        raise ValueError(f"lmstudio_server takes one of {_KINDS}, not {kind!r}")
    options = lmstudio_server_options
    if kind == "real":
        models = bundled_models()
        if not models:
            pytest.skip(f"the bundled real models are not installed: {REAL_MODELS_INSTALL_HINT}")
        options = attrs.evolve(options, models=models)
    with BackgroundServer(options) as server:
        yield server


@pytest.fixture
def lmstudio_server_url(lmstudio_server: BackgroundServer) -> str:
    """The running server's base URL, ``ws://127.0.0.1:<port>``."""
    return lmstudio_server.url


@pytest.fixture
def lmstudio_no_open_channels(lmstudio_server: BackgroundServer) -> Iterator[BackgroundServer]:
    """The server; after the test, fail if the test left channels open on it.

    Channels already open when the test started (left by an earlier test) do not count.
    """
    baseline = lmstudio_server.stats.snapshot().open_by_endpoint
    yield lmstudio_server
    assert_no_open_channels(lmstudio_server, baseline=baseline)
