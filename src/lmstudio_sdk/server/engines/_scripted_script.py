"""What a scripted model says and how it misbehaves: :class:`Script` (reply text or exact
fragments, reasoning, tool calls, echo mode, pacing, progress steps) and :class:`Faults`
(delays, errors, dropped sockets, malformed frames, silence). :mod:`.scripted` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import anyio
import anyio.lowlevel
import attrs

from lmstudio_sdk.server.engines.base import (
    EngineError,
    InjectedWireFault,
    InvalidRequestError,
    _check_non_negative,
)

__all__ = [
    "DownloadStep",
    "Faults",
    "InjectedFaultError",
    "Operation",
    "Script",
    "ScriptedToolCall",
]

Operation = Literal[
    "load", "generate", "tokenize", "count_tokens", "apply_prompt_template", "embed"
]


def _positive(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise InvalidRequestError(f"{attribute.name} must be >= 1, got {value!r}.")


@attrs.frozen(kw_only=True)
class ScriptedToolCall:
    """A tool call the scripted model makes.

    ``call_id=None`` gives ``"call-<n>"``; ``omit_id=True`` sends no id at all (models
    without call ids). ``malformed=True`` reports ``toolCallGenerationFailed`` instead of
    ``toolCallGenerationEnd``.
    """

    name: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)
    call_id: str | None = None
    omit_id: bool = False
    malformed: bool = False


@attrs.frozen
class DownloadStep:
    """One fake download progress report."""

    downloaded_bytes: int
    total_bytes: int
    speed_bytes_per_second: float


@attrs.frozen(kw_only=True)
class Script:
    """What the scripted engine says, and how fast.

    :param text: the reply, split into fragments by the fake tokenizer.
    :param fragments: exact fragments instead of ``text`` (each counts as one token). A
        benchmark streams 20k fragments with ``fragments=("tok ",) * 20_000``.
    :param tokens_per_fragment: fake tokens grouped into one fragment of ``text``.
    :param reasoning: if set, emitted first as ``<think>`` + reasoning + ``</think>`` (the
        request's reasoning tags), classified like a real model's output.
    :param echo: reply with the last user message of the prompt (or the whole prompt when it
        is not in the scripted template's format), prefixed with ``echo_prefix``.
    :param tool_calls: made when the request offers tools (see the module docstring).
    :param fragments_per_second: pacing of fragments; ``0`` means as fast as possible (no
        timer per fragment).
    :param prompt_progress_steps: ``PromptProgress`` events before the first fragment.
    :param load_progress_steps, load_step_seconds: load progress reports and the pause
        between them.
    :param download_total_bytes, download_progress_steps, download_step_seconds: what
        :meth:`download_steps` reports; the server paces downloads with
        ``download_step_seconds``.
    """

    text: str = "Hello! I am the scripted model."
    fragments: tuple[str, ...] | None = attrs.field(
        default=None, converter=attrs.converters.optional(tuple)
    )
    tokens_per_fragment: int = attrs.field(default=1, validator=_positive)
    reasoning: str | None = None
    echo: bool = False
    echo_prefix: str = ""
    tool_calls: tuple[ScriptedToolCall, ...] = attrs.field(default=(), converter=tuple)
    fragments_per_second: float = attrs.field(default=0.0, validator=_check_non_negative)
    prompt_progress_steps: int = attrs.field(default=1, validator=_check_non_negative)
    load_progress_steps: int = attrs.field(default=4, validator=_positive)
    load_step_seconds: float = attrs.field(default=0.0, validator=_check_non_negative)
    download_total_bytes: int = attrs.field(default=10_000_000, validator=_check_non_negative)
    download_progress_steps: int = attrs.field(default=4, validator=_positive)
    download_step_seconds: float = attrs.field(default=0.0, validator=_check_non_negative)

    def download_steps(self) -> list[DownloadStep]:
        """The progress reports of a fake download, ending at ``download_total_bytes``."""
        total, steps = self.download_total_bytes, self.download_progress_steps
        speed = total / (steps * self.download_step_seconds) if self.download_step_seconds else 0.0
        return [DownloadStep(total * i // steps, total, speed) for i in range(1, steps + 1)]


@attrs.frozen(kw_only=True)
class Faults:
    """Faults to inject, for the operations named in ``operations``.

    The engine carries out the ones it can; the others reach the server as data (a
    :class:`FaultEvent` in a generation, an :class:`InjectedWireFault` raised by any other
    operation), and the server must then break the wire as described.

    :param operations: engine operations the faults apply to (default: generations only).
    :param delay: seconds to wait before the first event of a generation, or before
        answering any other operation. ``stream.stop()`` cuts it short.
    :param error: if set, the operation fails with :class:`InjectedFaultError` (this text as
        its title): a generation after ``error_after_fragments`` fragments; the server
        answers with ``channelError`` / ``rpcError``.
    :param drop_socket_after_fragments: a generation yields ``FaultEvent("dropSocket")``
        after this many fragments; the server closes the websocket abruptly (no close frame,
        no ``success``). For other operations ``0`` raises ``InjectedWireFault("dropSocket")``
        instead of answering.
    :param malformed_frame_after_fragments: the same with ``"malformedFrame"``: the server
        sends one frame that is not valid protocol (e.g. invalid JSON), then carries on.
    :param never_answer: the operation never completes and sends nothing, not even after a
        cancel request; only leaving the block (the client disconnecting) ends it.
    """

    operations: frozenset[Operation] = attrs.field(
        default=frozenset({"generate"}), converter=frozenset
    )
    delay: float = attrs.field(default=0.0, validator=_check_non_negative)
    error: str | None = None
    error_after_fragments: int = attrs.field(default=0, validator=_check_non_negative)
    drop_socket_after_fragments: int | None = attrs.field(
        default=None, validator=_check_non_negative
    )
    malformed_frame_after_fragments: int | None = attrs.field(
        default=None, validator=_check_non_negative
    )
    never_answer: bool = False

    def applies_to(self, operation: Operation) -> bool:
        """Whether these faults affect ``operation``."""
        return operation in self.operations


class InjectedFaultError(EngineError):
    """The error :class:`Faults` asked for; the server reports it as an error reply."""


async def _apply_faults(faults: Faults, operation: Operation) -> None:
    """The faults of an operation that answers once (not a generation)."""
    if not faults.applies_to(operation):
        return
    if faults.never_answer:
        await anyio.sleep_forever()
    if faults.delay:
        await anyio.sleep(faults.delay)
    if faults.error is not None:
        raise InjectedFaultError(faults.error)
    if faults.drop_socket_after_fragments == 0:
        raise InjectedWireFault("dropSocket")
    if faults.malformed_frame_after_fragments == 0:
        raise InjectedWireFault("malformedFrame")
