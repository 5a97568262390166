"""Tools the model may call: :class:`Tool`, built from functions, ``Tool`` objects or dicts.

This module describes tools (names, JSON schemas of the parameters, binding the model's
arguments to Python values); :mod:`.act` runs them in the ``act()`` loop.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._structured import _describe, _user_converter, json_schema_for_class
from ..protocol._unset import UNSET
from ..protocol.endpoints import shared

__all__ = [
    "ActResult",
    "InvalidToolCallError",
    "Tool",
    "ToolLike",
    "check_tool_timeout",
    "to_tools",
    "tool_definitions",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class InvalidToolCallError(ValueError):
    """The model called a tool that does not exist, or with arguments that do not fit.

    ``handle_invalid_tool_request`` receives it (or the exception a tool raised).
    """


@attrs.frozen(kw_only=True)
class ActResult:
    """What :meth:`AsyncLLM.act <lmstudio_sdk.AsyncLLM.act>` returns: the number of
    prediction ``rounds`` and the ``total_time_seconds`` they took."""

    rounds: int
    total_time_seconds: float


# ------------------------------------------------------------------------------ tools


def _check_name(_: Any, __: Any, name: Any) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"a tool name must be 1 to 64 letters, digits or '_.:-' characters, got {name!r}"
        )


def _check_parameters(_: Any, __: Any, parameters: Any) -> None:
    if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
        raise ValueError(
            "a tool's parameters must be a JSON schema of type 'object', e.g. "
            "{'type': 'object', 'properties': {'x': {'type': 'integer'}}}; "
            f"got {parameters!r}"
        )


def _check_implementation(_: Any, __: Any, implementation: Any) -> None:
    if not callable(implementation):
        raise TypeError(f"a tool's implementation must be callable, got {implementation!r}")


def check_tool_timeout(timeout: Any) -> None:
    """``ValueError`` unless ``timeout`` is ``None`` or a finite number of seconds > 0."""
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < float("inf")
    ):
        raise ValueError(f"a tool timeout must be a number of seconds > 0 or None, got {timeout!r}")


def _check_timeout(_: Any, __: Any, timeout: Any) -> None:
    check_tool_timeout(timeout)


def _checked_schema(parameters: Mapping[str, Any]) -> dict[str, Any]:
    from .._structured import _checked_schema as check

    return check(parameters, "the tool's parameters")


_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@attrs.frozen(kw_only=True)
class Tool:
    """A tool the model may call: ``implementation(**arguments)``.

    ``parameters`` is the JSON schema (``{"type": "object", ...}``) of the arguments; the
    model's arguments are checked against it before the call (with ``jsonschema``, when it
    is installed). :meth:`from_function` builds a tool from a Python function's signature,
    type hints and docstring, and then the arguments are also converted to the annotated
    types (nested dataclasses and attrs classes included).

    ``timeout`` (seconds) bounds one call of the tool (``act(tool_timeout=...)`` gives the
    default): a call that takes longer is cancelled (an async tool) or abandoned (a sync
    tool's worker thread is left to finish on its own, never waited for), and the model
    gets an error text, as for a tool that raised.
    """

    name: str = attrs.field(validator=_check_name)
    description: str = ""
    parameters: dict[str, Any] = attrs.field(
        factory=lambda: copy.deepcopy(_EMPTY_PARAMETERS),
        converter=_checked_schema,
        validator=_check_parameters,
    )
    implementation: Callable[..., Any] = attrs.field(validator=_check_implementation)
    timeout: float | None = attrs.field(default=None, validator=_check_timeout)
    _binder: Callable[[Mapping[str, Any]], dict[str, Any]] | None = attrs.field(
        default=None, init=False, repr=False, eq=False
    )

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """A tool from a function (sync or async).

        The parameters' JSON schema comes from the type hints (``str``, ``int``,
        ``float``, ``bool``, lists, dicts, ``Literal``, enums, optionals, dataclasses and
        attrs classes; no hint means any JSON value); parameters with a default are
        optional. The description is the docstring's text before its parameter section;
        parameter descriptions come from Google-style ``Args:`` or ``:param x:`` lines.

        :raises ValueError: a parameter that cannot be described in JSON (``*args``,
            positional-only, an unsupported type).
        """
        if not callable(function):
            raise TypeError(f"a tool must be a function, got {function!r}")
        tool_name = name if name is not None else getattr(function, "__name__", None)
        doc_description, param_docs = _parse_docstring(inspect.getdoc(function) or "")
        schema, binder = _function_parameters(function, str(tool_name), param_docs)
        tool = cls(
            name=tool_name,  # type: ignore[arg-type]  # checked by the validator
            description=description if description is not None else doc_description,
            parameters=schema,
            implementation=function,
            timeout=timeout,
        )
        object.__setattr__(tool, "_binder", binder)
        return tool

    def to_dict(self) -> dict[str, Any]:
        """The tool as the model sees it: ``{"type": "function", "function": {...}}``."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for ``implementation`` from the model's ``arguments``.

        :raises InvalidToolCallError: the arguments do not fit the parameters.
        """
        if self._binder is not None:
            return self._binder(arguments)
        problem = _schema_problem(self.parameters, dict(arguments))
        if problem is not None:
            raise InvalidToolCallError(f"invalid arguments for tool {self.name!r}: {problem}")
        return dict(arguments)


ToolLike = Tool | Callable[..., Any] | Mapping[str, Any]
"""What ``act()`` takes as a tool: a :class:`Tool`, a function, or a dict with ``name``,
``implementation``, and optionally ``description`` and ``parameters`` (a JSON schema, or
a dict of parameter names to Python types)."""


def _schema_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    from .._structured import _best_error, _jsonschema

    jsonschema = _jsonschema()
    if jsonschema is None:  # pragma: no cover - jsonschema is optional
        return None
    validator = jsonschema.validators.validator_for(schema)(schema)
    return _best_error(validator, value)


def _function_parameters(
    function: Callable[..., Any], name: str, docs: Mapping[str, str]
) -> tuple[dict[str, Any], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tool {name!r}: cannot read the signature: {exc}") from None
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:
        raise ValueError(f"tool {name!r}: cannot read the type hints: {exc}") from None
    fields: list[tuple[str, Any, Any]] = []
    defaults: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(
                f"tool {name!r}: *{parameter.name} cannot be described to a model; "
                "give every parameter a name"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ValueError(
                f"tool {name!r}: positional-only parameter {parameter.name!r} cannot be "
                "passed by name"
            )
        hint = hints.get(parameter.name, Any)
        if parameter.default is parameter.empty:
            fields.append((parameter.name, hint, dataclasses.field()))
        else:
            default = parameter.default
            defaults[parameter.name] = default
            factory = functools.partial(copy.deepcopy, default)
            fields.append((parameter.name, hint, dataclasses.field(default_factory=factory)))
    arguments_class = dataclasses.make_dataclass(f"{name}_arguments", fields, kw_only=True)
    try:
        schema = json_schema_for_class(arguments_class)
    except ValueError as exc:
        message = str(exc).replace(f"{arguments_class.__name__}.", "")
        raise ValueError(f"tool {name!r}: {message}") from None
    schema.pop("title", None)
    properties = schema["properties"]
    for key, value in defaults.items():
        # A default that is not JSON is left out: the model just sees an optional parameter.
        with contextlib.suppress(TypeError, ValueError):
            properties[key]["default"] = json.loads(json.dumps(value, allow_nan=False))
    for key, text in docs.items():
        if key in properties:
            properties[key]["description"] = text

    def bind(arguments: Mapping[str, Any]) -> dict[str, Any]:
        try:
            value: Any = _user_converter.structure(dict(arguments), arguments_class)
        except Exception as exc:
            raise InvalidToolCallError(
                f"invalid arguments for tool {name!r}: {_describe(exc)}"
            ) from None
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}

    return schema, bind


_SECTION_RE = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?):\s*$"
)
_GOOGLE_PARAM_RE = re.compile(r"^(\s+)(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM_RE = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """``(description, {parameter: description})`` of a Google- or Sphinx-style docstring."""
    description: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent = 0
    for line in doc.splitlines():
        header = _SECTION_RE.match(line)
        if header:
            section = header.group(1)
            current = None
            continue
        sphinx = _SPHINX_PARAM_RE.match(line)
        if sphinx:
            section, current = ":param", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if line.strip().startswith(":") and section in (None, ":param"):
            section, current = ":other", None  # :returns:, :raises: ...
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters", "Params"):
            google = _GOOGLE_PARAM_RE.match(line)
            if google and (current is None or len(google.group(1)) <= indent):
                indent = len(google.group(1))
                current = google.group(2).lstrip("*")
                params[current] = google.group(3).strip()
            elif current is not None and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
        elif section == ":param" and current is not None and line.strip():
            params[current] = f"{params[current]} {line.strip()}".strip()
    return "\n".join(description).strip(), params


def _tool_from_dict(spec: Mapping[str, Any]) -> Tool:
    allowed = {"name", "description", "parameters", "implementation", "timeout"}
    unknown = set(map(str, spec)) - allowed
    if unknown:
        raise ValueError(f"unknown tool keys {sorted(unknown)}; a tool dict has {sorted(allowed)}")
    if "name" not in spec or "implementation" not in spec:
        raise ValueError(
            "a tool dict needs 'name' and 'implementation' (and may have 'description', "
            f"'parameters' and 'timeout'); got the keys {sorted(map(str, spec))}"
        )
    parameters = spec.get("parameters")
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise ValueError(f"a tool description must be a str, got {description!r}")
    if isinstance(parameters, Mapping) and parameters and not _looks_like_schema(parameters):
        # {"a": int, "b": int}: parameter names to Python types, as lmstudio-python takes.
        implementation = spec["implementation"]
        _check_implementation(None, None, implementation)

        def signature_stub(**kwargs: Any) -> Any:  # pragma: no cover - never called
            raise NotImplementedError

        signature_stub.__annotations__ = dict(parameters)
        signature_stub.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(str(key), inspect.Parameter.KEYWORD_ONLY) for key in parameters]
        )
        stub_tool = Tool.from_function(signature_stub, name=spec["name"])
        tool = Tool(
            name=spec["name"],
            description=description,
            parameters=stub_tool.parameters,
            implementation=implementation,
            timeout=spec.get("timeout"),
        )
        object.__setattr__(tool, "_binder", stub_tool._binder)
        return tool
    return Tool(
        name=spec["name"],
        description=description,
        parameters=parameters if parameters is not None else copy.deepcopy(_EMPTY_PARAMETERS),
        implementation=spec["implementation"],
        timeout=spec.get("timeout"),
    )


def _looks_like_schema(parameters: Mapping[str, Any]) -> bool:
    """A JSON schema, unless every value is a Python type (``{"a": int, "b": str}``)."""
    return not all(
        isinstance(value, type) or value is Any or typing.get_origin(value) is not None
        for value in parameters.values()
    )


def to_tools(tools: Sequence[ToolLike] | Mapping[str, Any] | ToolLike) -> list[Tool]:
    """Check and convert what the user passed as tools.

    :raises ValueError: a tool that cannot be described, or two tools with one name.
    """
    if isinstance(tools, (Tool, Mapping)) or callable(tools):
        raise TypeError("tools must be a list of tools (functions, Tool objects or dicts)")
    if isinstance(tools, (str, bytes)) or not isinstance(tools, Sequence):
        raise TypeError(f"tools must be a list, got {type(tools).__name__}")
    converted: list[Tool] = []
    for index, item in enumerate(tools):
        if isinstance(item, Tool):
            converted.append(item)
        elif isinstance(item, Mapping):
            converted.append(_tool_from_dict(item))
        elif callable(item):
            converted.append(Tool.from_function(item))
        else:
            raise TypeError(
                f"tool {index} must be a function, a Tool or a dict, got {type(item).__name__}"
            )
    seen: set[str] = set()
    for tool in converted:
        if tool.name in seen:
            raise ValueError(f"two tools are named {tool.name!r}; tool names must be unique")
        seen.add(tool.name)
    return converted


def tool_definitions(tools: Sequence[Tool]) -> list[shared.LLMTool]:
    """The wire ``LLMTool`` objects of ``tools`` (for ``applyPromptTemplate``)."""
    return [
        shared.LLMTool(
            shared.LLMToolFunction(
                tool.name,
                tool.description if tool.description else UNSET,
                tool.parameters,
            )
        )
        for tool in tools
    ]
