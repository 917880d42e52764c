"""FileStore on local disk (tmp_path) and on S3 (a real moto server, `tests/s3.py`): the same
tree, the same patterns, the same answers; plus moves, writes, downloads and listing speed."""

from __future__ import annotations

import errno
import glob as pyglob
import hashlib
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datahub_assets.ingest import store as store_module
from datahub_assets.ingest.store import FileStore, LocalStore, S3Store, store_for

TREE = {
    "landing/a.csv": b"id\n1\n",
    "landing/b.csv": b"id\n2\n",
    "landing/c.json": b'{"id": 3}\n',
    "landing/.hidden.csv": b"id\n",
    "landing/_SUCCESS": b"",
    "landing/a.csv.sha256": b"0" * 64,
    "landing/a.csv.md5": b"0" * 32,
    "landing/d.csv.tmp": b"id\n",
    "landing/e.csv.part": b"id\n",
    "landing/b.csv.reason.json": b"{}",
    "landing/sub/e.csv": b"id\n5\n",
    "landing/sub/deeper/f.csv": b"id\n6\n",
    "landing/_temporary/0/g.csv": b"id\n7\n",
    "landing/.staging/g.csv": b"id\n7\n",
    "landing/2024-01/x.csv": b"id\n8\n",
    "landing/2024-02/x.csv": b"id\n9\n",
    "landing/2023-12/x.csv": b"id\n10\n",
    "landing/in/_in/k.csv": b"id\n11\n",
    "processed/2026-11-22/h.csv": b"id\n12\n",
    "rejected/2026-11-22/i.csv": b"id\n13\n",
    "other/j.csv": b"id\n14\n",
}

LISTINGS = {
    "landing/*.csv": {"landing/a.csv", "landing/b.csv"},
    "landing/*": {"landing/a.csv", "landing/b.csv", "landing/c.json"},
    "landing/[ab].csv": {"landing/a.csv", "landing/b.csv"},
    "landing/[!a]*": {"landing/b.csv", "landing/c.json"},
    "landing/?.json": {"landing/c.json"},
    "landing/a.csv": {"landing/a.csv"},
    "landing/_SUCCESS": set(),
    "landing/nothing.csv": set(),
    "landing/2024*/x.csv": {"landing/2024-01/x.csv", "landing/2024-02/x.csv"},
    "landing/*/x.csv": {"landing/2024-01/x.csv", "landing/2024-02/x.csv", "landing/2023-12/x.csv"},
    "landing/*/*/*.csv": {"landing/sub/deeper/f.csv"},
    "landing/*/_in/*.csv": {"landing/in/_in/k.csv"},
    "landing/**/*.csv": {
        "landing/a.csv",
        "landing/b.csv",
        "landing/sub/e.csv",
        "landing/sub/deeper/f.csv",
        "landing/2024-01/x.csv",
        "landing/2024-02/x.csv",
        "landing/2023-12/x.csv",
    },
    "landing/**/x.csv": {"landing/2024-01/x.csv", "landing/2024-02/x.csv", "landing/2023-12/x.csv"},
    "landing/sub/**": {"landing/sub/e.csv", "landing/sub/deeper/f.csv"},
    "missing/*.csv": set(),
}


@dataclass
class Drop:
    """One backend: a store, the base of the tree (`/tmp/.../` or `s3://bucket/`) and a way
    to put a file below it."""

    kind: str
    store: FileStore
    base: str
    put: Callable[[str, bytes], None]
    get: Callable[[str], bytes | None]

    def rel(self, path: str) -> str:
        assert path.startswith(self.base), path
        return path[len(self.base) :]

    def listed(self, pattern: str) -> set[str]:
        return {self.rel(info.path) for info in self.store.list(self.base + pattern)}


def local_drop(root: Path) -> Drop:
    def put(rel: str, data: bytes) -> None:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get(rel: str) -> bytes | None:
        target = root / rel
        return target.read_bytes() if target.is_file() else None

    return Drop("local", LocalStore(), f"{root}/", put, get)


def s3_drop(s3_client) -> Drop:
    client, bucket = s3_client

    def put(rel: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=rel, Body=data)

    def get(rel: str) -> bytes | None:
        try:
            return client.get_object(Bucket=bucket, Key=rel)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None

    return Drop("s3", S3Store(client), f"s3://{bucket}/", put, get)


@pytest.fixture(params=["local", "s3"])
def drop(request, tmp_path: Path) -> Drop:
    if request.param == "local":
        return local_drop(tmp_path / "drop")
    return s3_drop(request.getfixturevalue("s3_client"))


@pytest.fixture
def tree(drop: Drop) -> Drop:
    for rel, data in TREE.items():
        drop.put(rel, data)
    return drop


