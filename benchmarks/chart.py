"""The standing at a glance: ``standing.png`` beside ``RESULTS.md``, drawn from the run's figures.

Left: each SDK's client CPU per fragment above the raw floor of its backend (from the fast
source when that ran, else from the server-fed ``stream``/``paced`` figures), ours beside the
official client. Right: the ``listLoaded`` round trip, median, with the floors.

Needs matplotlib (in the ``bench`` tox env); without it the run notes that no chart was
drawn and goes on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

FILENAME = "standing.png"

#: (contender, floor, label, colour): ours in blue shades, the official client in orange.
OVERHEAD_BARS = (
    ("ours_trio", "raw_trio", "ours, Trio", "#1f4e9c"),
    ("ours_asyncio", "raw_asyncio", "ours, asyncio", "#4f8fe0"),
    ("official_async", "raw_asyncio", "official, async", "#e07b1f"),
    ("ours_sync", "raw_asyncio", "ours, sync facade", "#9cc3f0"),
    ("official_sync", "raw_asyncio", "official, sync", "#f2b36f"),
)
RPC_BARS = (
    ("raw_trio", "floor, Trio", "#9a9a9a"),
    ("ours_trio", "ours, Trio", "#1f4e9c"),
    ("raw_asyncio", "floor, asyncio", "#c4c4c4"),
    ("ours_asyncio", "ours, asyncio", "#4f8fe0"),
    ("official_async", "official, async", "#e07b1f"),
    ("ours_sync", "ours, sync facade", "#9cc3f0"),
    ("official_sync", "official, sync", "#f2b36f"),
)


def _overheads(detail: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
    """``{pace: {contender: µs above its floor}}`` and where the figures came from."""
    if "fast" in detail or "fastpaced" in detail:
        figures, source = (("fast", "burst"), ("fastpaced", "paced")), "fast source"
    else:
        figures, source = (("stream", "burst"), ("paced", "paced")), "our server as source"
    result: dict[str, dict[str, float]] = {}
    for figure, pace in figures:
        table = detail.get(figure)
        if not table:
            continue
        result[pace] = {
            name: table[name]["cpu_us_per_fragment"] - table[floor]["cpu_us_per_fragment"]
            for name, floor, _, _ in OVERHEAD_BARS
            if name in table and floor in table
        }
    return source, result


def draw(detail: dict[str, Any], out_dir: Path, subtitle: str = "") -> Path | None:
    """Write ``standing.png`` into ``out_dir``; None when matplotlib or the figures are missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    source, overheads = _overheads(detail)
    rpc = detail.get("rpc", {})
    if not overheads and not rpc:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.6), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(OVERHEAD_BARS)
    paces = list(overheads)
    for i, (name, floor, label, colour) in enumerate(OVERHEAD_BARS):
        values = [overheads[pace].get(name, math.nan) for pace in paces]
        xs = [p + (i - (len(OVERHEAD_BARS) - 1) / 2) * width for p in range(len(paces))]
        bars = left.bar(xs, values, width, label=f"{label} (floor: {floor})", color=colour)
        left.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    left.set_xticks(range(len(paces)), [f"{pace}" for pace in paces])
    left.set_ylabel("client CPU µs per fragment above the floor")
    left.set_title(f"SDK overhead per fragment ({source}; lower is better)", fontsize=10)
    left.axhline(0, color="black", linewidth=0.6)
    left.legend(fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    names = [(n, label, colour) for n, label, colour in RPC_BARS if n in rpc]
    values = [rpc[n]["median_us"] for n, _, _ in names]
    bars = right.bar(range(len(names)), values, color=[c for _, _, c in names])
    right.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    right.set_xticks(range(len(names)), [label for _, label, _ in names], rotation=35, ha="right")
    right.set_ylabel("µs, median")
    right.set_title("listLoaded round trip (lower is better)", fontsize=10)
    if subtitle:
        fig.suptitle(subtitle, fontsize=9)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / FILENAME
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
