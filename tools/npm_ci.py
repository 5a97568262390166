"""Install the official JS client for the interop tests: ``npm ci`` inside ``tests/interop``.

Run from the repository root (tox's ``model`` env does). npm runs with ``tests/interop`` as
its working directory rather than with ``--prefix``: with ``--prefix X`` npm reads its
*global* configuration from ``X/etc/npmrc`` instead of the machine's, and so loses settings
such as the ``cafile`` of a machine behind a TLS-inspecting proxy. ``npm ci`` installs
exactly what ``package-lock.json`` pins. npm's own output is not silenced, so the reason
for a failure reaches the log.

Usage: python tools/npm_ci.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "tests" / "interop"
# --prefer-offline: use the npm cache when it has the pinned versions, without asking the
# registry about each one; an empty cache still downloads them.
NPM_CI = ("ci", "--no-audit", "--no-fund", "--prefer-offline")


def main() -> int:
    """Run ``npm ci`` in ``tests/interop``; returns npm's exit status."""
    npm = shutil.which("npm")
    if npm is None:
        print(
            "npm_ci: npm is not on PATH; the interop tests need Node.js 18+ and npm "
            "(e.g. apt-get install nodejs npm)",
            file=sys.stderr,
        )
        return 1
    command = [npm, *NPM_CI]
    print(f"npm_ci: in {PACKAGE_DIR}: {' '.join(['npm', *NPM_CI])}", flush=True)
    status = subprocess.run(command, cwd=PACKAGE_DIR, check=False).returncode
    if status != 0:
        print(
            f"npm_ci: npm ci failed (exit {status}) in {PACKAGE_DIR}; npm's messages above "
            "say why (its full log is under the npm cache's _logs directory)",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
