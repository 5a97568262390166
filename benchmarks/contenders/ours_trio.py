"""Our async client (``lmstudio_sdk.AsyncClient``) under Trio (``trio.run``); scenarios in ``_ours.py``."""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

from _common import UNSUPPORTED, run_contender

NEEDS_STREAMING = ("stream", "cancel", "concurrent", "llama")


def _scenario(name: str):  # type: ignore[no-untyped-def]
    def scenario(spec: dict[str, Any]) -> dict[str, Any]:
        t_start = time.monotonic()
        import _ours
        import trio

        t_imported = time.monotonic()
        if name in NEEDS_STREAMING and not _ours.supported():
            print("lmstudio_sdk: model handles have no respond_stream yet", file=sys.stderr)
            sys.exit(UNSUPPORTED)
        coro = getattr(_ours, name)
        if name == "startup":
            coro = functools.partial(coro, t_start=t_start, t_imported=t_imported)
        return trio.run(functools.partial(coro, spec))

    return scenario


if __name__ == "__main__":
    run_contender(
        {
            name: _scenario(name)
            for name in ("stream", "rpc", "startup", "cancel", "concurrent", "llama")
        }
    )