# ------------------------------------------------------------------------------ listing


@pytest.mark.parametrize("pattern", sorted(LISTINGS))
def test_list(tree: Drop, pattern: str) -> None:
    assert tree.listed(pattern) == LISTINGS[pattern]


def test_list_returns_size_modified_and_etag(tree: Drop) -> None:
    before = time.time()
    (info,) = tree.store.list(tree.base + "landing/a.csv")
    assert info.size == len(TREE["landing/a.csv"])
    assert before - 120 < info.modified < time.time() + 120
    if tree.kind == "s3":
        assert info.etag == hashlib.md5(TREE["landing/a.csv"]).hexdigest()
    else:
        assert info.etag is None
    listed = {i.path: i for i in tree.store.list(tree.base + "landing/*.csv")}
    assert listed[info.path].version == info.version


def test_s3_recursive_listing_of_a_bucket_skips_processed_and_rejected(s3_client) -> None:
    """`s3://b/**/*.csv`: the bucket root is the root, so processed/ is inside the tree."""
    drop = s3_drop(s3_client)
    for rel in [
        "in/a.csv",
        "processed/2026-11-22/in/b.csv",
        "rejected/2026-11-22/c.csv",
        "processed/mine/d.csv",
        "in/processed/2026-11-22/e.csv",
    ]:
        drop.put(rel, b"x\n")
    assert drop.listed("**/*.csv") == {
        "in/a.csv",
        "processed/mine/d.csv",
        "in/processed/2026-11-22/e.csv",
    }


def test_recursive_listing_skips_lifecycle_folders_of_nested_landings(drop: Drop) -> None:
    """`**/landing/**/*.csv`: a file of an inner landing folder moves to a processed/ folder
    that the pattern matches again; the listing skips it."""
    for rel in [
        "shop/landing/a.csv",
        "shop/landing/x/landing/b.csv",
        "shop/landing/x/processed/2026-11-22/c.csv",
        "shop/landing/x/rejected/2026-11-22/c.csv",
        "shop/processed/2026-11-22/d.csv",
    ]:
        drop.put(rel, b"x\n")
    assert drop.listed("**/landing/**/*.csv") == {
        "shop/landing/a.csv",
        "shop/landing/x/landing/b.csv",
    }
    assert drop.listed("*/landing/*.csv") == {"shop/landing/a.csv"}


