"""Attachments stored by content hash under DATA_DIR; events carry only the reference.

The same file sent twice is stored once. The policy refuses what a help desk should never hold.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path, PurePath

from shared.events import Attachment

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
# Executables and scripts: agents open attachments, so these are refused outright.
BLOCKED_EXTENSIONS = frozenset(
    {
        ".exe",
        ".com",
        ".bat",
        ".cmd",
        ".scr",
        ".pif",
        ".msi",
        ".vbs",
        ".vbe",
        ".js",
        ".jse",
        ".wsf",
        ".hta",
        ".cpl",
        ".jar",
        ".ps1",
        ".lnk",
    }
)
BLOCKED_TYPES = frozenset(
    {"application/x-msdownload", "application/x-msdos-program", "application/x-dosexec", "application/x-ms-installer"}
)


class AttachmentRejected(ValueError):
    """The attachment breaks the size or type policy; the message says why, for the sender."""


class AttachmentStore:
    def __init__(self, root: Path, max_bytes: int = MAX_ATTACHMENT_BYTES):
        self.root = root
        self.max_bytes = max_bytes

    def check(self, filename: str | None, content_type: str, size: int) -> None:
        if size > self.max_bytes:
            raise AttachmentRejected(f"{filename or 'attachment'} is {size} bytes; the limit is {self.max_bytes}")
        extension = PurePath(filename or "").suffix.lower()
        if extension in BLOCKED_EXTENSIONS or content_type.lower() in BLOCKED_TYPES:
            raise AttachmentRejected(f"{filename or content_type}: executable files are not accepted")

    def save(
        self,
        content: bytes,
        *,
        filename: str | None,
        content_type: str,
        inline: bool = False,
        content_id: str | None = None,
        enforce_policy: bool = True,
    ) -> Attachment:
        """Stores the bytes (once per content) and returns the reference; raises AttachmentRejected."""
        if enforce_policy:
            self.check(filename, content_type, len(content))
        digest = hashlib.sha256(content).hexdigest()
        path = self.path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash never leaves a half file under the final name.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as partial:
                partial.write(content)
            os.replace(partial.name, path)
        return Attachment(
            sha256=digest,
            filename=filename,
            content_type=content_type.lower(),
            size=len(content),
            inline=inline,
            content_id=content_id,
        )

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def read(self, attachment: Attachment) -> bytes:
        return self.path(attachment.sha256).read_bytes()
