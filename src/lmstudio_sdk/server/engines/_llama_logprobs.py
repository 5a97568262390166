"""Log-probabilities of generated tokens (LM Studio's ``logProbs``), read in the decode thread.

When llama-cpp-python's generator hands out a token, the context still holds the logits it
was sampled from (the next token is evaluated only when the generator is resumed), so the
token's log-probability is a log-softmax over that one row: nothing is kept or computed when
the request does not ask for log-probabilities (no ``logits_all``, no per-token cost). The
values are the model's own distribution, before temperature, penalties, filters or grammar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from lmstudio_sdk.server.engines.events import TokenLogProb, TokenPiece

__all__ = ["LogProbReader", "attach_log_probs"]


class LogProbReader:
    """Reads the log-probability of the token just sampled, and the ``top`` best candidates."""

    def __init__(self, llama_cpp: Any, llm: Any, top: int, text: Callable[[int], str]) -> None:
        import numpy  # a dependency of llama-cpp-python

        self._np = numpy
        self._llama_cpp = llama_cpp
        self._llm = llm
        self._n_vocab = int(llm.n_vocab())
        self._top = min(top, self._n_vocab)
        self._text = text

    def read(self, token: int) -> TokenLogProb:
        """Call right after the generator yielded ``token``, before resuming it."""
        np = self._np
        pointer = self._llama_cpp.llama_get_logits_ith(self._llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)).astype(np.float64)
        peak = logits.max()
        # The normaliser is >= the largest logit (the sum holds exp(0) = 1), so every value
        # is <= 0 also after rounding.
        log_probs = logits - (peak + np.log(np.exp(logits - peak).sum()))
        candidates: tuple[TokenLogProb, ...] = ()
        if self._top:
            best = np.argpartition(-log_probs, self._top - 1)[: self._top]
            best = best[np.argsort(-log_probs[best], kind="stable")]
            candidates = tuple(
                TokenLogProb(int(i), self._text(int(i)), float(log_probs[i])) for i in best
            )
        return TokenLogProb(token, self._text(token), float(log_probs[token]), candidates)


def attach_log_probs(pieces: list[TokenPiece], pending: list[TokenLogProb]) -> list[TokenPiece]:
    """Give each piece the log-probabilities of the tokens it counts (``tokens_count``),
    taken from the front of ``pending``; tokens whose text is still held back stay there."""
    out = []
    for piece in pieces:
        count = min(piece.tokens_count, len(pending))
        out.append(attrs.evolve(piece, tokens=tuple(pending[:count])))
        del pending[:count]
    return out
