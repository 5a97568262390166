"""The idle TTL of a model that ``load()`` or ``model()`` loads: default and wire form."""

from __future__ import annotations

import math
from typing import Any, Final

from .._sentinel import DefaultType
from ..protocol._unset import UNSET

__all__ = ["DEFAULT_TTL", "ttl_ms"]

DEFAULT_TTL: Final = 3600.0
"""Seconds of idle time after which a model loaded by ``load()``/``model()`` is unloaded,
unless ``ttl=`` says otherwise (``ttl=None``: never); the official SDKs' default too, so a
forgotten load does not stay in memory forever."""


def ttl_ms(ttl: float | DefaultType | None) -> int | Any:
    """Seconds (``DEFAULT``: :data:`DEFAULT_TTL`) -> whole milliseconds (at least 1);
    ``None`` leaves the key out (no TTL)."""
    if isinstance(ttl, DefaultType):
        ttl = DEFAULT_TTL
    if ttl is None:
        return UNSET
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"ttl must be a number of seconds > 0, got {ttl!r}")
    if math.isinf(ttl):
        raise ValueError("ttl must be finite; leave it out (None) for no time limit")
    return max(1, math.ceil(ttl * 1000))
