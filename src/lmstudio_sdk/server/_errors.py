"""Errors the server sends back, with the ``displayData`` codes the clients key on.

Handlers raise :class:`~lmstudio_sdk.errors.LMStudioServerError` (or the model-not-found
subclass); the connection serialises it into the ``rpcError``/``channelError`` with
:meth:`SerializedError.from_exception`, which keeps title, cause, suggestion and display
data, and never the stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import LMStudioModelNotFoundError, LMStudioServerError
from ..protocol.codec import unstructure
from ..protocol.endpoints.shared import ModelQuery
from .engines.base import EngineError

__all__ = [
    "bad_request",
    "domain_mismatch",
    "from_engine_error",
    "identifier_taken",
    "images_not_supported",
    "no_model_matching_query",
    "path_not_found",
    "specific_model_unloaded",
]

SAMPLE_SIZE = 10


def _coded(
    cls: type[LMStudioServerError],
    title: str,
    code: str,
    *,
    cause: str | None = None,
    suggestion: str,
    **display: Any,
) -> LMStudioServerError:
    # The clients key on ``displayData.code`` (the error's own ``code`` is informative):
    # both carry the same value, and the rest of ``displayData`` is the code's payload.
    return cls(
        title, cause=cause, suggestion=suggestion, code=code, display_data={"code": code, **display}
    )


def no_model_matching_query(query: ModelQuery, loaded: Sequence[str]) -> LMStudioServerError:
    """No loaded model matches ``query`` (``generic.noModelMatchingQuery``)."""
    wanted = unstructure(query, ModelQuery)
    described = ", ".join(f"{k}={v!r}" for k, v in wanted.items()) or "any model"
    if loaded:
        cause = f"Loaded models: {', '.join(loaded[:SAMPLE_SIZE])}."
    else:
        cause = "No model is loaded."
    return _coded(
        LMStudioModelNotFoundError,
        f"No loaded model matches the query ({described}).",
        "generic.noModelMatchingQuery",
        cause=cause,
        suggestion="Load the model first (getOrLoad / loadModel), or check its identifier.",
        query=wanted,
        loadedModelsSample=list(loaded[:SAMPLE_SIZE]),
        totalLoadedModels=len(loaded),
    )


def path_not_found(path: str, available: Sequence[str]) -> LMStudioServerError:
    """No downloaded model has this key or path (``generic.pathNotFound``)."""
    return _coded(
        LMStudioModelNotFoundError,
        f"No downloaded model matches {path!r}.",
        "generic.pathNotFound",
        cause=f"This server offers: {', '.join(available[:SAMPLE_SIZE]) or 'no models'}.",
        suggestion=(
            "Use one of the model keys that `lmsdk ls` or client.system.list_downloaded_models() "
            "lists."
        ),
        path=path,
        availablePathsSample=list(available[:SAMPLE_SIZE]),
        totalModels=len(available),
    )


def identifier_taken(identifier: str) -> LMStudioServerError:
    """A load under an identifier in use (LM Studio's "Model load error ... already exists")."""
    return LMStudioServerError(
        f"Model load error: an instance with the identifier {identifier!r} already exists.",
        suggestion="Unload it first, or load with another identifier.",
    )


def images_not_supported(model_key: str) -> LMStudioServerError:
    """Images sent to a model that is not a vision model (LM Studio refuses them)."""
    return LMStudioServerError(
        "Model does not support images. Please use a model that does.",
        cause=f"{model_key} is not a vision model.",
        suggestion="Send text only, or use a vision model (vision = true in a catalogue).",
    )


def specific_model_unloaded() -> LMStudioServerError:
    """The instance a handle referred to is gone (``generic.specificModelUnloaded``)."""
    return _coded(
        LMStudioServerError,
        "The model this handle refers to has been unloaded.",
        "generic.specificModelUnloaded",
        suggestion="Load the model again and use the new handle.",
    )


def domain_mismatch(path: str, actual: str, expected: str) -> LMStudioServerError:
    """The model exists, but is not of this namespace's kind (``generic.domainMismatch``)."""
    return _coded(
        LMStudioServerError,
        f"{path!r} is an {actual} model, not an {expected} model.",
        "generic.domainMismatch",
        suggestion=f"Use it through the {actual} namespace.",
        path=path,
        actualDomain=actual,
        expectedDomain=expected,
    )


def bad_request(title: str, cause: str | None = None) -> LMStudioServerError:
    """A request the server understood but cannot honour (bad config value...)."""
    return LMStudioServerError(title, cause=cause)


def from_engine_error(exc: EngineError) -> LMStudioServerError:
    """An engine's error as a server error (title and suggestion kept)."""
    return LMStudioServerError(exc.title, suggestion=exc.suggestion)


def describe(value: Any) -> str:
    """A short, safe description of a value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
