"""Structured output: turn a user's ``response_format`` into a wire setting and a parser.

Accepted forms (see :func:`response_format`):

* a JSON-schema ``dict`` (the reply parses to plain JSON values, validated against the
  schema when ``jsonschema`` is installed);
* a pydantic v2 model class (``model_json_schema()`` / ``model_validate_json()``; pydantic
  is optional and never imported here);
* an attrs class or a dataclass: the JSON schema is built from its type hints and the reply
  is structured with a strict cattrs converter of this module (not the wire converter: user
  classes follow their own names, and nothing is coerced);
* a ready setting ``{"type": "json", "jsonSchema": {...}}``, ``{"type": "gbnf",
  "gbnfGrammar": "..."}`` or ``{"type": "none"}``.

The server constrains generation; the reply is ordinary text fragments, parsed on the
client once the prediction has finished. The strict converter for user classes lives in
``_strict_converter``, the JSON schema of a class in ``_class_schema``; both are
re-exported here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import attrs

from ._class_schema import json_schema_for_class

# Re-exported (as X as X) for _async/tools.py, which structures tool arguments with them.
from ._strict_converter import _describe as _describe
from ._strict_converter import _user_converter as _user_converter
from .errors import StructuredOutputError

__all__ = ["Parser", "ResponseFormat", "json_schema_for_class", "response_format"]

Parser = Callable[[str], Any]
"""Turns the model's reply text into the requested value; raises ``StructuredOutputError``."""

_SETTING_TYPES = ("none", "json", "gbnf")
_SETTING_KEYS = {
    "type": "type",
    "jsonSchema": "jsonSchema",
    "json_schema": "jsonSchema",
    "gbnfGrammar": "gbnfGrammar",
    "gbnf_grammar": "gbnfGrammar",
}


class ResponseFormat(NamedTuple):
    """A resolved ``response_format``.

    ``setting`` is the JSON value of the ``llm.prediction.structured`` KV key; ``parser``
    turns the reply text into the requested value, or is ``None`` when there is nothing to
    parse (``{"type": "none"}`` and GBNF grammars, whose output need not be JSON).
    """

    setting: dict[str, Any]
    parser: Parser | None


def response_format(spec: Any) -> ResponseFormat:
    """Resolve a ``response_format``/``structured`` option (see the module docstring).

    Raises ``ValueError`` saying what is accepted when ``spec`` is none of the forms.
    """
    if isinstance(spec, Mapping):
        if spec.get("type") in _SETTING_TYPES:
            return _from_setting(spec)
        schema = _checked_schema(spec, "the JSON schema")
        return ResponseFormat({"type": "json", "jsonSchema": schema}, _json_parser(schema))
    if isinstance(spec, type):
        if _is_pydantic_model(spec):
            model: Any = spec
            schema = _checked_schema(
                model.model_json_schema(), f"{spec.__name__}.model_json_schema()"
            )
            return ResponseFormat({"type": "json", "jsonSchema": schema}, _pydantic_parser(spec))
        if attrs.has(spec) or dataclasses.is_dataclass(spec):
            schema = json_schema_for_class(spec)
            return ResponseFormat({"type": "json", "jsonSchema": schema}, _class_parser(spec))
    elif attrs.has(type(spec)) or dataclasses.is_dataclass(spec) or _is_pydantic_model(type(spec)):
        raise ValueError(
            f"response_format takes a class, not an instance: pass {type(spec).__name__}, "
            f"not {spec!r}"
        )
    raise ValueError(
        "response_format must be a JSON schema dict, a pydantic model class, an attrs class, "
        "a dataclass, or a setting {'type': 'json'|'gbnf'|'none', ...}; "
        f"got {spec!r} ({type(spec).__name__})"
    )


def _is_pydantic_model(cls: type) -> bool:
    return callable(getattr(cls, "model_json_schema", None)) and callable(
        getattr(cls, "model_validate_json", None)
    )


def _from_setting(spec: Mapping[str, Any]) -> ResponseFormat:
    setting: dict[str, Any] = {}
    for key, value in spec.items():
        wire_key = _SETTING_KEYS.get(key)
        if wire_key is None:
            raise ValueError(
                f"unknown key {key!r} in the structured output setting; "
                "allowed: 'type', 'jsonSchema', 'gbnfGrammar'"
            )
        setting[wire_key] = value
    kind = setting["type"]
    if kind == "json":
        schema = setting.get("jsonSchema")
        if schema is None:
            setting.pop("jsonSchema", None)
            return ResponseFormat(setting, _json_parser(None))
        if not isinstance(schema, Mapping):
            raise ValueError(f"jsonSchema must be a JSON schema dict, got {type(schema).__name__}")
        setting["jsonSchema"] = _checked_schema(schema, "jsonSchema")
        return ResponseFormat(setting, _json_parser(setting["jsonSchema"]))
    if kind == "gbnf":
        grammar = setting.get("gbnfGrammar")
        if not isinstance(grammar, str) or not grammar.strip():
            raise ValueError("a 'gbnf' setting needs 'gbnfGrammar': the grammar text")
        return ResponseFormat(setting, None)
    return ResponseFormat({"type": "none"}, None)


def _checked_schema(schema: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A JSON-serialisable copy of ``schema``; checked against the metaschema if we can."""
    try:
        # A JSON round trip both checks and deep-copies (the caller may mutate their dict).
        copy: dict[str, Any] = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None
    jsonschema = _jsonschema()
    if jsonschema is None:  # pragma: no cover - jsonschema is optional
        return copy
    try:
        jsonschema.validators.validator_for(copy).check_schema(copy)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise ValueError(f"{what} is not a valid JSON schema at {where}: {exc.message}") from None
    return copy


def _jsonschema() -> Any:
    """The ``jsonschema`` module, or ``None``: it is optional, and imported only when used."""
    try:
        return importlib.import_module("jsonschema")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


# --- parsers -----------------------------------------------------------------------------


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"the model's reply is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            text,
        ) from None


def _json_parser(schema: dict[str, Any] | None) -> Parser:
    validator: Any = None

    def parse_json(text: str) -> Any:
        nonlocal validator
        value = _loads(text)
        if schema is None:
            return value
        if validator is None:
            jsonschema = _jsonschema()
            if jsonschema is None:  # pragma: no cover - jsonschema is optional
                return value
            validator = jsonschema.validators.validator_for(schema)(schema)
        error = _best_error(validator, value)
        if error is not None:
            raise StructuredOutputError(
                f"the model's reply does not match the JSON schema: {error}", text
            )
        return value

    return parse_json


def _best_error(validator: Any, value: Any) -> str | None:
    error = _jsonschema().exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def _pydantic_parser(model: Any) -> Parser:
    def parse_pydantic(text: str) -> Any:
        try:
            return model.model_validate_json(text)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise StructuredOutputError(
                f"the model's reply does not validate as {model.__name__}: "
                f"{_pydantic_problems(exc)}",
                text,
            ) from None

    return parse_pydantic


def _pydantic_problems(exc: ValueError) -> str:
    """One line per problem, ``loc: msg``, from a pydantic ``ValidationError``."""
    errors: Any = getattr(exc, "errors", None)
    try:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in errors()
        ]
    except Exception:  # not a pydantic ValidationError after all
        return str(exc)
    return "; ".join(problems) or str(exc)


def _class_parser(cls: type) -> Parser:
    def parse_class(text: str) -> Any:
        value = _loads(text)
        try:
            return _user_converter.structure(value, cls)
        except Exception as exc:
            raise StructuredOutputError(
                f"the model's reply does not fit {cls.__name__}: {_describe(exc)}", text
            ) from None

    return parse_class
