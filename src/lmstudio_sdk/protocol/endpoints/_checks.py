"""Checks of client-given names and limits in ``repository`` payloads (raise
:class:`~lmstudio_sdk.errors.LocalProtocolError` before anything is sent)."""

from __future__ import annotations

import re
from typing import Any

import attrs

from ...errors import LocalProtocolError
from ..naming import to_camel

__all__ = [
    "_check_kebab_case",
    "_check_kebab_case_with_dots",
    "_check_limit",
    "_check_token",
]

_KEBAB_CASE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_KEBAB_CASE_WITH_DOTS = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*")


def _check_kebab_case(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and not _KEBAB_CASE.fullmatch(value):
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be kebab-case (lowercase letters, digits and "
            f"single dashes), got {value!r}"
        )


def _check_kebab_case_with_dots(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, str) and not _KEBAB_CASE_WITH_DOTS.fullmatch(value):
        raise LocalProtocolError(
            f"{to_camel(attribute.name)} must be lowercase letters and digits separated by "
            f"single dashes or dots, got {value!r}"
        )


def _check_limit(maximum: int | None) -> Any:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, int) and (value < 1 or (maximum is not None and value > maximum)):
            bound = f"1 to {maximum}" if maximum is not None else "at least 1"
            raise LocalProtocolError(f"{to_camel(attribute.name)} must be {bound}, got {value}")

    return check


def _check_token(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value == "":
        raise LocalProtocolError(f"{to_camel(attribute.name)} must not be empty")
