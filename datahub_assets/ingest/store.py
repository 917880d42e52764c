"""Where landed files live: local disk or any S3 API, behind one small `FileStore` interface.

Paths are what users see and configure: absolute local paths (or `file://` URIs) for
`LocalStore`, `s3://bucket/key` (or `s3a://`) for `S3Store`; a store returns paths in the form
its pattern was given. `store_for` picks the store from the scheme.

Listing (`list`) looks only below the static prefix of the glob (`paths.static_prefix`) and
only as deep as the pattern reaches: one directory for `landing/*.csv` (`os.scandir`, or one
`list_objects_v2` per 1,000 keys with `Delimiter="/"`, so sibling folders are never listed),
level by level for `in/2024*/x.csv` (directories are matched before they are entered), and
the whole tree only for `**` (S3: one flat listing). Files are matched on their names before
anything else is asked of them, so a folder of 100,000 files lists in a fraction of a second
locally. What a listing skips is `paths.Glob.lists`.

Moves replace an existing destination. Locally `os.replace` is atomic; across devices the file
is copied next to the destination under a temporary name, renamed into place, then the source
is removed. On S3 a move is a managed copy (`client.copy`: multipart above 8 MiB, so objects
beyond the 5 GB `copy_object` limit move too) then a delete. `open` on S3 returns a seekable
stream reading ranges on demand (Parquet footers are read from the end), pinned to the ETag it
was opened with so a replaced object fails the read instead of mixing two versions.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat as stat_mode
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from datahub_assets.ingest import s3_events
from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.paths import Glob, compiled

if TYPE_CHECKING:
    from datahub_resources.settings import Settings

S3_SCHEMES = ("s3://", "s3a://")
_STREAM_BUFFER_BYTES = 1024 * 1024


class FileStore(Protocol):
    def list(self, pattern: str) -> Iterator[FileInfo]:
        """The landed files matching the glob `pattern` (see `paths.Glob.lists`)."""
        ...

    def stat(self, path: str) -> FileInfo | None:
        """The file at `path`, or None if there is none."""
        ...

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        """The whole file, or its first `limit` bytes."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A seekable binary stream of the file (a context manager)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether a file (not a directory) is at `path`."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Move a file, creating folders and replacing a file already at `dst`."""
        ...

    def write_text(self, path: str, text: str) -> None:
        """Write a UTF-8 text file whole (readers never see half of it)."""
        ...

    def delete(self, path: str) -> None:
        """Remove a file; nothing happens if it is already gone."""
        ...

    def localize(self, path: str, dest_dir: str) -> str:
        """A local path Spark can read: the file itself, or a download into `dest_dir` named
        `<unique>-<original name>` (the caller owns and removes it)."""
        ...


def default_s3_client() -> Any:
    """A boto3 S3 client configured by the environment (AWS_ENDPOINT_URL[_S3] for MinIO or any
    S3 API, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION, ...)."""
    import boto3

    return boto3.client("s3")


def store_for(
    path: str,
    s3_client_factory: Callable[[], Any] | None = None,
    settings: Settings | None = None,
) -> FileStore:
    """The store for a path or pattern, by its scheme: S3 needs `s3_client_factory`; an S3
    store lists through the event notifications queue of `settings`
    (DATAHUB_S3_EVENTS_QUEUE_URL) when one is configured."""
    if path.startswith(S3_SCHEMES):
        if s3_client_factory is None:
            raise ValueError(
                f"{path} is on S3 but no S3 client was given (pass "
                f"s3_client_factory, e.g. store.default_s3_client)"
            )
        events = (
            s3_events.for_queue(
                settings.s3_events_queue_url, relist_seconds=settings.s3_relist_seconds
            )
            if settings is not None
            else None
        )
        return S3Store(s3_client_factory(), events)
    if path.startswith(("/", "file://")):
        return LocalStore()
    scheme = path.split("://", 1)[0] + "://" if "://" in path else None
    if scheme:
        raise ValueError(
            f"{path}: {scheme} is not supported for file drops (use a local path, file:// or s3://)"
        )
    raise ValueError(
        f"{path} must be absolute: a local path starting with '/' or a URI such "
        f"as s3://bucket/landing/*.csv"
    )


def _unique_name(path: str) -> str:
    return f"{uuid.uuid4().hex[:12]}-{path.rsplit('/', 1)[-1]}"


# ---------------------------------------------------------------------------------- local


def _os_path(path: str) -> str:
    """`file:///x` and `file://localhost/x` as `/x`; plain paths unchanged."""
    if path.startswith("file://"):
        rest = path[len("file://") :]
        if rest.startswith("localhost/"):
            rest = rest[len("localhost") :]
        if not rest.startswith("/"):
            raise ValueError(f"{path}: only local file:// URIs are supported (file:///path)")
        return rest
    return path


def _literal(store: FileStore, glob, pattern: str) -> Iterator[FileInfo]:
    """A pattern without wildcards names one file: one stat, no listing."""
    info = store.stat(pattern) if glob.lists(pattern) else None
    if info is not None:
        yield info


class LocalStore:
    """Files on a local (or mounted) filesystem."""

    def list(self, pattern: str) -> Iterator[FileInfo]:
        glob = compiled(pattern)
        if glob.is_literal:
            yield from _literal(self, glob, pattern)
            return
        for shown, entry in self._walk(glob, _os_path(glob.prefix), glob.prefix, 0):
            if glob.lists(shown):
                try:
                    st = entry.stat()
                except FileNotFoundError:  # moved away since the directory was read
                    continue
                yield FileInfo.local(shown, st)

    def _walk(
        self, glob: Glob, directory: str, shown: str, depth: int
    ) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(path as shown, entry) of the files below `directory` the pattern may match."""
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                if glob.levels is None:  # `**`: any depth, not following directory links
                    if entry.is_dir(follow_symlinks=False):
                        below = f"{shown}{entry.name}/"
                        if glob.enters(entry.name) and not glob.lifecycle.match(below):
                            yield from self._walk(glob, entry.path, below, depth + 1)
                    elif entry.is_file():
                        yield shown + entry.name, entry
                elif glob.levels[depth].match(entry.name):
                    if depth == len(glob.levels) - 1:
                        if entry.is_file():
                            yield shown + entry.name, entry
                    elif entry.is_dir() and glob.enters(entry.name):
                        yield from self._walk(glob, entry.path, f"{shown}{entry.name}/", depth + 1)

    def stat(self, path: str) -> FileInfo | None:
        try:
            st = Path(_os_path(path)).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_mode.S_ISREG(st.st_mode):
            return None
        return FileInfo.local(path, st)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        with Path(_os_path(path)).open("rb") as f:
            return f.read() if limit is None else f.read(limit)

    def open(self, path: str) -> BinaryIO:
        return Path(_os_path(path)).open("rb")

    def exists(self, path: str) -> bool:
        return Path(_os_path(path)).is_file()

    def move(self, src: str, dst: str) -> None:
        source, target = Path(_os_path(src)), Path(_os_path(dst))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            source.replace(target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # another device: copy beside the target, rename it into place, remove the source
            tmp = _temp_beside(target)
            try:
                shutil.copy2(source, tmp)
                tmp.replace(target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise exc from None
            source.unlink()

    def write_text(self, path: str, text: str) -> None:
        target = Path(_os_path(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(target)
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def delete(self, path: str) -> None:
        Path(_os_path(path)).unlink(missing_ok=True)

    def localize(self, path: str, dest_dir: str) -> str:  # noqa: ARG002 - the protocol's signature
        """Spark reads a local file where it is (`dest_dir` is for downloads)."""
        return path


def _temp_beside(target: Path) -> Path:
    """A fresh hidden name in `target`'s folder (listings skip it): a rename from it is
    atomic."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


# ---------------------------------------------------------------------------------- S3


def _split_s3(path: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`."""
    for scheme in S3_SCHEMES:
        if path.startswith(scheme):
            bucket, _, key = path[len(scheme) :].partition("/")
            if bucket:
                return bucket, key
    raise ValueError(f"{path} is not an S3 path (s3://bucket/key)")


def _parse_timestamp(value: str) -> datetime:
    """botocore's timestamp parser (dateutil, ~130 us a key) replaced for S3's fixed ISO form
    (`2026-11-22T07:45:00.000Z`, ~2 us); anything else goes to botocore's own parser."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        from botocore.utils import parse_timestamp

        return parse_timestamp(value)


def _fast_timestamps(client: Any) -> None:
    """Give `client` the cheaper timestamp parser (listings of 100,000 keys: ~10 s of CPU in
    dateutil otherwise). Same values, same types; a client without botocore internals (a
    stub) is left as it is."""
    factory = getattr(getattr(client, "_endpoint", None), "_response_parser_factory", None)
    if factory is not None and hasattr(factory, "set_parser_defaults"):
        factory.set_parser_defaults(timestamp_parser=_parse_timestamp)


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _is_missing(exc: BaseException) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


class S3Store:
    """Objects in any S3 API (AWS, MinIO, ...) through a boto3 S3 client."""

    def __init__(self, client: Any, events: s3_events.EventViews | None = None) -> None:
        self.client = client
        self.events = events
        _fast_timestamps(client)

    def list(self, pattern: str) -> Iterator[FileInfo]:
        glob = compiled(pattern)
        if glob.is_literal:
            yield from _literal(self, glob, pattern)
            return
        views = self.events
        if views is not None:  # DATAHUB_S3_EVENTS_QUEUE_URL: a view kept by notifications
            bucket, _ = _split_s3(glob.prefix)
            yield from views.list(
                str(self.client.meta.endpoint_url), bucket, pattern, lambda: self._list(glob)
            )
            return
        yield from self._list(glob)

    def _list(self, glob: Glob) -> Iterator[FileInfo]:
        bucket, key_prefix = _split_s3(glob.prefix)
        base = glob.prefix[: len(glob.prefix) - len(key_prefix)]  # s3://bucket/
        if glob.levels is None:  # `**`: one flat listing of the tree
            objects = self._objects(bucket, key_prefix, delimiter=False)
        else:
            objects = self._walk(glob, bucket, key_prefix, 0)
        for obj in objects:
            shown = base + obj["Key"]
            if not obj["Key"].endswith("/") and glob.lists(shown):
                yield FileInfo(
                    shown, obj["Size"], obj["LastModified"].timestamp(), obj["ETag"].strip('"')
                )

    def _walk(self, glob: Glob, bucket: str, prefix: str, depth: int) -> Iterator[dict]:
        assert glob.levels is not None
        last = depth == len(glob.levels) - 1
        regex = glob.levels[depth]
        folders: list[str] = []
        for item in self._objects(bucket, prefix, delimiter=True):
            if "Key" in item:
                if last and regex.match(item["Key"][len(prefix) :]):
                    yield item
            elif not last:
                name = item["Prefix"][len(prefix) : -1]
                if regex.match(name) and glob.enters(name):
                    folders.append(item["Prefix"])
        for folder in folders:
            yield from self._walk(glob, bucket, folder, depth + 1)

    def _objects(self, bucket: str, prefix: str, delimiter: bool) -> Iterator[dict]:
        """Objects (with `Key`) and, with `delimiter`, sub-folders (with `Prefix`)."""
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(**args):
            yield from page.get("Contents", ())
            yield from page.get("CommonPrefixes", ())

    def stat(self, path: str) -> FileInfo | None:
        bucket, key = _split_s3(path)
        if not key or key.endswith("/"):
            return None
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        return FileInfo(
            path, head["ContentLength"], head["LastModified"].timestamp(), head["ETag"].strip('"')
        )

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        bucket, key = _split_s3(path)
        args: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if limit is not None:
            if limit <= 0:
                return b""
            args["Range"] = f"bytes=0-{limit - 1}"
        try:
            response = self.client.get_object(**args)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"{path} not found") from None
            if _error_code(exc) == "InvalidRange":  # a range of an empty object
                return b""
            raise
        with response["Body"] as body:
            return body.read()

    def open(self, path: str) -> BinaryIO:
        info = self.stat(path)
        if info is None:
            raise FileNotFoundError(f"{path} not found")
        bucket, key = _split_s3(path)
        raw = _S3Reader(self.client, bucket, key, info.size, info.etag)
        return io.BufferedReader(raw, buffer_size=_STREAM_BUFFER_BYTES)  # type: ignore[return-value]

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def move(self, src: str, dst: str) -> None:
        (src_bucket, src_key), (dst_bucket, dst_key) = _split_s3(src), _split_s3(dst)
        try:
            self.client.copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"cannot move {src}: not found") from None
            raise
        self.client.delete_object(Bucket=src_bucket, Key=src_key)

    def write_text(self, path: str, text: str) -> None:
        bucket, key = _split_s3(path)
        content_type = "application/json" if key.endswith(".json") else "text/plain"
        self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode("utf-8"),
            ContentType=f"{content_type}; charset=utf-8",
        )

    def delete(self, path: str) -> None:
        bucket, key = _split_s3(path)
        self.client.delete_object(Bucket=bucket, Key=key)

    def copy_version(self, src: str, dst: str, etag: str | None) -> None:
        """Server-side copy of `src` to `dst`, only if `src` still has `etag` (a replaced
        object fails with FileNotFoundError instead of copying the new version)."""
        (src_bucket, src_key), (dst_bucket, dst_key) = _split_s3(src), _split_s3(dst)
        extra = {"CopySourceIfMatch": f'"{etag}"'} if etag else None
        try:
            self.client.copy(
                {"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key, ExtraArgs=extra
            )
        except Exception as exc:
            if _is_missing(exc) or _error_code(exc) in ("412", "PreconditionFailed"):
                raise FileNotFoundError(
                    f"{src} changed or disappeared since it was validated (ETag {etag})"
                ) from None
            raise

    def delete_many(self, paths: list[str]) -> None:
        """Remove objects, 1,000 per request; missing ones are ignored."""
        by_bucket: dict[str, list[str]] = {}
        for path in paths:
            bucket, key = _split_s3(path)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=bucket,
                    Delete={
                        "Objects": [{"Key": k} for k in keys[start : start + 1000]],
                        "Quiet": True,
                    },
                )

    def localize(self, path: str, dest_dir: str) -> str:
        bucket, key = _split_s3(path)
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        target = str(Path(dest_dir) / _unique_name(key))
        try:
            self.client.download_file(bucket, key, target)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"{path} not found") from None
            raise
        return target


class _S3Reader(io.RawIOBase):
    """A seekable read-only view of one object version: reads stream from one ranged GET
    until a seek elsewhere starts another."""

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str | None) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self._size, self._etag = size, etag
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        starts = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}
        if whence not in starts:
            raise ValueError(f"invalid whence {whence}")
        position = starts[whence] + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        if position != self._pos:
            self._drop_body()
            self._pos = position
        return position

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size or len(buffer) == 0:
            return 0
        if self._body is None:
            args: dict[str, Any] = {
                "Bucket": self._bucket,
                "Key": self._key,
                "Range": f"bytes={self._pos}-",
            }
            if self._etag:
                args["IfMatch"] = f'"{self._etag}"'
            self._body = self._client.get_object(**args)["Body"]
        data = self._body.read(len(buffer))
        if not data:
            raise OSError(
                f"s3://{self._bucket}/{self._key}: stream ended at byte {self._pos} of {self._size}"
            )
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
