"""snake_case <-> camelCase for wire field names.

Three property names in the LM Studio protocol are not what a natural snake_case name
turns into, so they live in an explicit exceptions table. ``str.title()`` is not used: it
upper-cases letters after digits (``"fp16x".title() == "Fp16X"``).
"""

from __future__ import annotations

from functools import cache

__all__ = ["CAMEL_EXCEPTIONS", "to_camel"]

CAMEL_EXCEPTIONS: dict[str, str] = {
    "offload_kv_cache_to_gpu": "offloadKVCacheToGpu",
    "use_fp16_for_kv_cache": "useFp16ForKVCache",
    "try_direct_io": "tryDirectIO",
}


@cache
def to_camel(name: str) -> str:
    """Return the wire (camelCase) spelling of a snake_case attribute name."""
    if name in CAMEL_EXCEPTIONS:
        return CAMEL_EXCEPTIONS[name]
    # A leading underscore is kept for Python keywords written as ``type_`` style names.
    stripped = name.rstrip("_")
    first, *rest = stripped.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)
