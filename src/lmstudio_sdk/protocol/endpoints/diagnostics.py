"""The ``diagnostics`` namespace: the server's log stream (PROTOCOL.md 3.5).

``streamLogs`` pushes one ``log`` packet per event (prediction inputs and outputs, server
and runtime log lines) until the client sends ``stop``.
"""

from __future__ import annotations

import attrs

from .._unset import UNSET, UnsetType
from ..codec import Unknown, register_tagged_union, variant
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


@variant("llm.prediction.input")
class LLMPredictionInputLog:
    """The formatted prompt of a prediction."""

    input: str
    model_path: str
    model_identifier: str


@variant("llm.prediction.output")
class LLMPredictionOutputLog:
    output: str
    model_identifier: str
    stats: LLMPredictionStats | UnsetType = UNSET


@variant("server.log")
class ServerLog:
    """``level``: ``debug``, ``info``, ``warn`` or ``error``."""

    content: str
    level: str


@variant("runtime.log", kw_only=True)
class RuntimeLog:
    """A log line of an inference engine (runtime)."""

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


@variant("log")
class StreamLogsLog:
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
