"""Where a server's API tokens come from, besides ``ServerOptions(api_tokens=...)``.

A token given on the command line (``--api-token``) is visible to every user of the
machine (``ps``, ``/proc/*/cmdline``), so ``lmsdk serve`` also reads tokens from a file
(``--api-token-file``) and from the :data:`TOKENS_ENV_VAR` environment variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["TOKENS_ENV_VAR", "tokens_from_env", "tokens_from_file"]

TOKENS_ENV_VAR: Final = "LMSDK_SERVER_API_TOKENS"
"""Environment variable with the API tokens ``lmsdk serve`` accepts (comma or space separated).

Not ``LM_API_TOKEN``: that one is what *clients* send, and a shell that sets it for a client
must not silently turn a server started from it into a token-only server.
"""

_SEPARATORS = re.compile(r"[\s,]+")


def _split(text: str) -> tuple[str, ...]:
    return tuple(token for token in _SEPARATORS.split(text) if token)


def tokens_from_file(path: str | Path) -> tuple[str, ...]:
    """The tokens in a file: one or more per line, ``#`` starts a comment.

    :raises ValueError: the file cannot be read or holds no token (never echoes its text).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"cannot read the API token file {str(path)!r}: {reason}") from None
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    tokens = tuple(token for line in lines for token in _split(line))
    if not tokens:
        raise ValueError(f"the API token file {str(path)!r} holds no token")
    return tokens


def tokens_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The tokens in :data:`TOKENS_ENV_VAR` (none if it is unset or empty)."""
    env = os.environ if environ is None else environ
    return _split(env.get(TOKENS_ENV_VAR, ""))
