"""Test kit for applications built on lmstudio-sdk: a pytest plugin with a local server.

The plugin (:mod:`lmstudio_sdk.testing.plugin`) is registered through the ``pytest11``
entry point, so installing lmstudio-sdk makes its fixtures available:

* ``lmstudio_server`` (session scope): a local LM Studio-compatible server running in a
  background thread, with the scripted models (``scripted-llm``, ``scripted-embedding``)
  by default; mark a test ``@pytest.mark.lmstudio_real_model`` (or parametrize the fixture
  indirectly with ``"real"``) to get the bundled real models instead;
* ``lmstudio_server_url``: its ``ws://host:port`` base URL;
* ``lmstudio_server_options`` (session scope): override it in your ``conftest.py`` to
  change the models, faults or authentication of the scripted server.

Scripted models are deterministic and can inject faults (delays, errors, dropped sockets,
malformed frames, silence): see :func:`lmstudio_sdk.server.scripted_model`.
"""

from __future__ import annotations

from ..server import (
    BackgroundServer,
    Faults,
    Script,
    ScriptedToolCall,
    ServerOptions,
    scripted_model,
)

__all__ = [
    "BackgroundServer",
    "Faults",
    "Script",
    "ScriptedToolCall",
    "ServerOptions",
    "scripted_model",
]
