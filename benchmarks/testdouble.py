"""The server as a test double: throughput of ``lmsdk serve --scripted`` and the plugin's start.

Figure ``testdouble`` (``benchmarks/run.py --only testdouble``):

* **throughput**: one ``lmsdk serve --scripted --port 0`` process; a load generator process
  (this file run as ``python testdouble.py loadgen '<json>'``) opens ``clients`` websockets
  (the raw floor's frames: no SDK, so the generator costs as little as a client can) and has
  each run ``scripted-llm`` predictions back to back for ``seconds``. Reported: predictions
  per second, and the server process's CPU per prediction (``/proc/<pid>/stat``, Linux),
  which on a shared 2-core machine is the steadier figure (the generator shares the cores);
* **plugin start**: what the ``lmstudio_server`` fixture of the pytest plugin does, in a
  fresh process: import, then ``BackgroundServer(ServerOptions(port=0,
  models=scripted_models()))`` entered until it listens; import and start timed apart.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from run import Row, Run

HERE = Path(__file__).resolve().parent
MODEL = "scripted-llm"

PLUGIN_START = """
import json, time
t0 = time.perf_counter()
from lmstudio_sdk.server import BackgroundServer, ServerOptions, scripted_models
t1 = time.perf_counter()
server = BackgroundServer(ServerOptions(host="127.0.0.1", port=0, models=scripted_models()))
server.__enter__()
t2 = time.perf_counter()
server.__exit__(None, None, None)
t3 = time.perf_counter()
print("RESULT " + json.dumps({"import_s": t1 - t0, "start_s": t2 - t1, "stop_s": t3 - t2}))
"""


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lmsdk() -> list[str]:
    found = shutil.which("lmsdk", path=str(Path(sys.executable).parent))
    return (
        [found]
        if found
        else [
            sys.executable,
            "-c",
            "import sys; from lmstudio_sdk.cli import main; sys.exit(main())",
        ]
    )


def bench_testdouble(run: Run) -> None:
    from run import _clean_env

    c = run.config
    env = _clean_env()
    run.log(f"testdouble: lmsdk serve --scripted, {c['td_clients']} clients, {c['td_seconds']:g} s")
    server = subprocess.Popen(
        [*_lmsdk(), "serve", "--scripted", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        port = None
        for line in server.stdout:
            match = re.search(r"listening on ws://127\.0\.0\.1:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        if port is None:
            run._fail("testdouble", "serve", "lmsdk serve --scripted did not start")
            return
        spec = {"port": port, "clients": c["td_clients"], "seconds": c["td_seconds"]}
        cpu_before = _cpu_s(server.pid)
        proc = subprocess.run(
            [sys.executable, __file__, "loadgen", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=c["timeout"],
            env=env,
        )
        server_cpu = _cpu_s(server.pid) - cpu_before
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        run._fail("testdouble", "loadgen", f"crashed (exit {proc.returncode})", proc.stderr)
        return
    result = json.loads(line[len("RESULT ") :])
    result["server_cpu_s"] = server_cpu
    if result["predictions"] < c["td_clients"]:
        run._fail("testdouble", "loadgen", f"only {result['predictions']} predictions")
    run.raw.setdefault("testdouble", {}).setdefault("serve", []).append(result)

    for index in range(c["td_plugin_runs"]):
        run.log(f"testdouble: plugin start {index + 1}/{c['td_plugin_runs']}")
        proc = subprocess.run(
            [sys.executable, "-c", PLUGIN_START],
            capture_output=True,
            text=True,
            timeout=c["timeout"],
            env=env,
        )
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            run._fail("testdouble", "plugin", f"crashed (exit {proc.returncode})", proc.stderr)
            return
        run.raw.setdefault("testdouble", {}).setdefault("plugin", []).append(
            json.loads(line[len("RESULT ") :])
        )


def summarize_testdouble(run: Run, rows: list[Row], detail: dict[str, Any]) -> None:
    from run import Row, median

    raw = run.raw.get("testdouble")
    if not raw:
        return
    table: dict[str, Any] = {}
    for result in raw.get("serve", []):
        table["serve"] = {
            "clients": result["clients"],
            "predictions": result["predictions"],
            "fragments_per_prediction": result["fragments_per_prediction"],
            "predictions_per_s": result["predictions"] / result["wall_s"],
            "server_cpu_ms_per_prediction": result["server_cpu_s"] / result["predictions"] * 1e3,
            "latency_ms_median": result["latency_ms_median"],
        }
        serve = table["serve"]
        rows.append(
            Row(
                "testdouble",
                f"scripted predictions/s, one `lmsdk serve --scripted`, {serve['clients']} clients",
                serve["predictions_per_s"],
                "/s",
                reference=f"server CPU {serve['server_cpu_ms_per_prediction']:.2f} ms/prediction",
                target="reported",
            )
        )
    plugin = raw.get("plugin", [])
    if plugin:
        table["plugin"] = {
            "import_ms": median([r["import_s"] * 1e3 for r in plugin]),
            "start_ms": median([r["start_s"] * 1e3 for r in plugin]),
            "stop_ms": median([r["stop_s"] * 1e3 for r in plugin]),
            "runs": len(plugin),
        }
        p = table["plugin"]
        rows.append(
            Row(
                "testdouble",
                "pytest plugin: scripted server start (lmstudio_server fixture), median",
                p["start_ms"],
                "ms",
                reference=f"import of lmstudio_sdk.server: {p['import_ms']:.0f} ms",
                target="reported",
            )
        )
    detail["testdouble"] = table


# --------------------------------------------------------------------------- load generator


async def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path.insert(0, str(HERE / "contenders"))
    from _raw import auth_frame, dumps, loads, predict_frame
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{spec['port']}/llm"
    latencies: list[float] = []
    fragments_seen: list[int] = []
    deadline = 0.0

    async def load(ws: Any) -> None:
        await ws.send(
            dumps(
                {
                    "type": "channelCreate",
                    "endpoint": "getOrLoad",
                    "channelId": 1,
                    "creationParameter": {
                        "identifier": MODEL,
                        "loadConfigStack": {"layers": []},
                    },
                }
            )
        )
        while True:
            msg = loads(await ws.recv())
            if msg.get("type") == "channelClose":
                return
            if msg.get("type") == "channelError":
                raise RuntimeError(f"getOrLoad failed: {msg}")

    connected = [0]
    all_connected = asyncio.Event()

    async def client(index: int, ready: asyncio.Event) -> None:
        async with connect(url, compression=None, proxy=None, max_size=None) as ws:
            await ws.send(auth_frame())
            if loads(await ws.recv()).get("success") is not True:
                raise RuntimeError("authentication failed")
            if index == 0:
                await load(ws)
            connected[0] += 1
            if connected[0] == spec["clients"]:
                all_connected.set()
            await ready.wait()
            channel = 1
            while time.perf_counter() < deadline:
                channel += 1
                t0 = time.perf_counter()
                await ws.send(predict_frame(channel, MODEL))
                fragments = 0
                while True:
                    msg = loads(await ws.recv())
                    kind = msg["type"]
                    if kind == "channelSend" and msg["message"]["type"] == "fragment":
                        fragments += 1
                    elif kind == "channelClose":
                        break
                    elif kind == "channelError":
                        raise RuntimeError(f"channelError: {msg['error']}")
                latencies.append(time.perf_counter() - t0)
                fragments_seen.append(fragments)

    ready = asyncio.Event()
    tasks = [asyncio.create_task(client(i, ready)) for i in range(spec["clients"])]
    await all_connected.wait()  # every socket open and the model loaded
    start = time.perf_counter()
    deadline = start + spec["seconds"]
    ready.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "clients": spec["clients"],
        "predictions": len(latencies),
        "wall_s": wall,
        "latency_ms_median": latencies[len(latencies) // 2] * 1e3 if latencies else None,
        "fragments_per_prediction": max(fragments_seen, default=0),
    }


if __name__ == "__main__" and sys.argv[1:2] == ["loadgen"]:
    print("RESULT " + json.dumps(asyncio.run(_loadgen(json.loads(sys.argv[2])))), flush=True)
