"""The sans-io core of a prediction: typed packets in, public events and a result out.

:class:`PredictionAccumulator` is fed the packets of one ``predict`` or ``completeRawText``
channel in order. It is the hot path of streaming, so a fragment costs one append per
text list; texts are joined only when read.

It reports what the server sent: it never invents a stop reason, and fragments that
arrive after a cancel are kept (the server's ``success`` follows them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._structured import Parser
from .config import load_config_from_kv, prediction_config_from_kv
from .errors import RemoteProtocolError, StructuredOutputError
from .protocol.codec import Unknown
from .protocol.endpoints.llm import (
    PredictFragment,
    PredictPromptProcessingProgress,
    PredictSuccess,
    PredictToolCallGenerationArgumentFragmentGenerated,
    PredictToolCallGenerationEnd,
    PredictToolCallGenerationFailed,
    PredictToolCallGenerationNameReceived,
    PredictToolCallGenerationStart,
)
from .results import (
    ModelInstanceInfo,
    PredictionEvent,
    PredictionFragment,
    PredictionResult,
    PredictionStats,
    PromptProcessingProgress,
    ToolCallArgumentsFragment,
    ToolCallGenerated,
    ToolCallGenerationFailed,
    ToolCallGenerationStarted,
    ToolCallNameReceived,
    ToolCallRequest,
    _opt,
)

__all__ = ["PredictionAccumulator"]


def _joined(parts: list[str]) -> str:
    # Join once and keep the joined text, so reading the partial text repeatedly while
    # streaming stays linear overall.
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


class PredictionAccumulator:
    """Turns one prediction's packets into public events and, at the end, a result.

    ``parser`` (from :func:`lmstudio_sdk._structured.response_format`) parses the answer
    (``non_reasoning_content``) into ``result.parsed``.

    Use: ``event = acc.feed(packet)`` for every packet (``None`` when the packet has no
    public event: ``success`` and packet types this version does not know); then, when the
    channel has closed, ``acc.finish()``. ``content``, ``reasoning_content``,
    ``non_reasoning_content`` and ``tool_call_requests`` give the partial result at any
    time.
    """

    def __init__(self, *, parser: Parser | None = None) -> None:
        self._parser = parser
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._answer: list[str] = []
        self._tool_calls: list[ToolCallRequest] = []
        self._result: PredictionResult | None = None
        self._parse_error: StructuredOutputError | None = None
        self._handlers: dict[type, Callable[[Any], PredictionEvent | None]] = {
            PredictFragment: self._on_fragment,
            PredictPromptProcessingProgress: self._on_progress,
            PredictToolCallGenerationStart: self._on_tool_start,
            PredictToolCallGenerationNameReceived: self._on_tool_name,
            PredictToolCallGenerationArgumentFragmentGenerated: self._on_tool_arguments,
            PredictToolCallGenerationEnd: self._on_tool_end,
            PredictToolCallGenerationFailed: self._on_tool_failed,
            PredictSuccess: self._on_success,
        }

    # --- feeding ---------------------------------------------------------------------

    def feed(self, packet: Any) -> PredictionEvent | None:
        """Take the next packet; return its public event, if it has one.

        Raises ``RemoteProtocolError`` for a packet after ``success`` (the last packet).
        """
        if self._result is not None:
            kind = packet.type if isinstance(packet, Unknown) else type(packet).__name__
            raise RemoteProtocolError(
                f"the server sent a {kind} packet after the prediction's success"
            )
        handler = self._handlers.get(type(packet))
        if handler is None:
            # Unknown packet types (newer servers) are ignored, as the reference clients do.
            return None
        return handler(packet)

    def _on_fragment(self, packet: PredictFragment) -> PredictionEvent:
        fragment = PredictionFragment.from_wire(packet.fragment)
        self._content.append(fragment.content)
        if not fragment.is_structural:
            kind = fragment.reasoning_type
            if kind == "none":
                self._answer.append(fragment.content)
            elif kind == "reasoning":
                self._reasoning.append(fragment.content)
        return fragment

    def _on_progress(self, packet: PredictPromptProcessingProgress) -> PredictionEvent:
        return PromptProcessingProgress.from_wire(packet)

    def _on_tool_start(self, packet: PredictToolCallGenerationStart) -> PredictionEvent:
        return ToolCallGenerationStarted(_opt(packet.tool_call_id))

    def _on_tool_name(self, packet: PredictToolCallGenerationNameReceived) -> PredictionEvent:
        return ToolCallNameReceived(packet.name)

    def _on_tool_arguments(
        self, packet: PredictToolCallGenerationArgumentFragmentGenerated
    ) -> PredictionEvent:
        return ToolCallArgumentsFragment(packet.content)

    def _on_tool_end(self, packet: PredictToolCallGenerationEnd) -> PredictionEvent:
        request = ToolCallRequest.from_wire(packet.tool_call_request)
        self._tool_calls.append(request)
        return ToolCallGenerated(request, _opt(packet.raw_content))

    def _on_tool_failed(self, packet: PredictToolCallGenerationFailed) -> PredictionEvent:
        return ToolCallGenerationFailed(packet.error.to_exception(), _opt(packet.raw_content))

    def _on_success(self, packet: PredictSuccess) -> None:
        parsed = None
        if self._parser is not None:
            try:
                parsed = self._parser(self.non_reasoning_content)
            except StructuredOutputError as exc:
                self._parse_error = exc
        self._result = PredictionResult(
            content=self.content,
            reasoning_content=self.reasoning_content,
            non_reasoning_content=self.non_reasoning_content,
            stats=PredictionStats.from_wire(packet.stats),
            model_info=ModelInstanceInfo.from_wire(packet.model_info),
            load_config=load_config_from_kv(packet.load_model_config),
            prediction_config=prediction_config_from_kv(packet.prediction_config),
            parsed=parsed,
            tool_call_requests=tuple(self._tool_calls),
        )
        return None

    # --- reading -----------------------------------------------------------------------

    @property
    def content(self) -> str:
        """All text so far, reasoning and structural fragments included."""
        return _joined(self._content)

    @property
    def reasoning_content(self) -> str:
        """The reasoning text so far (non-structural ``reasoning`` fragments)."""
        return _joined(self._reasoning)

    @property
    def non_reasoning_content(self) -> str:
        """The answer text so far (non-structural ``none`` fragments)."""
        return _joined(self._answer)

    @property
    def tool_call_requests(self) -> tuple[ToolCallRequest, ...]:
        """The complete tool calls so far."""
        return tuple(self._tool_calls)

    @property
    def finished(self) -> bool:
        """Whether ``success`` has arrived."""
        return self._result is not None

    @property
    def result(self) -> PredictionResult | None:
        """The result once ``success`` has arrived, else ``None``.

        When the structured reply did not validate, ``parsed`` is ``None`` here and
        :attr:`parse_error` holds the error.
        """
        return self._result

    @property
    def parse_error(self) -> StructuredOutputError | None:
        """Why the structured reply did not validate, if it did not."""
        return self._parse_error

    def finish(self) -> PredictionResult:
        """The result, to call once the channel has closed normally.

        Raises ``RemoteProtocolError`` if the server closed the channel without ``success``
        and ``StructuredOutputError`` if the reply did not validate into the requested
        structure (its ``raw_text`` keeps the reply).
        """
        if self._result is None:
            raise RemoteProtocolError("the server ended the prediction without a success packet")
        if self._parse_error is not None:
            raise self._parse_error
        return self._result
