"""Test-wide settings.

Determinism rules: no test sleeps to wait for something; timing-dependent scenarios run on
Trio's autojump clock over the in-memory transport only (the mock clock must never meet
real sockets). Every async test runs on asyncio and on Trio.
"""

from __future__ import annotations

import os
import sys

import pytest
import trio.testing

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Every async test runs on asyncio and on Trio (real clocks)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def autojump_backend() -> tuple[str, dict[str, object]]:
    """Trio with a mock clock that jumps ahead whenever every task is blocked.

    Use only with the in-memory transport: override ``anyio_backend`` in the test module
    with this fixture's value.
    """
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


_MUST_RUN_MARKERS = ("model", "interop")
# Notebook tests need ipykernel and nbclient, which only the tox env py311 installs.
_MUST_RUN_ON_311 = ("notebook",)


def _must_run(item: pytest.Item) -> bool:
    if any(item.get_closest_marker(m) for m in _MUST_RUN_MARKERS):
        return True
    return sys.version_info[:2] == (3, 11) and any(
        item.get_closest_marker(m) for m in _MUST_RUN_ON_311
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI=true a skipped ``model`` or ``interop`` test is a failure, not a skip; so
    is a skipped ``notebook`` test on Python 3.11 (the tox env py311 installs a kernel)."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get("CI", "").lower() in ("1", "true", "yes")
        and _must_run(item)
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed for this test: {reason}"
