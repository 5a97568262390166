"""Install llama-cpp-python built with portable CPU flags, building the wheel once.

llama-cpp-python ships only an sdist on PyPI, and its default build (-march=native)
crashes on CPUs that report AMX but do not allow it. This script builds the wheel with
portable AVX2 flags, keeps it under ``~/.cache/lmstudio-sdk/wheels`` (outside any clone, so
CI on the same machine builds it once; the wheel is py3-none, so one build serves every
Python), and installs it into the running interpreter's environment.

Usage: python tools/llama_wheel.py [--install]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

VERSION = "0.3.36"
CACHE = Path(os.environ.get("LMSDK_WHEEL_CACHE", Path.home() / ".cache" / "lmstudio-sdk" / "wheels"))
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
)


def cached_wheel() -> Path | None:
    found = sorted(glob.glob(str(CACHE / f"llama_cpp_python-{VERSION}-*.whl")))
    return Path(found[-1]) if found else None


def build_wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS=PORTABLE_CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL="2")
    print(f"building llama-cpp-python {VERSION} with portable flags (about 3 minutes)...", flush=True)
    # --no-cache-dir: pip's wheel cache does not key on CMAKE_ARGS, so a cached native
    # (crashing) build could otherwise be reused silently.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(CACHE),
         f"llama-cpp-python=={VERSION}"],
        check=True,
        env=env,
    )
    wheel = cached_wheel()
    if wheel is None:
        raise SystemExit(f"the build finished but no wheel is in {CACHE}")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install into this environment")
    args = parser.parse_args()
    wheel = cached_wheel() or build_wheel()
    print(wheel)
    if args.install and importlib.util.find_spec("llama_cpp") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", str(wheel)], check=True)


if __name__ == "__main__":
    main()
