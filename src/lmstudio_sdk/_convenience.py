"""The module-level convenience API, on one process-wide default :class:`~lmstudio_sdk.Client`.

::

    import lmstudio_sdk as lms

    model = lms.llm("smollm2-135m-instruct")
    print(model.respond("Hello!"))

The default client is created at the first use, by whichever thread gets there first
(creation is locked), from what :func:`configure_default_client` set (else the same
defaults as ``Client()``: ``LMSTUDIO_HOST``, ``LM_API_TOKEN``...). It is closed when the
interpreter exits; ``atexit`` hooks registered after ``lmstudio_sdk`` was imported may still
use it (they run first). Like every client, it reconnects on the next call after the
server went away.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._sentinel import DEFAULT, DefaultType
from .sync import LLM, Client, EmbeddingModel
from .sync.handles import ModelHandle

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._async._keywords import LoadKeywords
    from .chat import FileHandle
    from .results import ModelInfo

__all__ = [
    "configure_default_client",
    "embedding_model",
    "get_default_client",
    "list_downloaded_models",
    "list_loaded_models",
    "llm",
    "prepare_image",
]

_lock = threading.Lock()
_default: Client | None = None
_settings: dict[str, Any] = {}
_interpreter_exiting = False


def configure_default_client(
    host: str | None = None,
    *,
    api_token: str | None = None,
    timeout: float | DefaultType | None = DEFAULT,
) -> None:
    """Set where the default client connects, before it is created.

    ``host`` and ``api_token`` are those of :class:`~lmstudio_sdk.Client` (the token is
    kept, checked now, and never shown); ``timeout`` replaces the default 60 s call limit
    when given, and ``None`` means no limit, as for ``Client``.

    :raises RuntimeError: the default client already exists (configure it first, at
        start-up).
    :raises ValueError: a malformed host or token.
    """
    settings: dict[str, Any] = {"host": host, "api_token": api_token}
    if timeout is not DEFAULT:
        settings["timeout"] = timeout
    Client(**settings).close()  # validates host and token now (no thread is started)
    with _lock:
        if _default is not None:
            raise RuntimeError(
                "the default client already exists; call configure_default_client() "
                "before the first lmstudio_sdk.llm() / get_default_client()"
            )
        _settings.clear()
        _settings.update(settings)


def get_default_client() -> Client:
    """The process-wide default client, created at the first call (thread-safe)."""
    global _default
    client = _default
    if client is not None and not client.closed:
        return client
    with _lock:
        if _interpreter_exiting:
            raise RuntimeError(
                "the interpreter is exiting and the default lmstudio_sdk client was closed"
            )
        if _default is None or _default.closed:
            _default = Client(**_settings)
        return _default


def _close_default_client() -> None:
    """At interpreter exit: close the default client, and refuse to make a new one."""
    global _default, _interpreter_exiting
    with _lock:
        _interpreter_exiting = True
        client, _default = _default, None
    if client is not None:
        client.close()


# Registered at import: hooks the application registers later run before this one.
atexit.register(_close_default_client)


def llm(
    key: str | None = None,
    *,
    on_progress: Callable[[float], object] | None = None,
    **keywords: Unpack[LoadKeywords],
) -> LLM:
    """A handle to LLM ``key`` on the default client, loading it if needed.

    Without a key: any LLM that is already loaded. Same as
    ``get_default_client().llm.model(...)``, which takes the same arguments.
    """
    return get_default_client().llm.model(key, on_progress=on_progress, **keywords)


def embedding_model(
    key: str | None = None,
    *,
    on_progress: Callable[[float], object] | None = None,
    **keywords: Unpack[LoadKeywords],
) -> EmbeddingModel:
    """A handle to embedding model ``key`` on the default client, loading it if needed
    (``get_default_client().embedding.model(...)``)."""
    return get_default_client().embedding.model(key, on_progress=on_progress, **keywords)


def list_downloaded_models(domain: str | None = None) -> list[ModelInfo]:
    """Models on disk (``domain="llm"`` or ``"embedding"`` keeps only that kind)."""
    return get_default_client().system.list_downloaded_models(domain)


def list_loaded_models(domain: str | None = None) -> list[ModelHandle]:
    """Loaded model instances, LLMs first (``domain`` keeps only that kind)."""
    if domain not in (None, "llm", "embedding"):
        raise ValueError(f"domain must be None, 'llm' or 'embedding', got {domain!r}")
    client = get_default_client()
    loaded: list[ModelHandle] = []
    if domain in (None, "llm"):
        loaded.extend(client.llm.list_loaded())
    if domain in (None, "embedding"):
        loaded.extend(client.embedding.list_loaded())
    return loaded


def prepare_image(source: str | os.PathLike[str] | bytes, name: str | None = None) -> FileHandle:
    """Upload an image (a file path or its bytes) with the default client, to attach to a
    chat message: ``chat.add_user_message("What is this?", images=[handle])``."""
    return get_default_client().files.prepare_image(source, name)
