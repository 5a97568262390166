"""What every contender shares: the workload, the measurements and the result line.

A contender is a script run in its own process by ``benchmarks/run.py``::

    python benchmarks/contenders/<name>.py '<json spec>'

The spec names one scenario and its sizes; the script runs it against the server at
``spec["host"]`` and prints one line ``RESULT <json>`` on stdout. The harness checks the
counts in that line (every contender must receive exactly the fragments the scripted model
sends); a contender never judges timings.

This module imports only the standard library: the ``startup`` scenario times the import of
the client library itself, so nothing heavy may be loaded before it starts.

Scenarios (a contender implements those it supports):

* ``stream``: ``samples`` predictions of ``n`` fragments each, one after another, on one
  connection; per sample: client CPU time (user + system, all threads) and wall time.
* ``rpc``: ``count`` sequential ``llm.listLoaded`` calls, then ``count`` ``tokenize``
  calls of ``text`` on the loaded model ``model``; per call: round-trip time.
* ``startup``: import + discover (or use ``host``) + connect + authenticate + one
  ``listLoaded``; reports ``time.monotonic()`` at the first result (the harness noted it
  before spawning the process, CLOCK_MONOTONIC is system-wide).
* ``cancel``: ``samples`` predictions on a paced model; after ``after`` fragments the
  prediction is abandoned (scope exit); per sample: time from the scope exit to the end of
  the scope, which for our client means ``channelClose`` was received.
* ``concurrent``: ``channels`` predictions of ``n`` fragments each, all at once on one
  client; client CPU per fragment, RSS before and while all are open.
* ``llama``: ``samples`` greedy predictions of the real model; tokens/s end to end.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

#: Every fragment of the scripted benchmark models is this text (one token each).
FRAGMENT_TEXT = "tok "
#: The user message every contender sends to the scripted models.
PROMPT = "Hi"
#: The short string every contender tokenizes in the ``rpc`` scenario.
TOKENIZE_TEXT = "Hello, world!"
#: The user message of the real-model benchmark (greedy decoding, so every run says the same).
PROMPT_LLAMA = "Write a long story about a lighthouse keeper who finds a message in a bottle."

#: Exit status of a contender for a scenario its client cannot run yet.
UNSUPPORTED = 3

#: Model keys served by ``benchmarks/_server.py``.
STREAM_MODEL = "bench-stream"
STREAM_WARMUP_MODEL = "bench-stream-warmup"
PACED_MODEL = "bench-stream-paced"
CANCEL_MODEL = "bench-cancel"
CONCURRENT_MODEL = "bench-concurrent"
LLAMA_MODEL = "smollm2-135m-instruct"
#: One fragment, which ``benchmarks/_fastsource.py`` multiplies (the fast stream source).
FAST_MODEL = "bench-fast"

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    """Resident set size now, in KiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_KIB


def max_rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB (``ru_maxrss`` on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class Sampler:
    """Times one sample: CPU (all threads of this process) and wall clock."""

    __slots__ = ("_cpu0", "_t0", "cpu", "wall")

    def __enter__(self) -> Sampler:
        self._cpu0 = cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = cpu_seconds() - self._cpu0


def stream_sample(sampler: Sampler, fragments: int, chars: int, **extra: Any) -> dict[str, Any]:
    """One ``stream`` sample, as reported."""
    return {
        "cpu_s": sampler.cpu,
        "wall_s": sampler.wall,
        "fragments": fragments,
        "chars": chars,
        **extra,
    }


def timed_calls(count: int, call: Callable[[], Any]) -> dict[str, Any]:
    """``count`` sequential calls of a blocking ``call``: latencies and CPU (``rpc``)."""
    latencies = []
    with Sampler() as s:
        for _ in range(count):
            t0 = time.perf_counter()
            call()
            latencies.append(time.perf_counter() - t0)
    return {"latencies_s": latencies, "cpu_s": s.cpu, "wall_s": s.wall, "calls": count}


async def atimed_calls(count: int, call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """``count`` sequential awaited calls: latencies and CPU (``rpc``)."""
    latencies = []
    with Sampler() as s:
        for _ in range(count):
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)
    return {"latencies_s": latencies, "cpu_s": s.cpu, "wall_s": s.wall, "calls": count}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_contender(scenarios: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Entry point of a contender script: run the scenario named in ``argv[1]``'s spec."""
    spec = json.loads(sys.argv[1])
    scenario = spec["scenario"]
    if scenario not in scenarios:
        print(f"unsupported scenario {scenario!r}", file=sys.stderr)
        sys.exit(3)
    try:
        result = scenarios[scenario](spec)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)  # do not hang on a stuck background thread of a broken client
    result.setdefault("max_rss_kib", max_rss_kib())
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Some clients leave non-daemon threads behind; the result is out, so leave now.
    os._exit(0)
