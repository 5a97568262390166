"""Short tracebacks: errors the SDK raises on purpose lose the SDK's internal frames.

A user who passes a wrong model key should see their own line and the one good message,
not 25 lines of channel, portal and ``concurrent.futures`` internals. So every public
async method and stream method is wrapped (:func:`sdk_boundary`, a class decorator), and
the blocking facade's portal does the same when it hands an error to the calling thread:
an :class:`~lmstudio_sdk.LMStudioError` is re-raised there with its traceback cut at the
SDK boundary. Other exceptions (a bug of ours, a ``ValueError`` from argument checks, an
exception raised by a user callback or tool, cancellation) keep their full traceback.

Set ``LMSTUDIO_SDK_DEBUG_TRACEBACKS=1`` to keep the internal frames (read at each error,
so it can be changed while the program runs); ``lmstudio-python`` has the same switch,
``LMS_KEEP_INTERNAL_STACK``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from typing import Any, Final, TypeVar

from .errors import LMStudioError

__all__ = ["DEBUG_TRACEBACKS_VARIABLE", "cuts_own_traceback", "for_caller", "sdk_boundary"]

DEBUG_TRACEBACKS_VARIABLE: Final = "LMSTUDIO_SDK_DEBUG_TRACEBACKS"
"""Set it (to anything but ``""``/``0``) to keep the SDK's frames in tracebacks."""

C = TypeVar("C", bound=type)

# The async-protocol methods that are public although their names start with "_".
_DUNDERS = frozenset({"__aenter__", "__aexit__", "__anext__"})


def _keep_internals() -> bool:
    return os.environ.get(DEBUG_TRACEBACKS_VARIABLE, "") not in ("", "0")


def for_caller(exc: BaseException) -> BaseException:
    """``exc``, with its traceback cut if it is an ``LMStudioError`` (see the module doc).

    Raise the result: ``raise for_caller(exc)`` starts the traceback at the raising frame.
    """
    if isinstance(exc, LMStudioError) and not _keep_internals():
        exc.__traceback__ = None
    return exc


F = TypeVar("F", bound=Callable[..., Any])


def cuts_own_traceback(method: F) -> F:
    """Mark a method that raises ``for_caller(exc)`` itself: :func:`sdk_boundary` leaves it
    unwrapped (for hot paths, e.g. a stream's ``__anext__``: the wrapper is one more
    coroutine per event, while the cut is only needed when an error is raised)."""
    method.__sdk_boundary__ = True  # type: ignore[attr-defined]
    return method


def _wrap(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def at_the_boundary(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except LMStudioError as exc:
            # The same object: its __cause__ and __context__ stay as they were.
            raise for_caller(exc)  # noqa: B904

    return at_the_boundary


def sdk_boundary(cls: C) -> C:
    """Wrap the public coroutine methods of ``cls`` (and ``__aenter__``/``__aexit__``/
    ``__anext__``) so that an ``LMStudioError`` leaving them has a short traceback
    (except those marked :func:`cuts_own_traceback`)."""
    for name, attribute in list(vars(cls).items()):
        if (
            (name.startswith("_") and name not in _DUNDERS)
            or not inspect.iscoroutinefunction(attribute)
            or getattr(attribute, "__sdk_boundary__", False)
        ):
            continue
        setattr(cls, name, _wrap(attribute))
    return cls
