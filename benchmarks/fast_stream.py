"""Streaming from a source that is never the bottleneck: the SDK's own overhead per fragment.

The figures ``fast`` (burst) and ``fastpaced`` (``paced_fps`` per second) run every
contender's ``stream`` scenario against ``_fastsource.py``, a relay in front of the
benchmark server that multiplies the one fragment of ``bench-fast`` into ``n`` pre-encoded
websocket frames. Per backend, an SDK's overhead is its client CPU per fragment minus the
raw floor's on the same backend, both from this run:

* ours on Trio against the Trio floor; ours on asyncio, the official async client, ours
  through the blocking facade and the official sync client against the asyncio floor;
* the ratio ours/official compares those overheads (async with async, sync with sync).
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from run import Row, Run

HERE = Path(__file__).resolve().parent
SOURCE_SCRIPT = HERE / "_fastsource.py"

FIGURES = ("fast", "fastpaced")
#: The floor each contender's overhead is measured above.
FLOOR_OF = {
    "ours_trio": "raw_trio",
    "ours_asyncio": "raw_asyncio",
    "ours_sync": "raw_asyncio",
    "official_async": "raw_asyncio",
    "official_sync": "raw_asyncio",
}
#: Ours against the official client of the same kind.
OURS_VS_OFFICIAL = {
    "ours_trio": "official_async",
    "ours_asyncio": "official_async",
    "ours_sync": "official_sync",
}
TARGET_RATIO = 0.25


@contextlib.contextmanager
def fast_source(upstream: str, n: int, fps: float) -> Iterator[str]:
    """Run ``_fastsource.py`` relaying to ``upstream``; yields its ``host:port``."""
    from run import _clean_env

    config = {"upstream": upstream, "n": n, "fps": fps, "port": 0}
    proc = subprocess.Popen(
        [sys.executable, str(SOURCE_SCRIPT), json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"the fast stream source did not start: {line!r}")
        yield f"127.0.0.1:{json.loads(line[len('READY ') :])['port']}"
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fast_spec(config: dict[str, Any], figure: str) -> tuple[dict[str, Any], float]:
    """A contender's spec for ``figure`` (without the host), and the source's pace."""
    from _common import FAST_MODEL

    paced = figure == "fastpaced"
    spec = {
        "scenario": "stream",
        "model": FAST_MODEL,
        "warmup_model": FAST_MODEL,
        "n": config["paced_n"] if paced else config["stream_n"],
        "samples": config["fast_samples"],
        "warmup": config["fast_warmup"],
    }
    return spec, config["paced_fps"] if paced else 0.0


@contextlib.contextmanager
def fast_host(run: Run, figure: str) -> Iterator[tuple[dict[str, Any], float]]:
    """Start the fast source for ``figure``; yields the spec (with its host) and the pace."""
    from _common import FAST_MODEL

    spec, fps = fast_spec(run.config, figure)
    if run.server is not None:
        # The raw floors name the model in their query; the SDKs load it with getOrLoad.
        run.server.command(f"preload {FAST_MODEL}")
    with fast_source(run.host, spec["n"], fps) as host:
        yield {**spec, "host": host}, fps


def bench_fast(run: Run, figure: str) -> None:
    """Every contender streams ``n`` fragments from the fast source, round after round."""
    from run import ALL, _check_stream

    c = run.config
    rounds = c["paced_rounds"] if figure == "fastpaced" else c["stream_rounds"]
    with fast_host(run, figure) as (spec, fps):
        n = spec["n"]
        pace = f"paced at {fps:,.0f}/s" if fps else "burst"
        for round_ in run.rounds(figure, rounds):
            run.log(f"{figure}: round {round_ + 1}/{rounds}, {n:,} fragments, fast source, {pace}")
            for name in run.wanted(ALL):
                run.contender(figure, name, spec, check=_check_stream(n, name))


def summarize_fast(run: Run, rows: list[Row], detail: dict[str, Any]) -> None:
    """Overhead above the floor per contender, and ours/official, for both fast figures."""
    from run import FRAGMENT_TEXT, LABEL, Row, median

    for figure in FIGURES:
        if figure not in run.raw:
            continue
        cpu: dict[str, float] = {}
        table: dict[str, Any] = {}
        for name, results in run.raw[figure].items():
            samples = [s for r in results for s in r["samples"]]
            per_fragment = [s["cpu_s"] / (s["chars"] / len(FRAGMENT_TEXT)) * 1e6 for s in samples]
            cpu[name] = median(per_fragment)
            table[name] = {
                "cpu_us_per_fragment": cpu[name],
                "cpu_us_per_fragment_samples": per_fragment,
                "events": median([s["fragments"] for s in samples]),
                "fragments": median([s["chars"] / len(FRAGMENT_TEXT) for s in samples]),
                "samples": len(samples),
            }
        overhead = {
            name: cpu[name] - cpu[floor]
            for name, floor in FLOOR_OF.items()
            if name in cpu and floor in cpu
        }
        for name, value in overhead.items():
            table[name]["overhead_us_per_fragment"] = value
            table[name]["floor"] = FLOOR_OF[name]
        detail[figure] = table
        pace = "burst" if figure == "fast" else f"paced {run.config['paced_fps']:,.0f}/s"
        for name, official in OURS_VS_OFFICIAL.items():
            if name not in run.contenders:
                continue
            value = overhead.get(name, math.nan)
            base = overhead.get(official, math.nan)
            ratio = value / base if base > 0 and not math.isnan(value) else math.nan
            events_ok = name in table and table[name]["events"] == table[name]["fragments"]
            met = None if math.isnan(ratio) else ratio <= TARGET_RATIO and events_ok
            rows.append(
                Row(
                    figure,
                    f"SDK overhead per fragment above the {FLOOR_OF[name]} floor, fast source, "
                    f"{pace}: {LABEL.get(name, name)}"
                    + ("" if events_ok else " (events < fragments: merged)"),
                    value,
                    "µs",
                    reference=f"{LABEL.get(official, official)}: {base:,.2f} µs",
                    ratio=ratio,
                    target=f"<= {TARGET_RATIO:g}x",
                    met=met,
                )
            )


def render_fast(detail: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Markdown tables of both fast figures (empty when neither ran)."""
    from run import LABEL, _ordered

    lines: list[str] = []
    for figure in FIGURES:
        if figure not in detail:
            continue
        n = config["paced_n"] if figure == "fastpaced" else config["stream_n"]
        pace = f"paced at {config['paced_fps']:,.0f}/s" if figure == "fastpaced" else "burst"
        lines += [
            f"### Fast source ({n:,} pre-encoded fragments, {pace}): overhead above the floor",
            "",
            "| contender | CPU µs/fragment | floor | overhead µs/fragment | fragments | events "
            "| samples |",
            "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        for name, t in _ordered(detail[figure]):
            overhead = t.get("overhead_us_per_fragment")
            lines.append(
                f"| {LABEL.get(name, name)} | {t['cpu_us_per_fragment']:.2f} | "
                f"{t.get('floor', '(floor)')} | "
                + ("" if overhead is None else f"{overhead:.2f}")
                + f" | {t['fragments']:,.0f} | {t['events']:,.0f} | {t['samples']} |"
            )
        lines.append("")
    return lines
