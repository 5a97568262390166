"""The events of a generation, in the order an engine may send them: :class:`PromptProgress`,
:class:`TokenPiece` (text), the ``ToolCall*`` events, :class:`FaultEvent` (scripted engine
only), and always last :class:`Finished`. :data:`GenerationEvent` is their union.

Users of many events import this module as a namespace (``events.TokenPiece``); the
package :mod:`lmstudio_sdk.server.engines` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "FaultEvent",
    "Finished",
    "GenerationEvent",
    "PromptProgress",
    "ReasoningType",
    "StopReason",
    "TokenLogProb",
    "TokenPiece",
    "ToolCallArgumentFragment",
    "ToolCallEnd",
    "ToolCallFailed",
    "ToolCallName",
    "ToolCallStart",
]

ReasoningType = Literal["none", "reasoning", "reasoningStartTag", "reasoningEndTag"]
StopReason = Literal[
    "eosFound",
    "stopStringFound",
    "maxPredictedTokensReached",
    "contextLengthReached",
    "toolCalls",
    "userStopped",
    "modelUnloaded",
]


@attrs.frozen
class TokenLogProb:
    """A generated token's log-probability (natural log, ``<= 0``) and, when asked for, the
    most likely candidates at its position (most likely first; each with no candidates)."""

    id: int
    text: str
    log_prob: float
    candidates: tuple[TokenLogProb, ...] = ()


@attrs.frozen
class TokenPiece:
    """Generated text. ``tokens_count`` may be 0 when one token's text was split in two
    (e.g. around a reasoning tag); the sum over a generation is the predicted token count
    minus tokens swallowed by a stop string. Tags are ``is_structural``. ``tokens`` holds the
    log-probabilities of the piece's tokens when the request asked for them."""

    text: str
    tokens_count: int = 1
    reasoning_type: ReasoningType = "none"
    is_structural: bool = False
    tokens: tuple[TokenLogProb, ...] | None = None


@attrs.frozen
class PromptProgress:
    """Prompt processing: ``processed`` of ``total`` prompt tokens, ``cached`` of them reused."""

    processed: int
    total: int
    cached: int = 0

    @property
    def fraction(self) -> float:
        """Progress in ``[0, 1]``."""
        return 1.0 if self.total == 0 else self.processed / self.total


@attrs.frozen
class ToolCallStart:
    """The model began a tool call (``toolCallGenerationStart``)."""

    call_id: str | None = None


@attrs.frozen
class ToolCallName:
    """The tool's name is known (``toolCallGenerationNameReceived``)."""

    name: str


@attrs.frozen
class ToolCallArgumentFragment:
    """Raw argument text as it is generated (``toolCallGenerationArgumentFragmentGenerated``)."""

    text: str


@attrs.frozen
class ToolCallEnd:
    """One complete tool call (``toolCallGenerationEnd``)."""

    name: str
    arguments: Mapping[str, Any]
    call_id: str | None = None
    raw_content: str | None = None


@attrs.frozen
class ToolCallFailed:
    """The model produced a tool call that could not be parsed (``toolCallGenerationFailed``)."""

    message: str
    raw_content: str | None = None


@attrs.frozen
class FaultEvent:
    """Fault injection (scripted engine only): the server must now break the wire.

    ``"dropSocket"``: close the connection abruptly, sending nothing more.
    ``"malformedFrame"``: send one frame that violates the protocol, then carry on.
    """

    kind: Literal["dropSocket", "malformedFrame"]


@attrs.frozen(kw_only=True)
class Finished:
    """The last event of every generation, with the stats for ``LLMPredictionStats``.

    Times are seconds. ``time_to_first_token`` is ``None`` when no token was generated;
    ``tokens_per_second`` counts predicted tokens over the time after prompt processing.
    """

    stop_reason: StopReason
    stop_string: str | None = None
    prompt_tokens: int
    predicted_tokens: int
    time_to_first_token: float | None
    tokens_per_second: float | None
    total_time: float

    @property
    def total_tokens(self) -> int:
        """Prompt plus predicted tokens."""
        return self.prompt_tokens + self.predicted_tokens


GenerationEvent = (
    TokenPiece
    | PromptProgress
    | ToolCallStart
    | ToolCallName
    | ToolCallArgumentFragment
    | ToolCallEnd
    | ToolCallFailed
    | FaultEvent
    | Finished
)
