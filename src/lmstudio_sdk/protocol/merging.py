"""Merge rules: how the packets a lagging consumer has not read yet are combined.

The protocol has no flow control, so a client whose consumer falls behind buffers what
arrives; when the buffer is full it combines neighbouring packets rather than stall the
socket or drop data (see ``_async/channel.py``). Each channel endpoint declares its rule
on its spec (``ChannelSpec.merge``); the rules of an endpoint's packets live next to those
packets, the generic ones here.

A rule is two functions, so that combining is linear however many packets pile up: the
pairwise ``classify(previous, new)`` says whether ``new`` can be folded into ``previous``
(:attr:`Merge.JOIN`: collected into a run, combined once with ``join(run)`` when the
consumer reads it; :attr:`Merge.REPLACE`: ``new`` supersedes ``previous``, e.g. a later
progress report) or not (:attr:`Merge.NO`). Joining text pairwise would copy it again at
every step (quadratic in the number of fragments).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

__all__ = ["LATEST_PROGRESS", "NO_MERGE", "Merge", "MergeRule", "progress_merge"]


class Merge(enum.Enum):
    """How a new packet combines with the buffered one before it."""

    #: It does not: both stay.
    NO = "no"
    #: Both are parts of one packet: collect them, ``join`` them once when read.
    JOIN = "join"
    #: The new one supersedes the previous one (a later progress report).
    REPLACE = "replace"


def _never(previous: Any, new: Any) -> Merge:
    return Merge.NO


def _last(parts: Sequence[Any]) -> Any:
    return parts[-1]


@attrs.frozen
class MergeRule:
    """The merge rule of a channel endpoint (see the module doc).

    :param classify: ``(previous, new) -> Merge``; must be cheap (it runs in the socket's
        reader for every packet a lagging consumer has not read).
    :param join: combines a run of packets that ``classify`` joined (two or more, oldest
        first) into one packet; runs once per run, when the consumer reads it.
    """

    classify: Callable[[Any, Any], Merge] = _never
    join: Callable[[Sequence[Any]], Any] = _last

    @property
    def merges(self) -> bool:
        """Whether any two packets can ever be combined."""
        return self.classify is not _never


_PROGRESS_TYPES: Final = frozenset(
    {"progress", "loadProgress", "downloadProgress", "promptProcessingProgress"}
)


def progress_merge(previous: Any, new: Any) -> Merge:
    """Two consecutive progress packets of the same kind: the later one wins."""
    if type(previous) is not type(new):
        return Merge.NO
    kind = getattr(new, "type", None)
    if kind in _PROGRESS_TYPES:
        return Merge.REPLACE
    if kind == "onFileProcessingStepProgress" and (
        getattr(previous, "index", None) == getattr(new, "index", None)
        and getattr(previous, "step", None) == getattr(new, "step", None)
    ):
        return Merge.REPLACE
    return Merge.NO


NO_MERGE: Final = MergeRule()
"""Packets that can never be combined (log lines, tool calls...)."""

LATEST_PROGRESS: Final = MergeRule(progress_merge)
"""Loads, downloads, file processing: consecutive progress reports keep the latest."""