@pytest.mark.parametrize(
    "pattern",
    [
        "*.csv",
        "**/*.csv",
        "*/*.csv",
        "**",
        "a/**/*.json",
        "**/b/*",
        "[ab]/*",
        "*/[!x]*",
        "a/?.csv",
        "**/.*",
        ".*/*",
    ],
)
def test_local_listing_agrees_with_python_glob(tmp_path: Path, pattern: str) -> None:
    root = tmp_path / "t"
    for rel in [
        "x.csv",
        "a/1.csv",
        "a/2.json",
        "a/b/3.csv",
        "a/b/c/4.json",
        "b/5.csv",
        "b/x6.csv",
        ".h/7.csv",
        "a/.8.csv",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    full = f"{root}/{pattern}"
    expected = {
        p
        # the oracle is glob.glob's own semantics (absolute pattern, `**`, no dot files)
        for p in pyglob.glob(full, recursive=True)  # noqa: PTH207
        if Path(p).is_file()
        and not Path(p).name.startswith(".")
        and "/.h/" not in p[len(str(root)) :]
    }
    assert {i.path for i in LocalStore().list(full)} == expected


def test_s3_listing_stays_in_the_watched_folder(s3_client) -> None:
    client, bucket = s3_client
    calls: list[dict] = []
    client.meta.events.register(
        "provide-client-params.s3.ListObjectsV2", lambda params, **_: calls.append(dict(params))
    )
    drop = s3_drop(s3_client)
    for rel, data in TREE.items():
        drop.put(rel, data)
    assert drop.listed("landing/*.csv") == LISTINGS["landing/*.csv"]
    assert calls == [{"Bucket": bucket, "Prefix": "landing/", "Delimiter": "/"}]
    calls.clear()
    assert drop.listed("landing/2024*/x.csv") == LISTINGS["landing/2024*/x.csv"]
    assert sorted(c["Prefix"] for c in calls) == [
        "landing/",
        "landing/2024-01/",
        "landing/2024-02/",
    ]
    assert all(c["Delimiter"] == "/" for c in calls)
    calls.clear()
    drop.listed("landing/**/*.csv")
    assert calls == [{"Bucket": bucket, "Prefix": "landing/"}]
    calls.clear()
    assert drop.listed("landing/a.csv") == {"landing/a.csv"}
    assert calls == []  # a single file: HEAD, no listing


def test_s3_listing_pages(s3_client) -> None:
    client, bucket = s3_client
    calls: list[dict] = []

    def small_pages(params: dict, **_: object) -> None:
        params["MaxKeys"] = 7  # S3 pages hold 1,000 keys: force several pages of 7
        calls.append(params)

    client.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    keys = [f"landing/f{i:03d}.csv" for i in range(25)] + ["landing/sub/g.csv"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"x\n")
    assert len(list(S3Store(client).list(f"s3://{bucket}/landing/*.csv"))) == 25
    assert len(calls) == 4
    calls.clear()
    assert len(list(S3Store(client).list(f"s3://{bucket}/**/*.csv"))) == 26
    assert len(calls) == 4


def test_local_listing_of_a_big_folder_is_fast(tmp_path: Path) -> None:
    folder = tmp_path / "landing"
    folder.mkdir()
    for i in range(20_000):
        (folder / f"f{i:05d}.csv").write_bytes(b"x\n")
    (folder / "f00000.csv.sha256").write_bytes(b"0" * 64)
    started = time.perf_counter()
    listed = list(LocalStore().list(f"{folder}/*.csv"))
    elapsed = time.perf_counter() - started
    print(f"listed {len(listed)} files in {elapsed:.3f} s")
    assert len(listed) == 20_000
    assert elapsed < 10


def test_local_store_accepts_file_uris(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_bytes(b"id\n1\n")
    store = LocalStore()
    uri = f"file://{tmp_path}/landing/a.csv"
    assert [i.path for i in store.list(f"file://{tmp_path}/landing/*.csv")] == [uri]
    info = store.stat(uri)
    assert info is not None
    assert info.size == 5
    assert store.read_bytes(uri) == b"id\n1\n"
    store.move(uri, f"file://{tmp_path}/processed/a.csv")
    assert (tmp_path / "processed" / "a.csv").read_bytes() == b"id\n1\n"
    assert not store.exists(uri)


# ------------------------------------------------------------------------------ reading


def test_stat_and_exists(tree: Drop) -> None:
    info = tree.store.stat(tree.base + "landing/c.json")
    assert info is not None
    assert info.path == tree.base + "landing/c.json"
    assert info.size == len(TREE["landing/c.json"])
    assert tree.store.exists(tree.base + "landing/c.json")
    for missing in ["landing/nope.csv", "landing/sub", "landing/sub/", "nope/a.csv"]:
        assert tree.store.stat(tree.base + missing) is None, missing
        assert not tree.store.exists(tree.base + missing), missing


def test_read_bytes(drop: Drop) -> None:
    drop.put("landing/a.csv", b"0123456789")
    drop.put("landing/empty.csv", b"")
    path = drop.base + "landing/a.csv"
    assert drop.store.read_bytes(path) == b"0123456789"
    assert drop.store.read_bytes(path, limit=4) == b"0123"
    assert drop.store.read_bytes(path, limit=100) == b"0123456789"
    assert drop.store.read_bytes(path, limit=0) == b""
    assert drop.store.read_bytes(drop.base + "landing/empty.csv", limit=8) == b""
    assert drop.store.read_bytes(drop.base + "landing/empty.csv") == b""
    with pytest.raises(FileNotFoundError):
        drop.store.read_bytes(drop.base + "landing/missing.csv", limit=8)


def test_open_streams_and_seeks(drop: Drop) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    drop.put("landing/big.bin", data)
    with drop.store.open(drop.base + "landing/big.bin") as f:
        digest = hashlib.sha256()
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
        f.seek(-10, io.SEEK_END)
        assert f.read() == data[-10:]
        f.seek(5)
        assert f.read(3) == data[5:8]
        assert f.tell() == 8
    with pytest.raises(FileNotFoundError):
        drop.store.open(drop.base + "landing/missing.bin")


def test_open_reads_parquet_footer(drop: Drop) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]}), buffer)
    drop.put("landing/o.parquet", buffer.getvalue())
    with drop.store.open(drop.base + "landing/o.parquet") as f:
        parquet = pq.ParquetFile(f)
        assert parquet.schema_arrow.names == ["id", "name"]
        assert parquet.read().num_rows == 3


def test_s3_open_fails_when_the_object_is_replaced_mid_read(s3_client) -> None:
    client, bucket = s3_client
    client.put_object(Bucket=bucket, Key="a.bin", Body=b"a" * (3 * 1024 * 1024))
    with S3Store(client).open(f"s3://{bucket}/a.bin") as f:
        assert f.read(10) == b"a" * 10
        client.put_object(Bucket=bucket, Key="a.bin", Body=b"b" * (3 * 1024 * 1024))
        f.seek(2 * 1024 * 1024 + 5)
        with pytest.raises(Exception, match="PreconditionFailed|412"):
            f.read(10)


