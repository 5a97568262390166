"""Test kit for applications built on lmstudio-sdk: a pytest plugin with a local server.

The plugin (:mod:`lmstudio_sdk.testing.plugin`) is registered through the ``pytest11``
entry point, so installing lmstudio-sdk makes its fixtures available:

* ``lmstudio_server`` (session scope): a local LM Studio-compatible server running in a
  background thread, with the scripted models (``scripted-llm``, ``scripted-embedding``)
  by default; mark a test ``@pytest.mark.lmstudio_real_model`` (or parametrize the fixture
  indirectly with ``"real"``) to get the bundled real models instead;
* ``lmstudio_server_url``: its ``ws://host:port`` base URL;
* ``lmstudio_server_options`` (session scope): override it in your ``conftest.py`` to
  change the models, faults or authentication of the scripted server;
* ``lmstudio_no_open_channels``: fails the test if it left a channel open on the server
  (:func:`assert_no_open_channels` is the same check, to call yourself).

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
from ._channels import assert_no_open_channels

__all__ = [
    "BackgroundServer",
    "Faults",
    "Script",
    "ScriptedToolCall",
    "ServerOptions",
    "assert_no_open_channels",
    "scripted_model",
]
