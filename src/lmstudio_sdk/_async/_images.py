"""Image formats the server accepts as chat attachments, told from a file's first bytes."""

from __future__ import annotations

__all__ = ["IMAGE_SUFFIXES", "image_suffix"]

#: File extensions the server knows as images.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})


def image_suffix(data: bytes) -> str | None:
    """The file extension of an image's format, from its first bytes (``None``: no image)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data.startswith(b"BM") and len(data) > 26:
        return ".bmp"
    return None
