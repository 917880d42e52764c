"""s3:// for the DuckDB engine without DuckDB's httpfs extension (which cannot be downloaded
offline): pyarrow's S3 filesystem, wrapped for fsspec, registered on the run's connection
(`register_filesystem`). DuckDB then reads (`read_csv/read_json/read_parquet`, globs
included), writes (`COPY ... TO 's3://...'`, `PARTITION_BY` folders too) and lists s3:// and
s3a:// paths itself; the bytes move in pyarrow's C++ S3 client.

- Endpoint and credentials: by default those of Spark and pyiceberg, from the AWS
  environment (`datahub_resources.s3.arrow_filesystem`); the filesystem is made on the first
  s3:// access, so a run that touches no S3 pays nothing.
- `route_client(conn, client, bucket)`: a bucket reached through another boto3 client (the
  `s3` resource configured with its own endpoint and keys, `ExecContext.s3_client`) is served
  by a filesystem with that client's endpoint, region and keys, as `s3.bucket_conf` does for
  Spark; a client of AWS itself changes nothing (the default chain applies).
- Object stores have no folders: creating one is a no-op (pyarrow would put empty `key/`
  marker objects, which Spark, pyiceberg and the ingest listings would then see); deletes
  (`delete_below`) go through boto3 for the same reason.
- One object read by several DuckDB threads: see `_SharedReads` (a plain fsspec file lost
  rows silently).

Used for the Iceberg warehouse (`duckdb_write.read_files` of pyiceberg's planned s3:// data
files, `write_parquet` staging) and CSV exports (`write_csv_s3`). csv/json/parquet file
sources and file drops on S3 are still downloaded into the run folder first
(`execute/readers/_files.py`, `execute/drops.py`): their readers open the files from Python
too (malformed-record verdicts), and on 50 MB of CSV on moto the download plus a local read
took 0.6 s against 0.8-1.1 s reading s3:// directly.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, cast

import duckdb
from fsspec.implementations.arrow import ArrowFile, ArrowFSWrapper

from datahub_resources import s3

SCHEMES = ("s3://", "s3a://")

_REGISTERED: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, S3Files] = (
    weakref.WeakKeyDictionary()
)


def _bucket(path: Any) -> str:
    """The bucket of a path as pyarrow's S3 filesystem takes it (`bucket/key`), of a
    FileSelector's base_dir, or of the first of a list of paths."""
    if isinstance(path, list):
        path = path[0] if path else ""
    path = getattr(path, "base_dir", path)
    return str(path).split("://", 1)[-1].lstrip("/").split("/", 1)[0]


class _Router:
    """Stands in for the pyarrow filesystem of `ArrowFSWrapper`: each call goes to the
    filesystem of the bucket its first argument names."""

    type_name = "s3"

    def __init__(self, default: Callable[[], Any]) -> None:
        self._make_default = default
        self._default: Any = None
        self._lock = threading.Lock()
        self.buckets: dict[str, Any] = {}
        self.clients: dict[str, Any] = {}
        """bucket -> the boto3 client of a routed bucket (deletes)."""

    def default(self) -> Any:
        with self._lock:
            if self._default is None:
                self._default = self._make_default()
            return self._default

    def filesystem(self, path: Any) -> Any:
        return self.buckets.get(_bucket(path)) or self.default()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(first: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self.filesystem(first), name)(first, *args, **kwargs)

        return call


