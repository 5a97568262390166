"""The benchmark server: lmstudio-sdk's local server with the benchmark models, in its own process.

Started by ``benchmarks/run.py`` as ``python benchmarks/_server.py '<json config>'``. It
prints ``READY {"port": ..., "models": [...]}`` once it listens, then answers commands on
stdin, one per line, each with one line ``OK <json>`` (or ``ERR <text>``):

* ``preload KEY...``: load the models not loaded yet (over the wire, with ``loadModel``,
  as ``lms load`` does: explicit loads, which no JIT load evicts);
* ``stats``: ``{"open_predict": n, "peak_open_predict": n, "predictions": n,
  "open_channels": n, "peak_open_channels": n}``;
* ``reset``: zero the peak and the count;
* ``quit``: stop the server and exit (also on end of input).

The scripted models (see ``contenders/_common.py`` for the keys):

* ``bench-stream``: ``stream_n`` fragments ``"tok "``, paced at ``stream_fps`` per second
  (0: as fast as possible);
* ``bench-stream-paced``: ``paced_n`` fragments paced at ``paced_fps`` per second;
* ``bench-fast``: one fragment, which ``_fastsource.py`` relays ``n`` times;
* ``bench-stream-warmup``: 2,000 fragments as fast as possible (warm-up predictions);
* ``bench-cancel``: 20,000 fragments paced at ``cancel_fps`` per second;
* ``bench-concurrent``: ``conc_n`` fragments after a ``conc_delay`` second pause (so that
  every channel of a burst is open at the same time before any finishes);
* ``bench-concurrent-warmup``: the same without the pause.

With ``"llama": true`` SmolLM2-135M-Instruct (llama.cpp) is served too, when installed.

Open predict channels are counted by the server itself (``server.stats``, per endpoint
``llm.predict``): a channel counts as open from the moment its handler starts until it
returns, just before the server sends ``channelClose``. ``stats`` also reports every open
channel (``open_channels``, ``peak_open_channels``), whatever its endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "contenders"))

from _common import (
    CANCEL_MODEL,
    CONCURRENT_MODEL,
    FAST_MODEL,
    FRAGMENT_TEXT,
    LLAMA_MODEL,
    PACED_MODEL,
    STREAM_MODEL,
    STREAM_WARMUP_MODEL,
)

from lmstudio_sdk.server import (
    Faults,
    RunningServer,
    Script,
    ServerOptions,
    bundled_models,
    running_server,
    scripted_model,
)

CANCEL_FRAGMENTS = 20_000
WARMUP_FRAGMENTS = 2_000


PREDICT = "llm.predict"


def _stats(server: RunningServer) -> dict[str, int]:
    snapshot = server.stats.snapshot()
    return {
        "open_predict": snapshot.open_by_endpoint.get(PREDICT, 0),
        "peak_open_predict": snapshot.peak_open_by_endpoint.get(PREDICT, 0),
        "predictions": snapshot.opened_by_endpoint.get(PREDICT, 0),
        "open_channels": snapshot.open_channels,
        "peak_open_channels": snapshot.peak_open_channels,
    }


def _models(config: dict[str, Any]) -> list[Any]:
    n = config["stream_n"]
    context = max(32_768, n + 1_024)
    models = [
        scripted_model(
            STREAM_MODEL,
            script=Script(
                fragments=(FRAGMENT_TEXT,) * n, fragments_per_second=config["stream_fps"]
            ),
            max_context_length=context,
        ),
        scripted_model(
            PACED_MODEL,
            script=Script(
                fragments=(FRAGMENT_TEXT,) * config["paced_n"],
                fragments_per_second=config["paced_fps"],
            ),
            max_context_length=max(32_768, config["paced_n"] + 1_024),
        ),
        # One fragment: _fastsource.py sends it n times (see there).
        scripted_model(FAST_MODEL, script=Script(fragments=(FRAGMENT_TEXT,))),
        scripted_model(
            STREAM_WARMUP_MODEL, script=Script(fragments=(FRAGMENT_TEXT,) * WARMUP_FRAGMENTS)
        ),
        scripted_model(
            CANCEL_MODEL,
            script=Script(
                fragments=(FRAGMENT_TEXT,) * CANCEL_FRAGMENTS,
                fragments_per_second=config["cancel_fps"],
            ),
            max_context_length=context,
        ),
        scripted_model(
            CONCURRENT_MODEL,
            script=Script(fragments=(FRAGMENT_TEXT,) * config["conc_n"]),
            faults=Faults(delay=config["conc_delay"]),
        ),
        scripted_model(
            CONCURRENT_MODEL + "-warmup",
            script=Script(fragments=(FRAGMENT_TEXT,) * config["conc_n"]),
        ),
    ]
    if config.get("llama"):
        models.extend(m for m in bundled_models() if m.key == LLAMA_MODEL)
    return models


async def _preload(port: int, keys: list[str], contexts: dict[str, int]) -> None:
    """Load models the way ``lms load`` does: ``loadModel`` on ``/llm``.

    Not ``getOrLoad``: the server evicts earlier JIT (``getOrLoad``) loads when it makes a
    new one, as LM Studio does, and the raw floors need every model loaded at once.
    """
    from websockets.asyncio.client import connect

    async with connect(
        f"ws://127.0.0.1:{port}/llm", compression=None, proxy=None, max_size=None
    ) as ws:
        await ws.send(
            json.dumps(
                {
                    "authVersion": 1,
                    "clientIdentifier": f"guest:preload-{os.getpid()}",
                    "clientPasskey": "preload",
                }
            )
        )
        reply = json.loads(await ws.recv())
        if not reply.get("success"):
            raise RuntimeError(f"preload: authentication failed: {reply}")
        for channel_id, key in enumerate(keys, start=1):
            fields = []
            if key in contexts:
                fields.append({"key": "llm.load.contextLength", "value": contexts[key]})
            await ws.send(
                json.dumps(
                    {
                        "type": "channelCreate",
                        "endpoint": "loadModel",
                        "channelId": channel_id,
                        "creationParameter": {
                            "modelKey": key,
                            "identifier": key,
                            "loadConfigStack": {
                                "layers": [
                                    {"layerName": "apiOverride", "config": {"fields": fields}}
                                ]
                            },
                        },
                    }
                )
            )
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "channelClose" and msg.get("channelId") == channel_id:
                    break
                if msg.get("type") in ("channelError", "communicationWarning"):
                    raise RuntimeError(f"preload of {key} failed: {msg}")


async def main() -> None:
    config = json.loads(sys.argv[1])
    models = _models(config)
    contexts = {m.key: m.facts.max_context_length for m in models if m.key != LLAMA_MODEL}
    options = ServerOptions(
        port=config["port"],
        models=models,
        strict_errors=True,
        llama_threads=config.get("llama_threads", 2),
    )
    loop = asyncio.get_running_loop()
    async with running_server(options) as server:
        print("READY " + json.dumps({"port": server.port, "models": server.model_keys}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command, *args = line.split() or ["quit"]
            try:
                if command == "quit":
                    break
                if command == "stats":
                    reply: dict[str, Any] = _stats(server)
                elif command == "reset":
                    server.stats.reset()
                    reply = {}
                elif command == "preload":
                    loaded = set(server.loaded_identifiers())
                    await _preload(server.port, [k for k in args if k not in loaded], contexts)
                    reply = {"loaded": server.loaded_identifiers()}
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # report, keep serving
                print(f"ERR {type(exc).__name__}: {exc}", flush=True)
                continue
            print("OK " + json.dumps(reply), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
