"""The keyword arguments of the prediction and load methods, declared once.

``respond``, ``complete`` and their ``_stream`` twins (async and blocking) take
``**keywords: Unpack[PredictionKeywords]``: the prediction options plus ``config``,
``response_format``, the callbacks and the timeouts. At run time, what is not one of the
other keywords is a prediction option, checked (with a "did you mean") when the request is
built. ``load``, ``load_stream`` and ``model`` of a model namespace (and the convenience
``llm()``/``embedding_model()``) take ``**keywords: Unpack[LoadKeywords]``, checked by
:func:`check_keywords`. A type checker checks every one of them in user code, and an IDE
completes them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from typing_extensions import TypedDict

from ..config import PredictionOptions, UnknownOptionError
from ..protocol.naming import to_camel

if TYPE_CHECKING:
    from .._sentinel import DefaultType
    from ..config import LoadModelConfig, PredictionConfig
    from ..results import PredictionFragment

__all__ = [
    "LoadKeywords",
    "PredictionCallbackKeywords",
    "PredictionKeywords",
    "check_keywords",
    "check_prediction_keywords",
    "split_callbacks",
]


class PredictionCallbackKeywords(TypedDict, total=False):
    """The callbacks of a prediction (plain functions or coroutine functions).

    ``on_message(message)`` with the final assistant message (``chat.append`` takes it),
    ``on_first_token()``, ``on_prediction_fragment(fragment)``,
    ``on_prompt_processing_progress(progress)`` (0 to 1).
    """

    on_message: Callable[[Any], Any] | None
    on_first_token: Callable[[], Any] | None
    on_prediction_fragment: Callable[[PredictionFragment], Any] | None
    on_prompt_processing_progress: Callable[[float], Any] | None


class PredictionKeywords(PredictionCallbackKeywords, PredictionOptions, total=False):
    """Every keyword argument of a prediction method (all optional).

    ``config``: a :class:`~lmstudio_sdk.PredictionConfig` or a dict of options (snake_case
    or camelCase keys); ``response_format``: a JSON schema dict, a pydantic model class, an
    attrs class or a dataclass; ``timeout``: the longest silence between two packets;
    ``drain_timeout``: the longest wait for the server to confirm a cancelled prediction;
    the callbacks (:class:`PredictionCallbackKeywords`) and the prediction options
    (:class:`~lmstudio_sdk.PredictionOptions`).
    """

    config: PredictionConfig | Mapping[str, Any] | None
    response_format: Any
    timeout: float | DefaultType | None
    drain_timeout: float | DefaultType


CALLBACK_NAMES = tuple(PredictionCallbackKeywords.__annotations__)


def split_callbacks(keywords: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The callbacks given in ``keywords``, and the other keywords."""
    callbacks = {name: value for name, value in keywords.items() if name in CALLBACK_NAMES}
    others = {name: value for name, value in keywords.items() if name not in CALLBACK_NAMES}
    return callbacks, others


class LoadKeywords(TypedDict, total=False):
    """The keyword arguments of a model load (all optional).

    ``ttl``: seconds of idle time after which the server unloads the model (default one
    hour; ``None``: never); ``config``: a :class:`~lmstudio_sdk.LoadModelConfig` or a dict of
    its options; ``timeout``: the longest silence between two progress reports;
    ``drain_timeout``: the longest wait for the server to confirm a cancelled load.
    """

    ttl: float | DefaultType | None
    config: LoadModelConfig | Mapping[str, Any] | None
    timeout: float | DefaultType | None
    drain_timeout: float | DefaultType


def check_keywords(keywords: Mapping[str, Any], declared: Any, method: str) -> None:
    """A keyword the ``TypedDict`` ``declared`` does not name is a ``TypeError``, as Python's
    own for a parameter that does not exist."""
    known = declared.__required_keys__ | declared.__optional_keys__
    for name in keywords:
        if name not in known:
            raise TypeError(
                f"{method}() got an unexpected keyword argument {name!r}; "
                f"it takes {', '.join(sorted(known))}"
            )


_OPTIONS = PredictionOptions.__optional_keys__
# Every name a prediction method takes (options in both spellings), and its own keywords.
_KNOWN = PredictionKeywords.__optional_keys__ | {to_camel(option) for option in _OPTIONS}
_OWN_KEYWORDS = sorted(PredictionKeywords.__optional_keys__ - _OPTIONS)


def check_prediction_keywords(keywords: Mapping[str, Any]) -> None:
    """A name that is no prediction option but close to one of the other keywords
    (``respons_format``, ``on_mesage``) is reported as that typo, not as an unknown option."""
    for name in keywords:
        if name in _KNOWN:
            continue
        close = difflib.get_close_matches(name, _OWN_KEYWORDS, n=1, cutoff=0.75)
        if close:
            raise UnknownOptionError(
                f"unknown keyword argument {name!r}; did you mean {close[0]!r}?"
            )
