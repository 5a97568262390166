"""``lmsdk version``: the SDK's version and the server's."""

from __future__ import annotations

import argparse

from .._version import __version__
from ._common import add_command, command, session

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``version`` command."""
    add_command(subparsers, "version", _version, "show the SDK's and the server's versions")


@command
def _version(args: argparse.Namespace) -> int:
    """Show the SDK's version and the LM Studio version of the server."""
    print(f"lmstudio-sdk {__version__}", flush=True)
    with session(args) as client:
        version = client.system.version()
        print(f"server {version.version} (build {version.build}) at {client.base_url}")
    return 0
