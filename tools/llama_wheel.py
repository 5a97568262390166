"""Install llama-cpp-python built with portable CPU flags, building the wheel once.

llama-cpp-python ships only an sdist on PyPI, and its default build (-march=native)
crashes on CPUs that report AMX but do not allow it. This script builds the wheel with
portable AVX2 flags, keeps it under ``~/.cache/lmstudio-sdk/wheels`` (``$LMSDK_WHEEL_CACHE``
to change it; outside any clone, so CI on the same machine builds it once; the wheel is
py3-none, so one build serves every Python), and installs it into the running
interpreter's environment.

The build holds a lock file in the cache directory: a second run started meanwhile (two
tox envs, two clones) says it is waiting, then reuses the wheel the first one built. The
wheel is built in a scratch directory and moved into the cache only when complete.

Usage: python tools/llama_wheel.py [--install]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

VERSION = "0.3.36"
CACHE = Path(
    os.environ.get("LMSDK_WHEEL_CACHE", Path.home() / ".cache" / "lmstudio-sdk" / "wheels")
)
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
)
LOCK_NAME = ".llama-wheel.lock"

Build = Callable[[Path], None]
"""Builds the wheel into the (empty) directory it is given."""


def say(message: str) -> None:
    print(f"llama_wheel: {message}", flush=True)


def cached_wheel(cache: Path = CACHE) -> Path | None:
    """The cached wheel of :data:`VERSION`, if there is one."""
    found = sorted(glob.glob(str(cache / f"llama_cpp_python-{VERSION}-*.whl")))
    return Path(found[-1]) if found else None


def pip_build(dest: Path) -> None:
    """Build the wheel with pip, showing the compiler's progress (pip -v passes cmake's
    and the compiler's output through, instead of "still running...")."""
    env = dict(os.environ, CMAKE_ARGS=PORTABLE_CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL="2")
    # --no-cache-dir: pip's wheel cache does not key on CMAKE_ARGS, so a cached native
    # (crashing) build could otherwise be reused silently.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-cache-dir",
            "-w",
            str(dest),
            f"llama-cpp-python=={VERSION}",
        ],
        check=True,
        env=env,
    )


@contextlib.contextmanager
def build_lock(cache: Path) -> Iterator[None]:
    """Hold the cache's lock file; says so when another process holds it and waits."""
    with open(cache / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(
                f"another process is building the wheel (lock: {cache / LOCK_NAME}); waiting for it..."
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_wheel(cache: Path = CACHE, build: Build = pip_build) -> Path:
    """The cached wheel, built first (once, under the lock) if the cache has none."""
    wheel = cached_wheel(cache)
    if wheel is not None:
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    with build_lock(cache):
        wheel = cached_wheel(cache)
        if wheel is not None:
            say(f"reusing the wheel another process just built: {wheel}")
            return wheel
        say(
            f"building llama-cpp-python {VERSION} with portable CPU flags; the wheel will be cached in {cache}"
        )
        say(
            "the first build takes 3-15 minutes on 2 cores (once: later runs reuse the cached wheel)"
        )
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
        try:
            build(scratch)
            built = sorted(scratch.glob(f"llama_cpp_python-{VERSION}-*.whl"))
            if not built:
                raise SystemExit(f"llama_wheel: the build finished but left no wheel in {scratch}")
            wheel = cache / built[-1].name
            os.replace(built[-1], wheel)  # complete wheels only ever appear in the cache
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        say(f"built {wheel}")
        return wheel


def main(
    argv: Sequence[str] | None = None, *, cache: Path = CACHE, build: Build = pip_build
) -> None:
    """Make sure the wheel is cached; with ``--install``, install it here unless present."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install into this environment")
    args = parser.parse_args(argv)
    wheel = ensure_wheel(cache, build)
    print(wheel, flush=True)
    if args.install and importlib.util.find_spec("llama_cpp") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", str(wheel)], check=True)


if __name__ == "__main__":
    main()
