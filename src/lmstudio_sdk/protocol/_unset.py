"""The ``UNSET`` sentinel: "leave this key out of the JSON object".

On this wire an absent key and an explicit ``null`` differ: optional fields are left out,
while nullable fields (``deviceIdentifier``, ``ttlMs``, ...) may be sent as ``null``.
``None`` therefore means ``null`` and ``UNSET`` means "absent".
"""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = ["UNSET", "UnsetType"]


class UnsetType(enum.Enum):
    """Type of :data:`UNSET`; use it in annotations as ``int | UnsetType``."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> Literal[False]:
        return False


UNSET: Final = UnsetType.UNSET
