"""Load: a token-protected server keeps serving while it is flooded (``tox -e soak`` only).

``lmsdk serve --api-token-file`` runs in its own process. A well-behaved client measures
its RPC latency; then another process opens 500 idle websockets and keeps 4
unauthenticated sockets sending 60 MB frames. The client measures in interleaved rounds,
with the attacker paused (SIGSTOP; its sockets stay open) and flooding: its median latency
under attack must stay within 2x, and the server's resident memory under 300 MB.
Loopback only; bounded in time.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from lmstudio_sdk import AsyncClient

pytestmark = pytest.mark.soak

TOKEN = "sk-lm-Load1234:Abcd5678Efgh9012Ijkl"
CALLS = 300
ROUNDS = 10
RSS_LIMIT = 300 * 2**20


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    command = [sys.executable, "-m", "lmstudio_sdk", "serve", "--scripted", "--port", "0"]
    with subprocess.Popen(
        [*command, "--api-token-file", str(tokens)], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "listening on ws://" in first, first
        url = first.rsplit(" ", 1)[1].strip()
        try:
            yield process, url
        finally:
            process.terminate()
            process.wait(15)


def server_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def latencies(client: AsyncClient, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await client.system.version()
        times.append(time.perf_counter() - start)
    return times


def _start_attacker(script: Path, port: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(script), port]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.mark.timeout(300)
async def test_a_flooded_server_keeps_serving_a_good_client(
    served: tuple[subprocess.Popen[str], str], anyio_backend: object
) -> None:
    process, url = served
    port = url.rsplit(":", 1)[1]
    attack = Path(__file__).with_name("_attack.py")
    async with AsyncClient(url, api_token=TOKEN) as client:
        await latencies(client, CALLS)  # warm-up
        before = statistics.median(await latencies(client, CALLS))
        with await anyio.to_thread.run_sync(_start_attacker, attack, port) as attacker:
            assert attacker.stdout is not None
            assert attacker.stdin is not None
            line = await anyio.to_thread.run_sync(attacker.stdout.readline)
            assert line.strip() == "ready", line
            # Interleaved rounds, so that both figures see the same (shared, noisy) machine:
            # the attacker paused (its 500 idle sockets stay open), then flooding again.
            paused: list[float] = []
            flooding: list[float] = []
            for _ in range(ROUNDS):
                attacker.send_signal(signal.SIGSTOP)
                paused += await latencies(client, CALLS // ROUNDS)
                attacker.send_signal(signal.SIGCONT)
                flooding += await latencies(client, CALLS // ROUNDS)
            rss = server_rss(process.pid)
            attacker.stdin.close()
            report = (await anyio.to_thread.run_sync(attacker.stdout.read)).split()
            attacker.wait(60)
        assert (await client.system.version()).version
    _, idle_open, floods, idle_for = report
    normal, during = statistics.median(paused), statistics.median(flooding)
    print(
        f"\nload: median RPC {before * 1e3:.2f} ms before, {normal * 1e3:.2f} ms with the "
        f"attacker paused, {during * 1e3:.2f} ms under attack ({floods} 60 MB frames "
        f"tried, {idle_open} of 500 idle sockets still open after {idle_for} s); server RSS "
        f"{rss / 2**20:.0f} MiB"
    )
    assert int(idle_open) == 500
    assert int(floods) >= 4
    assert during <= 2 * normal
    assert rss < RSS_LIMIT
