"""The ``diagnostics`` namespace: the server's log stream (PROTOCOL.md 3.5).

``streamLogs`` pushes one ``log`` packet per event (prediction inputs and outputs, server
and runtime log lines) until the client sends ``stop``.
"""

from __future__ import annotations

from typing import Literal

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union
from ._spec import ChannelSpec
from .shared import LLMPredictionStats, StopPacket, StopToServerPacket

__all__ = [
    "STREAM_LOGS",
    "DiagnosticsLogEvent",
    "DiagnosticsLogEventData",
    "LLMPredictionInputLog",
    "LLMPredictionOutputLog",
    "RuntimeLog",
    "ServerLog",
    "StreamLogsLog",
    "StreamLogsToClientPacket",
]

NAMESPACE = "diagnostics"


@attrs.frozen
class LLMPredictionInputLog:
    """The formatted prompt of a prediction."""

    type: Literal["llm.prediction.input"] = attrs.field(default="llm.prediction.input", init=False)
    input: str
    model_path: str
    model_identifier: str


@attrs.frozen
class LLMPredictionOutputLog:
    type: Literal["llm.prediction.output"] = attrs.field(
        default="llm.prediction.output", init=False
    )
    output: str
    model_identifier: str
    stats: LLMPredictionStats | UnsetType = UNSET


@attrs.frozen
class ServerLog:
    """``level``: ``debug``, ``info``, ``warn`` or ``error``."""

    type: Literal["server.log"] = attrs.field(default="server.log", init=False)
    content: str
    level: str


@attrs.frozen(kw_only=True)
class RuntimeLog:
    """A log line of an inference engine (runtime)."""

    type: Literal["runtime.log"] = attrs.field(default="runtime.log", init=False)
    level: str
    message: str
    engine_name: str
    engine_version: str
    engine_type: str
    model_identifier: str | UnsetType = UNSET
    instance_reference: str | UnsetType = UNSET
    pid: int | UnsetType = UNSET


DiagnosticsLogEventData = (
    LLMPredictionInputLog | LLMPredictionOutputLog | ServerLog | RuntimeLog | Unknown
)
register_tagged_union(DiagnosticsLogEventData)


@attrs.frozen
class DiagnosticsLogEvent:
    """``timestamp`` is in ms since the epoch."""

    timestamp: float
    data: DiagnosticsLogEventData


@attrs.frozen
class StreamLogsLog:
    type: Literal["log"] = attrs.field(default="log", init=False)
    log: DiagnosticsLogEvent


StreamLogsToClientPacket = StreamLogsLog | Unknown
register_tagged_union(StreamLogsToClientPacket)

# Logs may be quiet for hours: no inactivity timeout by default.
STREAM_LOGS = ChannelSpec(
    NAMESPACE,
    "streamLogs",
    None,
    StreamLogsToClientPacket,
    StopToServerPacket,
    StopPacket(),
    idle_timeout=None,
)
