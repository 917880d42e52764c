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

Moves never replace a file at the destination: they raise FileExistsError and leave both files
alone (the caller picks another name). Locally a move is a hard link to the destination (which
fails atomically when the name is taken) then the removal of the source; where hard links are
refused (files of another user under `fs.protected_hardlinks`, filesystems without them) it
checks the name and renames. Across devices the file is copied next to the destination under a
temporary name, placed the same way, then the source is removed. On S3 a move checks the
destination key (HEAD), then a managed copy (`client.copy`: multipart above 8 MiB, so objects
beyond the 5 GB `copy_object` limit move too) then a delete; two movers racing for one free key
in the same instant can still collide there (S3 has no conditional copy in every S3 API).

Symbolic links are never followed below the watched path's static prefix (`LocalStore.root`,
set by `store_for` from the pattern; the prefix itself and its parents are the operator's
configuration and may be links, e.g. a landing folder on another volume). A listing yields a
link found where a file may match as a `FileInfo` with `link=True` (validation rejects it) and
never enters a linked folder; `stat` reports a link as such; reading, opening and
`materialize` refuse a link (`LinkRefused`), and so do all of them for a path below a linked
folder: each folder below the root is opened with `O_NOFOLLOW` and the file relative to it, so
a file or folder swapped for a link after it was listed is refused, not followed. A move of a
link moves the link itself (the target stays where it is). `open` on S3 returns a seekable
stream reading ranges on demand (Parquet footers are read from the end), pinned to the ETag it
was opened with so a replaced object fails the read instead of mixing two versions.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

from datahub_assets.ingest import s3_events
from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.paths import Glob, compiled

if TYPE_CHECKING:
    from datahub_resources.settings import Settings

S3_SCHEMES = ("s3://", "s3a://")
_STREAM_BUFFER_BYTES = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a file does not hang the open (it is refused after fstat)
_FILE_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
# a hard link refused for what the file is, not where it goes: fall back to check-and-rename
_NO_HARD_LINK = frozenset({errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOSYS})


