"""Per-client storage of uploaded files (``files.uploadFileBase64``).

Each client identity gets its own directory under the storage root, named by a hash of the
identifier (identifiers are client-chosen text and may contain ``/``). File names are
sanitised to a plain base name, and every path handed out is checked to lie inside the
client's directory, so no request can read or write outside it. A client's files are
deleted when its identity is released (its last socket closed), as in LM Studio, and the
whole root when the server stops if the server created it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import mimetypes
import re
import shutil
import tempfile
import threading
import unicodedata
from pathlib import Path

from ._errors import bad_request

__all__ = ["FileStore", "file_type_of", "sanitize_file_name"]

_IMAGE = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}
_WORD = {".doc", ".docx", ".odt", ".rtf"}
_TEXT_OTHER = {
    ".md", ".markdown", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".html", ".htm", ".yaml",
    ".yml", ".toml", ".ini", ".log", ".py", ".js", ".ts", ".c", ".h", ".cpp", ".java", ".rs",
    ".go", ".sh", ".sql", ".tex",
}  # fmt: skip
_UNSAFE = re.compile(r"[^\w.\- ()+,@=]")
MAX_NAME_LENGTH = 128


def sanitize_file_name(name: str) -> str:
    """A safe base name for ``name``: no directories, no control characters, no leading dot."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if not unicodedata.category(ch).startswith("C"))
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > MAX_NAME_LENGTH:
        stem, dot, suffix = base.rpartition(".")
        base = (
            (stem[: MAX_NAME_LENGTH - len(suffix) - 1] + dot + suffix)
            if dot
            else base[:MAX_NAME_LENGTH]
        )
    return base or "file"


def file_type_of(name: str) -> str:
    """The ``FileType`` LM Studio reports for a file name."""
    suffix = Path(name).suffix.lower()
    if suffix in _IMAGE:
        return "image"
    if suffix == ".txt":
        return "text/plain"
    if suffix == ".pdf":
        return "application/pdf"
    if suffix in _WORD:
        return "application/word"
    if suffix in _TEXT_OTHER:
        return "text/other"
    return "unknown"


class FileStore:
    """See the module docstring."""

    def __init__(
        self,
        root: Path | None,
        *,
        max_upload_bytes: int,
        max_files_per_client: int | None = None,
        max_total_bytes_per_client: int | None = None,
    ) -> None:
        self._owned = root is None
        self.root = (
            Path(tempfile.mkdtemp(prefix="lmsdk-files-")) if root is None else root
        ).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes = max_upload_bytes
        self._counter = itertools.count(1)
        self._max_files = max_files_per_client
        self._max_total = max_total_bytes_per_client
        # Per identity: (files, bytes) stored. Uploads run in worker threads, hence the lock.
        self._usage: dict[str, tuple[int, int]] = {}
        self._usage_lock = threading.Lock()

    def client_dir(self, client_identifier: str) -> Path:
        digest = hashlib.sha256(client_identifier.encode("utf-8")).hexdigest()[:32]
        return self.root / digest

    def _inside(self, client_identifier: str, file_identifier: str) -> Path | None:
        directory = self.client_dir(client_identifier)
        if sanitize_file_name(file_identifier) != file_identifier:
            return None  # identifiers we hand out are already sane names
        path = (directory / file_identifier).resolve()
        if path.parent != directory.resolve() or not path.is_file():
            return None
        return path

    def save_base64(
        self, client_identifier: str, name: str, content_base64: str
    ) -> tuple[str, str, int]:
        """Store an upload; returns ``(file identifier, file type, size)``. Blocking I/O."""
        if len(content_base64) > (self.max_upload_bytes * 4) // 3 + 4:
            raise _too_large(self.max_upload_bytes)
        try:
            data = base64.b64decode(content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(
                "contentBase64 is not valid base64.", cause="Encode the file with standard base64."
            ) from None
        if len(data) > self.max_upload_bytes:
            raise _too_large(self.max_upload_bytes)
        self._reserve(client_identifier, len(data))
        safe = sanitize_file_name(name)
        identifier = f"{next(self._counter)}-{safe}"
        directory = self.client_dir(client_identifier)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / identifier).write_bytes(data)
        return identifier, file_type_of(safe), len(data)

    def _reserve(self, client_identifier: str, size: int) -> None:
        with self._usage_lock:
            files, total = self._usage.get(client_identifier, (0, 0))
            if self._max_files is not None and files >= self._max_files:
                raise bad_request(
                    f"Too many uploaded files: a client may keep {self._max_files} "
                    "(limits.max_upload_files_per_client).",
                    cause="Files are deleted when the client disconnects; reconnect to start over.",
                )
            if self._max_total is not None and total + size > self._max_total:
                raise bad_request(
                    f"Upload quota exceeded: a client may upload {self._max_total} bytes in all "
                    f"and has {total} (limits.max_upload_total_bytes_per_client).",
                    cause="Files are deleted when the client disconnects; reconnect to start over.",
                )
            self._usage[client_identifier] = (files + 1, total + size)

    def path_of(self, client_identifier: str, file_identifier: str) -> Path:
        """Absolute path of one of the client's files (a clear error if there is none)."""
        path = self._inside(client_identifier, file_identifier)
        if path is None:
            raise bad_request(
                f"No uploaded file {file_identifier!r}.",
                cause="Use the identifier uploadFileBase64 returned, on a connection of the same client.",
            )
        return path

    def read_text(
        self, client_identifier: str, file_identifier: str, limit: int = 1_000_000
    ) -> str | None:
        """The text of one of the client's text files, or ``None`` (unknown or not text)."""
        path = self._inside(client_identifier, file_identifier)
        if path is None or file_type_of(path.name) not in ("text/plain", "text/other"):
            return None
        try:
            return path.read_bytes()[:limit].decode("utf-8", errors="replace")
        except OSError:
            return None

    def image_data_url(self, client_identifier: str, file_identifier: str) -> str | None:
        """One of the client's images as a ``data:`` URL, or ``None`` (unknown, not an image)."""
        path = self._inside(client_identifier, file_identifier)
        if path is None or file_type_of(path.name) != "image":
            return None
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    def release(self, client_identifier: str) -> None:
        """Delete a client's files (its identity was released)."""
        with self._usage_lock:
            self._usage.pop(client_identifier, None)
        shutil.rmtree(self.client_dir(client_identifier), ignore_errors=True)

    def close(self) -> None:
        """Delete the storage root if the server created it."""
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


def _too_large(limit: int) -> Exception:
    return bad_request(
        f"The file is larger than this server accepts ({limit} bytes).",
        cause="Upload a smaller file, or start the server with a larger max_upload_bytes.",
    )
