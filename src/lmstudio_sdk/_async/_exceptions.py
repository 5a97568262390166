"""Keeping exception groups out of the public API.

Task groups wrap what their tasks raise in ``BaseExceptionGroup``. A user of the SDK should
see the error itself (``LMStudioConnectionError``, their own ``ValueError``, the backend's
cancellation), never a one-member group, so every public context manager that hides a task
group (the client, channel scopes, streams) unwraps with :func:`exceptions_unwrapped`.

Which member wins when a group holds several:

1. ``KeyboardInterrupt``/``SystemExit`` and other non-``Exception`` errors that are not
   cancellation: the program is being stopped, that beats everything;
2. the first real ``Exception`` (the others are attached to it as notes);
3. otherwise (only cancellations) the first cancellation, so that the cancel scope that
   caused it sees it.

Dropping a cancellation in favour of a real error is safe on both backends: a cancel scope
that is still cancelled delivers its cancellation again at the next checkpoint.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import NoReturn

import anyio

if sys.version_info >= (3, 11):
    _BaseExceptionGroup = BaseExceptionGroup  # noqa: F821 (a builtin from 3.11 on)
else:  # anyio and trio depend on the backport on Python 3.10
    from exceptiongroup import (  # type: ignore[import-not-found,unused-ignore]
        BaseExceptionGroup as _BaseExceptionGroup,
    )

__all__ = ["exceptions_unwrapped", "leaves", "pick_exception", "reraise"]


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in ``exc``, with nested groups flattened (``[exc]`` if not a group)."""
    if isinstance(exc, _BaseExceptionGroup):
        found: list[BaseException] = []
        for member in exc.exceptions:
            found.extend(leaves(member))
        return found
    return [exc]


def pick_exception(exc: BaseException) -> BaseException:
    """The one exception to raise for ``exc`` (itself unless it is a group; see module doc)."""
    members = leaves(exc)
    if not members:  # cannot happen for a real group; keep the group rather than lose it
        return exc
    cancelled = _cancelled_classes()
    real = [m for m in members if not isinstance(m, cancelled)]
    if not real:
        return members[0]
    stopping = [m for m in real if not isinstance(m, Exception)]
    chosen = stopping[0] if stopping else real[0]
    for other in real:
        if other is not chosen:
            _add_note(chosen, f"also raised at the same time: {type(other).__name__}: {other}")
    return chosen


def _add_note(exc: BaseException, note: str) -> None:
    if sys.version_info >= (3, 11):
        exc.add_note(note)
        return
    # Python 3.10: the exceptiongroup backport prints ``__notes__`` the same way.
    with suppress(AttributeError):  # an exception class with __slots__ and no __dict__
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined,unused-ignore]


def _cancelled_classes() -> tuple[type[BaseException], ...]:
    try:
        return (anyio.get_cancelled_exc_class(),)
    except Exception:  # no event loop running: any backend's cancellation counts
        classes: list[type[BaseException]] = [asyncio.CancelledError]
        trio = sys.modules.get("trio")
        if trio is not None:
            classes.append(trio.Cancelled)
        return tuple(classes)


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` without chaining it to the exception being handled (the group)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


@contextmanager
def exceptions_unwrapped() -> Iterator[None]:
    """Re-raise an exception group escaping the block as its chosen member (module doc)."""
    try:
        yield
    except _BaseExceptionGroup as group:
        reraise(pick_exception(group))
