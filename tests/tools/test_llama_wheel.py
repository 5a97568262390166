"""tools/llama_wheel.py: the wheel is built once, under a lock, and says what it is doing.

The build command is replaced by a fake one: a real llama.cpp build takes minutes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
VERSION = "0.3.36"

# Runs the script's main() with a fake build that announces itself, then waits for a line
# on stdin before it writes its wheel: so the test decides when the first build ends, and
# the second run is certainly started while the first one holds the lock.
DRIVER = textwrap.dedent(
    f"""
    import sys
    from pathlib import Path
    sys.path.insert(0, {str(TOOLS)!r})
    import llama_wheel

    cache, log = Path(sys.argv[1]), Path(sys.argv[2])

    def fake_build(dest):
        with log.open("a") as f:
            f.write("build\\n")
        print("fake build started", flush=True)
        sys.stdin.readline()
        (dest / "llama_cpp_python-{VERSION}-py3-none-linux_x86_64.whl").write_bytes(b"wheel")

    llama_wheel.main([], cache=cache, build=fake_build)
    """
)


def _start(cache: Path, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(cache), str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], marker: str) -> list[str]:
    """Lines of ``proc`` up to the one containing ``marker`` (pytest-timeout bounds it)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"the process ended before printing {marker!r}: {lines}")
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines


def test_two_runs_at_once_on_an_empty_cache_build_once(tmp_path: Path) -> None:
    cache, log = tmp_path / "wheels", tmp_path / "builds.log"
    first = _start(cache, log)
    second = None
    try:
        first_lines = _read_until(first, "fake build started")
        second = _start(cache, log)
        second_lines = _read_until(second, "waiting for it")
        first_out, _ = first.communicate("go\n", timeout=60)  # the first build ends
        second_out, _ = second.communicate(timeout=60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert first.returncode == 0, first_out
    assert second.returncode == 0, second_out
    assert log.read_text().splitlines() == ["build"]  # one build for the two runs

    wheel = cache / f"llama_cpp_python-{VERSION}-py3-none-linux_x86_64.whl"
    first_text = "\n".join(first_lines) + "\n" + first_out
    second_text = "\n".join(second_lines) + "\n" + second_out
    # The first run says where the wheel goes and how long the first build takes.
    assert f"will be cached in {cache}" in first_text
    assert "3-15 minutes on 2 cores" in first_text
    # The second one says it waits for the other build, then reuses its wheel.
    assert "another process is building the wheel" in second_text
    assert f"reusing the wheel another process just built: {wheel}" in second_text
    assert first_out.splitlines()[-1] == second_out.splitlines()[-1] == str(wheel)
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [wheel.name]


def test_a_cached_wheel_is_reused_without_building(tmp_path: Path) -> None:
    sys.path.insert(0, str(TOOLS))
    try:
        import llama_wheel
    finally:
        sys.path.remove(str(TOOLS))
    wheel = tmp_path / f"llama_cpp_python-{VERSION}-py3-none-any.whl"
    wheel.write_bytes(b"wheel")

    def no_build(dest: Path) -> None:
        raise AssertionError("built although the cache has the wheel")

    assert llama_wheel.ensure_wheel(tmp_path, no_build) == wheel


def test_a_failed_build_leaves_no_wheel_in_the_cache(tmp_path: Path) -> None:
    sys.path.insert(0, str(TOOLS))
    try:
        import llama_wheel
    finally:
        sys.path.remove(str(TOOLS))

    def broken_build(dest: Path) -> None:
        (dest / f"llama_cpp_python-{VERSION}-py3-none-any.whl").write_bytes(b"half")
        raise subprocess.CalledProcessError(1, ["pip", "wheel"])

    with pytest.raises(subprocess.CalledProcessError):
        llama_wheel.ensure_wheel(tmp_path, broken_build)
    assert llama_wheel.cached_wheel(tmp_path) is None
    assert [p.name for p in tmp_path.iterdir()] == [".llama-wheel.lock"]
