"""The local server as an LM Studio front for OpenAI-compatible engines.

Give the server :class:`Upstream` entries (``ServerOptions(upstreams=...)`` or ``lmsdk
serve --upstream URL``): the models each lists at ``/v1/models`` are offered and shown as
loaded, and predictions, embeddings and tokenizing are forwarded over HTTP (httpx), routed
per model to the upstream with the fewest requests in flight. See ``docs/scale-out.md``.
Needs the ``upstream`` extra (httpx).
"""

from __future__ import annotations

from ._config import Upstream

__all__ = ["Upstream"]
