"""Run the server in a background thread with its own asyncio loop.

For synchronous code, Trio applications and tests: the thread owns the loop, the caller
only ever blocks on :class:`threading.Event`-style waits that are bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading

from typing_extensions import Self

from ._app import RunningServer, running_server
from ._options import ServedModel, ServerOptions
from ._stats import ServerStats
from .engines.scripted import Faults, Script

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """A server running in a background thread; use it as a context manager::

        with BackgroundServer(ServerOptions(port=0)) as server:
            print(server.url)          # ws://127.0.0.1:54321
            ...                         # any client, sync or async (Trio too)

    Entering waits until the server listens (or raises why it could not start, e.g. the
    port is taken). Leaving closes every connection, unloads the models and joins the
    thread, within ``shutdown_timeout`` seconds.
    """

    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        startup_timeout: float = 60.0,
        shutdown_timeout: float = 30.0,
    ) -> None:
        self.options = options if options is not None else ServerOptions()
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._server: RunningServer | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        where = self._server.url if self._server is not None else "not running"
        return f"<BackgroundServer {where}>"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start the thread and wait until the server listens."""
        if self._thread is not None:
            raise RuntimeError("this BackgroundServer was already started")
        self._thread = threading.Thread(target=self._run, name="lmstudio-sdk-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.startup_timeout):
            self._request_stop()
            raise TimeoutError(f"the server did not start within {self.startup_timeout:g}s")
        if self._error is not None:
            self._thread.join(self.shutdown_timeout)
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (bounded by ``shutdown_timeout``)."""
        thread = self._thread
        if thread is None:
            return
        self._request_stop()
        thread.join(self.shutdown_timeout)
        if thread.is_alive():
            raise TimeoutError(f"the server thread did not stop within {self.shutdown_timeout:g}s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _request_stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between, nothing is left to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # startup errors are re-raised in start()
            if self._error is None:
                self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with running_server(self.options) as server:
                self._server = server
                self._ready.set()
                await self._stop.wait()
        finally:
            self._server = None

    # ------------------------------------------------------------------ the running server

    def _running(self) -> RunningServer:
        if self._server is None:
            raise RuntimeError("the server is not running (use it as a context manager)")
        return self._server

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._running().host

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        return self._running().port

    @property
    def url(self) -> str:
        """``ws://host:port``, the base URL clients connect to."""
        return self._running().url

    @property
    def http_url(self) -> str:
        """``http://host:port``, for the greeting probe."""
        return self._running().http_url

    @property
    def models(self) -> tuple[ServedModel, ...]:
        """The models the server offers (downloaded, not necessarily loaded)."""
        return self._running().models

    @property
    def model_keys(self) -> list[str]:
        """The keys of :attr:`models`, as clients load them."""
        return self._running().model_keys

    @property
    def stats(self) -> ServerStats:
        """Open-channel statistics, live (see :class:`~lmstudio_sdk.server.ServerStats`).

        Thread-safe: read ``open_channels``/``peak_open_channels``, take a
        :meth:`~ServerStats.snapshot` or :meth:`~ServerStats.reset` from any thread.
        """
        return self._running().stats

    def _call(self, function: object, *args: object, **kwargs: object) -> object:
        loop = self._loop
        if loop is None or self._server is None:
            raise RuntimeError("the server is not running")

        async def run() -> object:
            result = function(*args, **kwargs)  # type: ignore[operator]
            if asyncio.iscoroutine(result):
                result = await result
            return result

        # An empty context: the task would otherwise copy the caller's context variables,
        # and a caller inside Trio (a Trio test's fixture) carries sniffio's "trio", which
        # would make anyio inside the server's asyncio loop pick the Trio backend.
        future = contextvars.Context().run(asyncio.run_coroutine_threadsafe, run(), loop)
        return future.result(self.shutdown_timeout)

    def set_script(
        self, key: str, *, script: Script | None = None, faults: Faults | None = None
    ) -> None:
        """Change what a scripted model says or how it fails (thread-safe)."""
        self._call(self._running().set_script, key, script=script, faults=faults)

    def loaded_identifiers(self) -> list[str]:
        """Identifiers of the instances loaded right now (thread-safe)."""
        result = self._call(self._running().loaded_identifiers)
        assert isinstance(result, list)
        return result

    def wait_connections_closed(self) -> None:
        """Block until no websocket is open (raises ``TimeoutError`` after ``shutdown_timeout``)."""
        self._call(self._running().connections_closed)

    def refusals(self) -> dict[str, int]:
        """Sockets refused or closed by the server's limits, by reason (thread-safe)."""
        result = self._call(lambda: self._running().refusals)
        assert isinstance(result, dict)
        return result

    def unload_all(self) -> None:
        """Unload every loaded instance (thread-safe)."""
        self._call(self._running().unload_all)
