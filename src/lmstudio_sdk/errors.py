"""The one exception tree of lmstudio-sdk.

Everything the SDK raises on purpose derives from :class:`LMStudioError`. Cancellation is
never turned into one of these: the async backend's own cancellation propagates, as
structured concurrency requires. This module imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "LMStudioAuthError",
    "LMStudioChannelOverflowError",
    "LMStudioConnectionError",
    "LMStudioError",
    "LMStudioModelNotFoundError",
    "LMStudioPresetNotFoundError",
    "LMStudioProtocolError",
    "LMStudioServerError",
    "LMStudioTimeoutError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "StructuredOutputError",
]

MODEL_NOT_FOUND_CODES = frozenset({"generic.noModelMatchingQuery", "generic.pathNotFound"})
PRESET_NOT_FOUND_CODE = "generic.presetNotFound"


class LMStudioError(Exception):
    """Base class of every error the SDK raises on purpose."""


class LMStudioConnectionError(LMStudioError):
    """Could not connect, or the socket dropped while work was in flight.

    ``attempts`` lists ``(place, reason)`` for every host or port that was tried.
    """

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]] = ()) -> None:
        self.attempts = tuple(attempts)
        if self.attempts:
            tried = "; ".join(f"{place}: {why}" for place, why in self.attempts)
            message = f"{message} (tried {tried})"
        super().__init__(message)


class LMStudioAuthError(LMStudioConnectionError):
    """The server rejected the client's credentials."""


class LMStudioTimeoutError(LMStudioError, TimeoutError):
    """An RPC got no answer, or a channel went silent, for longer than its timeout.

    It is also a builtin :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    """


class LMStudioProtocolError(LMStudioError):
    """One side broke the wire protocol."""


class RemoteProtocolError(LMStudioProtocolError):
    """The server sent something that does not follow the protocol."""


class LocalProtocolError(LMStudioProtocolError):
    """Our side was about to send something that does not follow the protocol."""


class LMStudioChannelOverflowError(LMStudioError):
    """A channel's consumer fell so far behind that an event could not be buffered.

    The channel was cancelled on the server; no data was dropped silently.
    """


class LMStudioServerError(LMStudioError):
    """The server answered with an error (``rpcError`` or ``channelError``)."""

    def __init__(
        self,
        title: str,
        *,
        cause: str | None = None,
        suggestion: str | None = None,
        code: str | None = None,
        display_data: Mapping[str, Any] | None = None,
        error_data: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.title = title
        self.cause = cause
        self.suggestion = suggestion
        self.code = code
        self.display_data = dict(display_data or {})
        self.error_data = dict(error_data or {})
        self.endpoint = endpoint
        parts = [title]
        if cause:
            parts.append(cause)
        if suggestion:
            parts.append(f"Suggestion: {suggestion}")
        message = " ".join(parts)
        if endpoint:
            message = f"{endpoint}: {message}"
        super().__init__(message)


class LMStudioModelNotFoundError(LMStudioServerError):
    """No model matched the query or path (``generic.noModelMatchingQuery``/``pathNotFound``)."""


class LMStudioPresetNotFoundError(LMStudioServerError):
    """No preset matched the one asked for (``generic.presetNotFound``)."""


class StructuredOutputError(LMStudioError):
    """The model's reply did not validate into the requested structure.

    ``raw_text`` keeps what the model produced.
    """

    def __init__(self, message: str, raw_text: str) -> None:
        self.raw_text = raw_text
        super().__init__(message)
