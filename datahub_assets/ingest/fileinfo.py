"""One version of one landed file, and its fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FileInfo:
    """A file as listed: `path` is what users see (an absolute local path, or
    `s3://bucket/key`); `modified` is epoch seconds (local mtime, S3 LastModified);
    `etag` is the S3 ETag without quotes (None on local disk)."""

    path: str
    size: int
    modified: float
    etag: str | None = None

    @property
    def version(self) -> str:
        """What tells two versions of the same path apart: the ETag, else size and mtime in ns."""
        return self.etag or f"{self.size}:{round(self.modified * 1e9)}"

    def fingerprint(self, checksum: str | None = None) -> str:
        """32 hex chars identifying this version of this file (plus its sidecar checksum when
        one was verified): a changed file at the same path gets a new fingerprint."""
        text = "\0".join([self.path, str(self.size), self.version, checksum or ""])
        return hashlib.sha256(text.encode()).hexdigest()[:32]
