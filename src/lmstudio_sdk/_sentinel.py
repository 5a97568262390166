"""The ``DEFAULT`` sentinel: "use the client's default" for a keyword argument.

``timeout=DEFAULT`` (what every method's ``timeout`` starts as) means the client's own
timeout; ``None`` means "no timeout". Both are public (``lmstudio_sdk.DEFAULT`` and
``lmstudio_sdk.DefaultType``) so signatures and wrappers can name them.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["DEFAULT", "DefaultType"]


class DefaultType(enum.Enum):
    """The type of :data:`DEFAULT` (an enum, so type checkers narrow on ``is DEFAULT``)."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = DefaultType.DEFAULT
"""Sentinel for "use the client's default" (``timeout=``, ``idle_timeout=``)."""