class _SharedReads(ArrowFile):
    """A read-only S3 object that several DuckDB threads may read at once.

    DuckDB reads a Python file at an offset as `seek(offset)` then `read(n)`, on one handle
    shared by the threads scanning a file; pyarrow lets go of the GIL while it reads, so with
    a plain file another thread's seek lands between the two and rows are lost or read twice,
    silently (measured: 998,849 of 1,000,000 CSV rows on 4 threads). Here a seek is remembered
    for the thread that made it and its next read is positional (`read_at`, thread-safe in
    pyarrow); a read without a seek continues from the last read (sequential readers). A read
    returns every byte asked for unless the object ends first: DuckDB fails a short read."""

    def _setup(self) -> _SharedReads:
        self._size = self.stream.size()
        self._pos = 0
        self._seeks: dict[int, int] = {}
        return self

    def seek(self, loc: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.tell(), 2: self._size}[whence]
        pos = base + loc
        self._seeks[threading.get_ident()] = pos
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._seeks.get(threading.get_ident(), self._pos)

    def read(self, length: int | None = -1) -> bytes:
        pos = self._seeks.pop(threading.get_ident(), None)
        pos = self._pos if pos is None else pos
        left = max(0, self._size - pos)
        want = left if length is None or length < 0 else min(length, left)
        parts, got = [], 0
        while got < want:
            chunk = self.stream.read_at(want - got, pos + got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        self._pos = pos + got
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


class S3Files(ArrowFSWrapper):
    """The fsspec filesystem of s3:// and s3a:// paths DuckDB is given (module doc)."""

    protocol = ("s3", "s3a")  # type: ignore[assignment]  (a property on ArrowFSWrapper)
    cachable = False  # one per connection: fsspec must not hand another run's instance back

    def __init__(self, default: Callable[[], Any] | None = None) -> None:
        self.router = _Router(default or s3.arrow_filesystem)
        super().__init__(self.router)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """No folder objects on S3 (module doc)."""
        del path, create_parents, kwargs

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        del path, exist_ok

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The objects and prefixes right below `path` (entries with their `type` by default:
        fsspec's contract, DuckDB's folder listing indexes them); none below a prefix without
        objects (an empty folder: folders are not stored)."""
        try:
            return super().ls(path, detail=detail, **kwargs)
        except FileNotFoundError:
            return []

    def _open(self, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> Any:
        opened = super()._open(path, mode, *args, **kwargs)
        if mode == "rb" and opened.stream.seekable():
            opened.__class__ = _SharedReads
            return cast(_SharedReads, opened)._setup()
        return opened

    def isdir(self, path: str) -> bool:
        """A prefix with objects below it is a folder; a prefix with none is an empty one
        (DuckDB's COPY ... TO a folder asks before writing; folders are not stored)."""
        path = self._strip_protocol(path).rstrip("/")
        if "/" not in path:
            return True  # a bucket
        try:
            return self.info(path)["type"] == "directory"
        except FileNotFoundError:
            return True


def register_s3(conn: duckdb.DuckDBPyConnection, default: Callable[[], Any] | None = None) -> None:
    """Serve s3:// and s3a:// paths of `conn` through `S3Files` (`default`: the pyarrow
    filesystem of buckets without a route, made on first use; the AWS environment's)."""
    files = S3Files(default)
    conn.register_filesystem(files)
    _REGISTERED[conn] = files


def arrow_from_client(client: Any) -> Any | None:
    """A pyarrow S3FileSystem reaching S3 as the boto3 `client` does, when that client has an
    endpoint of its own (MinIO, moto); None for AWS itself (module doc)."""
    import pyarrow.fs as pafs

    endpoint = str(getattr(client.meta, "endpoint_url", "") or "")
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if not endpoint or host.endswith("amazonaws.com"):
        return None
    scheme, _, rest = endpoint.partition("://")
    kwargs: dict[str, Any] = {
        "endpoint_override": rest.rstrip("/") or scheme,
        "scheme": scheme if rest else "https",
        "region": client.meta.region_name or "us-east-1",
    }
    get = getattr(client, "_get_credentials", None)
    credentials = get() if get else None
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        kwargs.update(
            access_key=frozen.access_key,
            secret_key=frozen.secret_key,
            session_token=frozen.token,
        )
    return pafs.S3FileSystem(**kwargs)


def route_client(conn: duckdb.DuckDBPyConnection, client: Any, bucket: str) -> None:
    """`bucket` of `conn` reached through the boto3 `client` (module doc)."""
    files = _REGISTERED.get(conn)
    if files is None:
        register_s3(conn)
        files = _REGISTERED[conn]
    if bucket in files.router.buckets:
        return
    fs = arrow_from_client(client)
    if fs is not None:
        files.router.buckets[bucket] = fs
        files.router.clients[bucket] = client


def route_path(conn: duckdb.DuckDBPyConnection, client_factory: Any, path: str) -> None:
    """`route_client` for the bucket of an s3:// `path` and the run's S3 client factory
    (None: the default filesystem serves it)."""
    if client_factory is not None and is_s3(path):
        route_client(conn, client_factory(), _bucket(path))


def filesystem(conn: duckdb.DuckDBPyConnection) -> S3Files:
    """The `S3Files` of `conn` (registered now if it had none)."""
    if conn not in _REGISTERED:
        register_s3(conn)
    return _REGISTERED[conn]


def _key(path: str) -> str:
    """`s3://bucket/key` -> `bucket/key` (pyarrow's S3 paths)."""
    return path.split("://", 1)[-1].rstrip("/")


def objects_below(conn: duckdb.DuckDBPyConnection, prefix: str) -> list[tuple[str, int]]:
    """(s3:// path, size) of every object below the folder `prefix`, in one listing."""
    import pyarrow.fs as pafs

    key = _key(prefix)
    fs = filesystem(conn).router.filesystem(key)
    selector = pafs.FileSelector(key, recursive=True, allow_not_found=True)
    infos = fs.get_file_info(selector)
    return [(f"s3://{i.path}", i.size) for i in infos if i.type == pafs.FileType.File]


def delete_below(conn: duckdb.DuckDBPyConnection, prefix: str) -> None:
    """Remove every object below the folder `prefix`, 1,000 per request, through boto3
    (pyarrow's deletes put a folder marker object in the parent's place)."""
    bucket, _, key = _key(prefix).partition("/")
    client = filesystem(conn).router.clients.get(bucket)
    if client is None:
        from datahub_assets.ingest.store import default_s3_client

        client = default_s3_client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key + "/")
    for page in pages:
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def is_s3(path: str) -> bool:
    return path.startswith(SCHEMES)


__all__ = [
    "SCHEMES",
    "S3Files",
    "arrow_from_client",
    "delete_below",
    "filesystem",
    "is_s3",
    "objects_below",
    "register_s3",
    "route_client",
    "route_path",
]
