"""The ``embedding`` namespace beyond model management: ``embedString``."""

from __future__ import annotations

import math

from ...protocol.endpoints import embedding as embedding_ep
from ...protocol.endpoints.embedding import EmbedStringParameter, EmbedStringResult
from .._connection import CallContext
from .._errors import bad_request
from ..engines.base import EmbeddingEngine
from ._table import TABLE

__all__: list[str] = []


@TABLE.rpc(embedding_ep.EMBED_STRING)
async def embed_string(context: CallContext, parameter: EmbedStringParameter) -> EmbedStringResult:
    catalog = context.server.catalog
    instance = catalog.resolve("embedding", parameter.model_specifier)
    engine = instance.engine
    if not isinstance(engine, EmbeddingEngine):  # pragma: no cover - domains are kept apart
        raise bad_request(f"{instance.identifier} is not an embedding model.")
    with catalog.use(instance):
        vector = await engine.embed(parameter.input_string)
    if not all(math.isfinite(x) for x in vector):
        # JSON has no NaN/Infinity: a frame with them would be dropped by the client.
        raise bad_request("The embedding model produced a non-finite value.")
    return EmbedStringResult([float(x) for x in vector])
