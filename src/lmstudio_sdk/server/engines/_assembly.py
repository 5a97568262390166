"""Stream assembly: decoded text, token by token, to :class:`TokenPiece` events (stop
strings held back, reasoning tags split out)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .base import ReasoningParsing
from .events import ReasoningType, TokenPiece

__all__ = ["StreamAssembler"]


def _held_suffix_length(text: str, patterns: Iterable[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some pattern."""
    best = 0
    for pattern in patterns:
        for n in range(min(len(pattern) - 1, len(text)), best, -1):
            if text.endswith(pattern[:n]):
                best = n
                break
    return best


class StreamAssembler:
    """Turns decoded text, token by token, into :class:`TokenPiece` events.

    * Stop strings: text that could be the start of a stop string is held back until it is
      clear; when a stop string appears, the text before it is released and the generation
      must stop (the stop string itself is not part of the output).
    * Reasoning: with ``reasoning`` set, ``<think>``/``</think>`` (or the configured tags) are
      split out as structural ``reasoningStartTag``/``reasoningEndTag`` pieces, and the text
      between them is typed ``"reasoning"``.
    * Token counts of held-back text are carried to the piece that finally contains it.
    """

    def __init__(self, stop_strings: Sequence[str] = (), reasoning: ReasoningParsing | None = None):
        self._stop_strings = tuple(stop_strings)
        self._tags = (reasoning.start_string, reasoning.end_string) if reasoning else None
        self._buffer = ""
        self._pending_tokens = 0
        self._in_reasoning = False

    def feed(self, text: str, tokens: int = 1) -> tuple[list[TokenPiece], str | None]:
        """Add one token's text. Returns the pieces now safe to send, and the stop string
        that was found (then stop generating and do not call :meth:`feed` again)."""
        self._buffer += text
        self._pending_tokens += tokens
        hit = self._find_stop_string()
        if hit is not None:
            index, stop_string = hit
            released, self._buffer = self._buffer[:index], ""
            return self._segment(released), stop_string
        cut = len(self._buffer) - _held_suffix_length(self._buffer, self._stop_strings)
        cut = self._tag_safe_cut(cut)
        released, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return self._segment(released), None

    def _tag_safe_cut(self, cut: int) -> int:
        """Move ``cut`` back so that no reasoning tag is split or released half-seen."""
        if not self._tags:
            return cut
        spans = []
        inside, position = self._in_reasoning, 0
        while True:
            tag = self._tags[1] if inside else self._tags[0]
            index = self._buffer.find(tag, position)
            if index < 0:
                break
            position = index + len(tag)
            spans.append((index, position))
            inside = not inside
        for start, end in spans:
            if start < cut < end:
                cut = start
                break
        before = [span for span in spans if span[1] <= cut]
        inside = self._in_reasoning != (len(before) % 2 == 1)
        tail_start = before[-1][1] if before else 0
        next_tag = self._tags[1] if inside else self._tags[0]
        return cut - _held_suffix_length(self._buffer[tail_start:cut], (next_tag,))

    def flush(self) -> list[TokenPiece]:
        """Release whatever is held back (the generation ended without a stop string)."""
        released, self._buffer = self._buffer, ""
        pieces = self._segment(released)
        if not pieces and self._pending_tokens:
            # Tokens whose text was empty (or all held) still count.
            pieces = [TokenPiece("", self._pending_tokens, self._current_type())]
            self._pending_tokens = 0
        return pieces

    def _find_stop_string(self) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        for stop_string in self._stop_strings:
            index = self._buffer.find(stop_string)
            if index >= 0 and (
                best is None
                or index < best[0]
                or (index == best[0] and len(stop_string) > len(best[1]))
            ):
                best = (index, stop_string)
        return best

    def _current_type(self) -> ReasoningType:
        return "reasoning" if self._in_reasoning else "none"

    def _segment(self, text: str) -> list[TokenPiece]:
        pieces: list[TokenPiece] = []
        while text:
            tag = None
            if self._tags:
                tag = self._tags[1] if self._in_reasoning else self._tags[0]
            index = text.find(tag) if tag else -1
            if index < 0:
                pieces.append(self._piece(text, self._current_type(), False))
                break
            if index > 0:
                pieces.append(self._piece(text[:index], self._current_type(), False))
            kind: ReasoningType = "reasoningEndTag" if self._in_reasoning else "reasoningStartTag"
            assert tag is not None
            pieces.append(self._piece(tag, kind, True))
            self._in_reasoning = not self._in_reasoning
            text = text[index + len(tag) :]
        return pieces

    def _piece(self, text: str, kind: ReasoningType, structural: bool) -> TokenPiece:
        tokens, self._pending_tokens = self._pending_tokens, 0
        return TokenPiece(text, tokens, kind, structural)
