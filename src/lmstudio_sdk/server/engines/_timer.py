"""The stats of one generation's :class:`Finished` event, measured as it runs."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .events import Finished, StopReason

__all__ = ["GenerationTimer"]


@attrs.define
class GenerationTimer:
    """Times one generation and counts its predicted tokens.

    ``clock`` is the engine's time source in seconds (``time.perf_counter`` in llama.cpp's
    thread, the event loop's clock in the scripted engine, so that Trio's mock clock drives
    it). Starting the timer starts the generation; the engine calls :meth:`prompt_processed`
    when the prompt is evaluated, :meth:`token_arrived` for every generated token before
    counting it in ``predicted``, and :meth:`finish` for the last event.
    """

    clock: Callable[[], float]
    prompt_tokens: int
    predicted: int = 0
    start: float = attrs.field(init=False)
    prompt_done: float = attrs.field(init=False)
    first_token: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.start = self.prompt_done = self.clock()

    def prompt_processed(self) -> None:
        """The prompt is evaluated: generation (the tokens-per-second span) starts now."""
        self.prompt_done = self.clock()

    def token_arrived(self) -> None:
        """A token was generated (only the first one's time is kept)."""
        if self.first_token is None:
            self.first_token = self.clock()

    def finish(self, reason: StopReason, stop_string: str | None = None) -> Finished:
        """The final event, with the times measured so far."""
        end = self.clock()
        decode_time = end - self.prompt_done
        first = self.first_token
        return Finished(
            stop_reason=reason,
            stop_string=stop_string,
            prompt_tokens=self.prompt_tokens,
            predicted_tokens=self.predicted,
            time_to_first_token=None if first is None else first - self.start,
            tokens_per_second=(
                self.predicted / decode_time if self.predicted and decode_time > 0 else None
            ),
            total_time=end - self.start,
        )
