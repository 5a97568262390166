"""The field types of a wire class, as the converter sees them."""

from __future__ import annotations

import typing
from typing import Any


def wire_type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)`` with the type arguments of its generic bases filled in.

    The model-management packets (``protocol/endpoints/_models.py``) are generic over the
    namespace's model-info types; each namespace decodes them as a subclass of
    ``Packet[InfoClass]``, whose ``info`` field is then that class.
    """
    arguments: dict[Any, Any] = {}
    for base in getattr(cls, "__orig_bases__", ()):
        origin = typing.get_origin(base)
        parameters = getattr(origin, "__parameters__", ())
        arguments.update(zip(parameters, typing.get_args(base), strict=True))
    return {name: arguments.get(hint, hint) for name, hint in typing.get_type_hints(cls).items()}
