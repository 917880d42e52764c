"""One version of one landed file, and its fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class FileInfo:
    """A file as listed: `path` is what users see (an absolute local path, or
    `s3://bucket/key`); `modified` is epoch seconds of when this version appeared at `path`:
    `minAgeSeconds` counts from it. On local disk that is max(mtime, ctime): a rename (`mv`
    into landing) or a copy that keeps the mtime (`cp -p`, rsync) sets the ctime, not the
    mtime, so a file written elsewhere long ago is young again when it arrives. On S3 it is
    LastModified, the time of the PUT or copy. `mtime` is the local content mtime (None on
    S3), which identifies the version: a chmod or a rename changes the ctime but not the
    file. `etag` is the S3 ETag without quotes (None on local disk). `link`: the entry is a
    symbolic link (local disk; its own lstat values), which landing never follows: validation
    rejects it and the link itself, not its target, moves to rejected/."""

    path: str
    size: int
    modified: float
    etag: str | None = None
    mtime: float | None = None
    link: bool = False

    @property
    def version(self) -> str:
        """What tells two versions of the same path apart: the ETag, else size and mtime in ns."""
        stamp = self.mtime if self.mtime is not None else self.modified
        return self.etag or f"{self.size}:{round(stamp * 1e9)}"

    @classmethod
    def local(cls, path: str, st) -> FileInfo:
        """A local file from its `os.stat_result`."""
        return cls(path, st.st_size, max(st.st_mtime, st.st_ctime), mtime=st.st_mtime)

    def fingerprint(self, checksum: str | None = None) -> str:
        """32 hex chars identifying this version of this file (plus its sidecar checksum when
        one was verified): a changed file at the same path gets a new fingerprint."""
        text = "\0".join([self.path, str(self.size), self.version, checksum or ""])
        return hashlib.sha256(text.encode()).hexdigest()[:32]
