"""How to reach one OpenAI-compatible upstream engine (vLLM, llama.cpp's server, Ollama...)."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = ["Upstream"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_url(_: Any, __: Any, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"upstream URL must be an http(s) base URL such as http://127.0.0.1:8000/v1, "
            f"not {value!r}"
        )
    if parts.username or parts.password:
        raise ValueError(
            "put no credentials in the upstream URL; give the API key through an "
            "environment variable (api_key_env)"
        )


def _check_env_name(_: Any, __: Any, value: str | None) -> None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"api_key_env must be an environment variable name, not {value!r}")


def _check_timeout(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be > 0 seconds, not {value!r}")


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


@attrs.frozen(kw_only=True)
class Upstream:
    """One OpenAI-compatible server the local server forwards to.

    :param url: the OpenAI-compatible base, e.g. ``http://127.0.0.1:8000/v1`` (requests go
        to ``{url}/chat/completions``...; ``/tokenize`` is looked up beside it, at the root).
    :param api_key_env: name of the environment variable holding the upstream's API key
        (sent as ``Authorization: Bearer``); read when the server starts, never logged.
    :param name: how logs and errors name it (default: ``host:port``).
    :param connect_timeout: seconds to open a connection before the upstream counts as down.
    :param read_timeout: seconds of silence allowed while waiting for the next token.
    :param context_length: context length to report for its models when the upstream does
        not say (vLLM reports ``max_model_len``; llama.cpp servers do not).
    :param sampling_extensions: send the settings the OpenAI API lacks (``top_k``,
        ``min_p``, ``repeat_penalty``/``repetition_penalty``, ``grammar``), which vLLM,
        llama.cpp and Ollama take; turn off for an upstream that refuses unknown fields.
    """

    url: str = attrs.field(converter=_strip_slash, validator=_check_url)
    api_key_env: str | None = attrs.field(default=None, validator=_check_env_name)
    name: str | None = None
    connect_timeout: float = attrs.field(default=5.0, validator=_check_timeout)
    read_timeout: float = attrs.field(default=300.0, validator=_check_timeout)
    context_length: int = attrs.field(default=4096, validator=_check_timeout)
    sampling_extensions: bool = True

    @property
    def label(self) -> str:
        """``name``, or ``host:port`` of the URL."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        return parts.netloc or self.url

    @property
    def root(self) -> str:
        """The server root: ``url`` without a trailing ``/v1``."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    def api_key(self) -> str | None:
        """The API key from ``api_key_env`` (a clear error if the variable is not set)."""
        if self.api_key_env is None:
            return None
        value = os.environ.get(self.api_key_env)
        if not value:
            raise ValueError(
                f"upstream {self.label}: the environment variable {self.api_key_env} "
                "(its API key) is not set"
            )
        return value
