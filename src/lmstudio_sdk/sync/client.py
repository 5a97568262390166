"""``Client``: the blocking twin of :class:`~lmstudio_sdk.AsyncClient`.

::

    import lmstudio_sdk

    with lmstudio_sdk.Client() as client:
        model = client.llm.model("smollm2-135m-instruct")
        print(model.respond("Hello!"))

It runs one :class:`~lmstudio_sdk.AsyncClient` in an event loop thread of its own (see
:mod:`._portal`): the thread starts at the first use (or at ``with``) and stops at
:meth:`Client.close` (the end of the ``with`` block). A client that is never closed is
closed when it is garbage collected, or at the latest when the interpreter exits. One client
may be shared by several threads.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING

from .._async._keepalive import DEFAULT_KEEPALIVE
from .._async.channel import DEFAULT_BUFFER_SIZE, DEFAULT_DRAIN_TIMEOUT
from .._async.client import AsyncClient
from .._async.connection import DEFAULT_TIMEOUT
from .._async.transport import DEFAULT_CONNECT_TIMEOUT
from . import namespaces
from ._portal import Held, Portal, _closed_error, check_not_in_event_loop

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Client"]

logger = logging.getLogger("lmstudio_sdk")


class _Runtime:
    """What a :class:`Client` owns in the background: its portal and the open AsyncClient.

    Kept apart from the client so that the ``weakref.finalize`` backstop can close it
    without keeping the client alive.
    """

    def __init__(self, async_client: AsyncClient) -> None:
        self.async_client = async_client
        self.lock = threading.Lock()
        self.portal: Portal | None = None
        self.held: Held[AsyncClient] | None = None
        self.closed = False

    def open(self) -> Portal:
        portal = self.portal
        if portal is not None and self.held is not None and self.held.state == "open":
            return portal
        with self.lock:
            if self.closed:
                raise _closed_error()
            if self.portal is None:
                check_not_in_event_loop()
                portal = Portal(name="lmstudio-sdk-client")
                held = Held(portal, lambda: self.async_client)
                try:
                    held.enter()
                except BaseException:
                    portal.close()
                    raise
                self.portal, self.held = portal, held
            assert self.portal is not None
            return self.portal

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            portal, held = self.portal, self.held
        if portal is None:
            return
        try:
            if held is not None and not portal.in_loop_thread:
                held.exit(None)  # leaves the AsyncClient: its sockets close
        except Exception as exc:  # closing must not fail; the loop is stopped below anyway
            logger.debug("lmstudio_sdk.Client: error while closing: %r", exc)
        finally:
            portal.close()


class Client:
    """A blocking client of one LM Studio server. Use it in ``with`` (or call :meth:`close`).

    Same parameters as :class:`~lmstudio_sdk.AsyncClient`:

    :param host: ``ws://host:port``, ``wss://...``, ``http://...``, ``https://...`` or
        ``host:port``. Default: ``LMSTUDIO_HOST``, else the local LM Studio found by probing
        its well-known ports.
    :param api_token: an LM Studio API token. Default: ``LM_API_TOKEN``, else
        ``LMSTUDIO_API_TOKEN``, else a guest identity.
    :param timeout: default limit in seconds for each call, and for the silence between two
        packets of a stream (``None``: no limit); each call may override it.
    :param connect_timeout: limit for opening a websocket and authenticating.
    :param channel_buffer_size: packets a stream buffers for a consumer that lags behind.
    :param drain_timeout: how long leaving a stream early waits for the server to confirm
        the cancellation.
    :param keepalive_interval, keepalive_timeout: probe a socket silent for
        ``keepalive_interval`` seconds; dead if the server stays silent ``keepalive_timeout``
        more (``keepalive_interval=None``: never probe).

    :raises ValueError: a malformed ``host`` or API token (the token is never repeated).
    :raises SyncInAsyncContextError: created inside a running event loop (use
        ``AsyncClient`` there).

    Ctrl-C while a call waits cancels that call on the server, then raises
    ``KeyboardInterrupt``.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        channel_buffer_size: int = DEFAULT_BUFFER_SIZE,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        keepalive_interval: float | None = DEFAULT_KEEPALIVE.interval,
        keepalive_timeout: float = DEFAULT_KEEPALIVE.timeout,
    ) -> None:
        check_not_in_event_loop()
        self._async = AsyncClient(
            host,
            api_token=api_token,
            timeout=timeout,
            connect_timeout=connect_timeout,
            channel_buffer_size=channel_buffer_size,
            drain_timeout=drain_timeout,
            keepalive_interval=keepalive_interval,
            keepalive_timeout=keepalive_timeout,
        )
        self._runtime = _Runtime(self._async)
        self._finalizer = weakref.finalize(self, _Runtime.close, self._runtime)
        self.system = namespaces.SystemNamespace(self, self._async.system)
        self.llm = namespaces.LLMNamespace(self, self._async.llm)
        self.embedding = namespaces.EmbeddingNamespace(self, self._async.embedding)
        self.files = namespaces.FilesNamespace(self, self._async.files)
        self.repository = namespaces.RepositoryNamespace(self, self._async.repository)
        self.diagnostics = namespaces.DiagnosticsNamespace(self, self._async.diagnostics)

    def __repr__(self) -> str:
        runtime = self._runtime
        state = "closed" if runtime.closed else ("open" if runtime.portal else "not started")
        where = self._async.base_url or "(discovering)"
        who = "guest" if self._async.is_guest else "with API token"
        return f"<Client {where} {who}, {state}>"

    @property
    def base_url(self) -> str | None:
        """The server's base websocket URL (``None`` until discovery found it)."""
        return self._async.base_url

    @property
    def is_guest(self) -> bool:
        """Whether the client has no API token (it uses a random guest identity)."""
        return self._async.is_guest

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._runtime.closed

    def _portal(self) -> Portal:
        """The running portal; starts it (and enters the AsyncClient) on first use."""
        return self._runtime.open()

    def open(self) -> Self:
        """Start the client's event loop thread now (otherwise: at the first call)."""
        self._portal()
        return self

    def close(self) -> None:
        """Close every socket and stop the event loop thread. Safe to call more than once.

        Calls still running in other threads fail with ``LMStudioConnectionError``.
        """
        self._finalizer()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
