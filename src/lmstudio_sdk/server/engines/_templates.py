"""Chat templates: rendering a Jinja chat template in a sandbox, as Hugging Face does."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .base import EngineUnavailableError, InvalidRequestError, PromptTemplateError

if TYPE_CHECKING:
    from jinja2 import Template

__all__ = ["check_messages", "render_chat_template"]

_ROLES = frozenset({"system", "user", "assistant", "tool"})


def check_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`InvalidRequestError` unless every message has a known role and text."""
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequestError(
                f"messages[{index}] has role {role!r}; expected one of {sorted(_ROLES)}."
            )
        if not isinstance(message.get("content"), str):
            raise InvalidRequestError(f"messages[{index}]['content'] must be a string.")


_template_cache: dict[str, Template] = {}


def render_chat_template(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Render a Jinja chat template (a GGUF's ``tokenizer.chat_template`` or a user's own).

    Rendered in jinja2's immutable sandbox with Hugging Face's settings (``trim_blocks``,
    ``lstrip_blocks``, ``raise_exception``, ``tojson``), so a template cannot touch Python
    objects. Needs ``jinja2``; a failure raises :class:`PromptTemplateError`.
    """
    check_messages(messages)
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # pragma: no cover - jinja2 comes with llama-cpp-python
        raise EngineUnavailableError(
            "Rendering a Jinja prompt template needs the jinja2 package.",
            suggestion="Install it with: pip install jinja2",
        ) from None

    compiled = _template_cache.get(template)
    if compiled is None:

        def raise_exception(message: str) -> None:
            raise jinja2.TemplateError(message)

        def tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
            return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = raise_exception
        env.filters["tojson"] = tojson
        try:
            compiled = env.from_string(template)
        except jinja2.TemplateError as exc:
            raise PromptTemplateError(f"The prompt template does not compile: {exc}") from exc
        if len(_template_cache) > 32:
            _template_cache.clear()
        _template_cache[template] = compiled
    context: dict[str, Any] = {
        "messages": [dict(m) for m in messages],
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    if tools:
        context["tools"] = [dict(t) for t in tools]
    try:
        return compiled.render(**context)
    except jinja2.TemplateError as exc:
        raise PromptTemplateError(f"The prompt template failed on these messages: {exc}") from exc