class LinkRefused(OSError):
    """A symbolic link in a landing folder (the file itself, or a folder above it below the
    watched path's static prefix): landing never follows links."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ELOOP, message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @classmethod
    def of(cls, path: str) -> LinkRefused:
        """The refusal of `path`, itself a symbolic link."""
        return cls(
            f"{path} is a symbolic link; links in landing are not followed (neither read nor "
            "moved through): put the file itself in the landing folder"
        )


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

    def materialize(self, path: str, target: str) -> None:
        """Put the file at the local path `target` (which must not exist; its folder must) for
        an engine to read: a hard link where it can, else a copy; from S3 a download. Never
        through a symbolic link (`LinkRefused`)."""
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
        return LocalStore(root=_static_root(path))
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


def _static_root(pattern: str) -> str | None:
    """The static prefix of a watched pattern (below it links are not followed), or None for
    what is not a pattern naming files."""
    try:
        return compiled(pattern).prefix
    except ValueError:
        return None


def _local_info(path: str, st: os.stat_result) -> FileInfo:
    """A local entry from its lstat: a symbolic link is marked, not followed."""
    info = FileInfo.local(path, st)
    return dataclasses.replace(info, link=True) if stat_mode.S_ISLNK(st.st_mode) else info


def _is_entry(entry: os.DirEntry[str]) -> bool:
    """A regular file or a symbolic link (to anything: it is listed to be rejected)."""
    return entry.is_file(follow_symlinks=False) or entry.is_symlink()


def _literal(store: FileStore, glob, pattern: str) -> Iterator[FileInfo]:
    """A pattern without wildcards names one file: one stat, no listing."""
    info = store.stat(pattern) if glob.lists(pattern) else None
    if info is not None:
        yield info


class LocalStore:
    """Files on a local (or mounted) filesystem. `root`: the static prefix of the watched
    pattern; below it symbolic links are never followed (module doc)."""

    def __init__(self, root: str | None = None) -> None:
        self.root = _os_path(root).rstrip("/") + "/" if root else None

    def list(self, pattern: str) -> Iterator[FileInfo]:
        glob = compiled(pattern)
        if glob.is_literal:
            yield from _literal(self, glob, pattern)
            return
        for shown, entry in self._walk(glob, _os_path(glob.prefix), glob.prefix, 0):
            if glob.lists(shown):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # moved away since the directory was read
                    continue
                yield _local_info(shown, st)

    def _walk(
        self, glob: Glob, directory: str, shown: str, depth: int
    ) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(path as shown, entry) of the files (and links) below `directory` the pattern may
        match; linked directories are never entered."""
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                if glob.levels is None:  # `**`: any depth
                    if entry.is_dir(follow_symlinks=False):
                        below = f"{shown}{entry.name}/"
                        if glob.enters(entry.name) and not glob.lifecycle.match(below):
                            yield from self._walk(glob, entry.path, below, depth + 1)
                    elif _is_entry(entry):
                        yield shown + entry.name, entry
                elif glob.levels[depth].match(entry.name):
                    if depth == len(glob.levels) - 1:
                        if _is_entry(entry):
                            yield shown + entry.name, entry
                    elif entry.is_dir(follow_symlinks=False) and glob.enters(entry.name):
                        yield from self._walk(glob, entry.path, f"{shown}{entry.name}/", depth + 1)

    @contextlib.contextmanager
    def _folder(self, path: str) -> Iterator[tuple[int, str]]:
        """(descriptor of the folder holding `path`, the file's name). Below `root` every
        folder is opened relative to the one above it without following a link
        (`LinkRefused`), so a folder swapped for a link is never entered; `root` and its
        parents are the operator's and followed, as is the whole parent of a path outside
        `root` (processed/, rejected/)."""
        local = _os_path(path)
        parent, _, name = local.rpartition("/")
        root = self.root
        below: list[str] = []
        if root is not None and local.startswith(root):
            parent, below = root, local[len(root) :].split("/")[:-1]
        fd = os.open(parent or "/", _DIR_FLAGS)
        try:
            here = parent.rstrip("/")
            for part in below:
                if part in ("", "."):
                    continue
                here = f"{here}/{part}"
                child = _enter(fd, part, here, path)
                os.close(fd)
                fd = child
            yield fd, name
        finally:
            os.close(fd)

    def _open(self, path: str) -> int:
        """A descriptor of the regular file at `path`, opened without following a link."""
        with self._folder(path) as (folder, name):
            return _open_file(folder, name, path)

    def stat(self, path: str) -> FileInfo | None:
        """The file at `path` (a symbolic link as a link, `link=True`), or None. Raises
        LinkRefused for a path below a linked folder under `root`."""
        try:
            with self._folder(path) as (folder, name):
                st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not (stat_mode.S_ISREG(st.st_mode) or stat_mode.S_ISLNK(st.st_mode)):
            return None
        return _local_info(path, st)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        with os.fdopen(self._open(path), "rb") as f:
            return f.read() if limit is None else f.read(limit)

    def open(self, path: str) -> BinaryIO:
        return cast(BinaryIO, os.fdopen(self._open(path), "rb"))

    def exists(self, path: str) -> bool:
        """Whether a file or a symbolic link (not a directory) is at `path`."""
        try:
            st = os.lstat(_os_path(path))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return not stat_mode.S_ISDIR(st.st_mode)

    def move(self, src: str, dst: str) -> None:
        """Move the file (a link: the link itself) to `dst`; FileExistsError when `dst` is
        taken (nothing is replaced)."""
        target = Path(_os_path(dst))
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._folder(src) as (folder, name):
            try:
                _place(name, folder, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                _move_across(folder, name, target, src)

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

    def materialize(self, path: str, target: str) -> None:
        """A hard link to the landed file (it survives a concurrent move of the original),
        else (another device, a file of another user under protected_hardlinks) a copy."""
        with self._folder(path) as (folder, name):
            try:
                os.link(name, target, src_dir_fd=folder, follow_symlinks=False)
            except OSError as exc:
                if exc.errno != errno.EXDEV and exc.errno not in _NO_HARD_LINK:
                    raise
                _copy_file(folder, name, Path(target), path)
                return
        placed = Path(target)
        if placed.is_symlink():  # the name was a link: linked as a link, never followed
            placed.unlink()
            raise LinkRefused.of(path)


def _enter(folder: int, part: str, here: str, path: str) -> int:
    """A descriptor of the sub-folder `part` of `folder`, refusing a symbolic link."""
    if part == "..":
        raise LinkRefused(f"{path}: '..' below the watched folder is not followed")
    try:
        return os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
    except NotADirectoryError:  # O_DIRECTORY | O_NOFOLLOW on a link fails as ENOTDIR
        if stat_mode.S_ISLNK(os.stat(part, dir_fd=folder, follow_symlinks=False).st_mode):
            raise LinkRefused(
                f"{path} lies below a symbolic link in landing ({here}); links are not followed"
            ) from None
        raise


def _open_file(folder: int, name: str, path: str) -> int:
    """A descriptor of the regular file `name` in `folder`, never through a link."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused.of(path) from None
        raise
    if not stat_mode.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise IsADirectoryError(errno.EISDIR, f"{path} is not a regular file", path)
    return fd


def _taken(target: Path) -> FileExistsError:
    return FileExistsError(
        errno.EEXIST, f"{target} already exists; a move never replaces a file (pick another name)"
    )


def _place(name: str, folder: int | None, target: Path) -> None:
    """Rename `name` (relative to `folder`) to `target`, never replacing what is there: a
    hard link (fails atomically on a taken name) then the unlink of `name`; where hard links
    are refused, a check then a rename (racy only against another mover of the same name)."""
    try:
        os.link(name, target, src_dir_fd=folder, follow_symlinks=False)
    except FileExistsError:
        raise _taken(target) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINK:
            raise
        if os.path.lexists(target):
            raise _taken(target) from None
        os.rename(name, target, src_dir_fd=folder)
        return
    os.unlink(name, dir_fd=folder)


def _move_across(folder: int, name: str, target: Path, src: str) -> None:
    """`move` to another device: a copy (a link: the link itself) beside the target under a
    hidden name, placed without replacing, then the source removed."""
    if os.path.lexists(target):
        raise _taken(target)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
        if stat_mode.S_ISLNK(st.st_mode):
            tmp.symlink_to(os.readlink(name, dir_fd=folder))
        else:
            _copy_file(folder, name, tmp, src)
        _place(str(tmp), None, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.unlink(name, dir_fd=folder)


def _copy_file(folder: int, name: str, target: Path, path: str) -> None:
    """Copy the regular file `name` of `folder` (never through a link) to the new file
    `target`, keeping its mode and times."""
    fd = _open_file(folder, name, path)
    with os.fdopen(fd, "rb") as source:
        st = os.fstat(fd)
        with target.open("xb") as out:
            shutil.copyfileobj(source, out, _STREAM_BUFFER_BYTES)
    target.chmod(stat_mode.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


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
        """Copy then delete; FileExistsError when `dst` is taken (nothing is replaced)."""
        (src_bucket, src_key), (dst_bucket, dst_key) = _split_s3(src), _split_s3(dst)
        if self.stat(dst) is not None:
            raise FileExistsError(
                errno.EEXIST, f"{dst} already exists; a move never replaces an object"
            )
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
        Path(dest_dir).mkdir(parents=True, exist_ok=True)
        target = str(Path(dest_dir) / _unique_name(_split_s3(path)[1]))
        self.materialize(path, target)
        return target

    def materialize(self, path: str, target: str) -> None:
        bucket, key = _split_s3(path)
        try:
            self.client.download_file(bucket, key, target)
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"{path} not found") from None
            raise


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
