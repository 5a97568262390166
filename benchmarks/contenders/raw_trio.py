"""Floor: a raw trio-websocket loop, no SDK (see ``_raw.py``)."""

from __future__ import annotations

import time
from typing import Any

from _common import run_contender


def _url(spec: dict[str, Any]) -> str:
    return f"ws://{spec['host']}/llm"


def _run(scenario_name: str):  # type: ignore[no-untyped-def]
    def scenario(spec: dict[str, Any]) -> dict[str, Any]:
        import _raw
        import trio
        import trio_websocket

        class Socket:
            def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
                self.send = ws.send_message
                self.recv = ws.get_message

        async def main() -> dict[str, Any]:
            async with trio_websocket.open_websocket_url(
                _url(spec),
                message_queue_size=16,
                max_message_size=_raw.MAX_MESSAGE_SIZE,
                receive_buffer_size=64 * 1024,
            ) as ws:
                sock = Socket(ws)
                await _raw.authenticate(sock)
                if scenario_name == "startup":
                    result = await _raw.list_loaded(sock, 1)
                    return {"t_first_result": time.monotonic(), "loaded": len(result)}
                run = getattr(_raw, f"scenario_{scenario_name}")
                return await run(sock, spec)

        return trio.run(main)

    return scenario


if __name__ == "__main__":
    run_contender(
        {name: _run(name) for name in ("stream", "rpc", "cancel", "concurrent", "startup")}
    )
