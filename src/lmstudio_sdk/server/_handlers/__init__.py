"""Endpoint handlers; importing this package fills :data:`TABLE`."""

from __future__ import annotations

from . import embedding, llm, models, other
from ._table import TABLE, HandlerTable

__all__ = ["TABLE", "HandlerTable", "embedding", "llm", "models", "other"]