# ------------------------------------------------------------------------------ writing


def test_move(drop: Drop) -> None:
    drop.put("landing/a.csv", b"id\n1\n")
    drop.put("processed/2026-11-22/b.csv", b"old\n")
    drop.store.move(drop.base + "landing/a.csv", drop.base + "processed/2026-11-22/x/a.csv")
    assert drop.get("landing/a.csv") is None
    assert drop.get("processed/2026-11-22/x/a.csv") == b"id\n1\n"
    drop.put("landing/b.csv", b"new\n")
    with pytest.raises(FileExistsError, match="processed/2026-11-22/b.csv already exists"):
        drop.store.move(drop.base + "landing/b.csv", drop.base + "processed/2026-11-22/b.csv")
    assert drop.get("processed/2026-11-22/b.csv") == b"old\n"  # never replaced
    assert drop.get("landing/b.csv") == b"new\n"
    with pytest.raises(FileNotFoundError):
        drop.store.move(drop.base + "landing/gone.csv", drop.base + "processed/gone.csv")


def test_s3_move_of_a_multipart_sized_object(s3_client) -> None:
    client, bucket = s3_client
    data = os.urandom(9 * 1024 * 1024)  # above boto3's 8 MiB multipart threshold
    client.put_object(Bucket=bucket, Key="landing/big.bin", Body=data)
    S3Store(client).move(f"s3://{bucket}/landing/big.bin", f"s3://{bucket}/done/big.bin")
    assert client.get_object(Bucket=bucket, Key="done/big.bin")["Body"].read() == data
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="landing/")


def test_local_move_across_devices(tmp_path: Path, monkeypatch) -> None:
    src, dst = tmp_path / "landing" / "a.csv", tmp_path / "processed" / "a.csv"
    src.parent.mkdir()
    src.write_bytes(b"id\n1\n")
    os.utime(src, (1_700_000_000, 1_700_000_000))
    real_link = os.link

    def link(source, target, **kwargs):
        if os.fspath(source) == "a.csv":  # the landed file, relative to its folder
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(source, target, **kwargs)

    monkeypatch.setattr(store_module.os, "link", link)
    LocalStore().move(str(src), str(dst))
    assert not src.exists()
    assert dst.read_bytes() == b"id\n1\n"
    assert dst.stat().st_mtime == 1_700_000_000  # copied with its times
    assert sorted(p.name for p in dst.parent.iterdir()) == ["a.csv"]  # no temp file left


def test_write_text_and_delete(drop: Drop) -> None:
    path = drop.base + "rejected/2026-11-22/a.csv.reason.json"
    drop.store.write_text(path, '{"rule": "empty"}\n')
    assert drop.get("rejected/2026-11-22/a.csv.reason.json") == b'{"rule": "empty"}\n'
    drop.store.write_text(path, "{}\n")
    assert drop.store.read_bytes(path) == b"{}\n"
    if drop.kind == "local":
        assert [p.name for p in Path(path).parent.iterdir()] == ["a.csv.reason.json"]
    drop.store.delete(path)
    assert not drop.store.exists(path)
    drop.store.delete(path)  # already gone: fine


def test_localize(drop: Drop, tmp_path: Path) -> None:
    drop.put("landing/orders.csv.gz", b"\x1f\x8bdata")
    path = drop.base + "landing/orders.csv.gz"
    dest = tmp_path / "work" / "download"
    first = drop.store.localize(path, str(dest))
    if drop.kind == "local":
        assert first == path
        return
    second = drop.store.localize(path, str(dest))
    assert first != second
    for local in (first, second):
        assert str(Path(local).parent) == str(dest)
        assert local.endswith("-orders.csv.gz")
        assert Path(local).read_bytes() == b"\x1f\x8bdata"
    with pytest.raises(FileNotFoundError):
        drop.store.localize(drop.base + "landing/missing.csv", str(dest))


# ------------------------------------------------------------------------------ store_for


def test_store_for(s3_endpoint: str) -> None:
    from tests.s3 import make_client

    assert isinstance(store_for("/data/landing/*.csv"), LocalStore)
    assert isinstance(store_for("file:///data/landing/*.csv"), LocalStore)
    store = store_for("s3://b/landing/*.csv", lambda: make_client(s3_endpoint))
    assert isinstance(store, S3Store)
    assert isinstance(store_for("s3a://b/x.csv", lambda: make_client(s3_endpoint)), S3Store)
    with pytest.raises(ValueError, match="s3://b/landing/\\*.csv"):
        store_for("s3://b/landing/*.csv")
    with pytest.raises(ValueError, match="gs://"):
        store_for("gs://b/x.csv")
    with pytest.raises(ValueError, match="absolute"):
        store_for("landing/*.csv")
