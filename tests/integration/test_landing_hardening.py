"""Landing folders an attacker can write to (issue #19): symbolic links are never followed
(finding 3), pipelines of one run never share an ingest work folder (finding 7), and a
processed/ or rejected/ copy never replaces an earlier one (finding 11).

Runs use the DuckDB engine (no Spark server): the drop steps (`execute.drops`) are the same
for both engines up to the reader, and the store (`ingest.store`) is engine-independent."""

from __future__ import annotations

import errno
import json
import os
from datetime import date
from pathlib import Path

import pytest

from datahub_assets.engines.api import use
from datahub_assets.engines.duckdb.session import duckdb_engine
from datahub_assets.execute import drops, runner
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.ingest import store as store_module
from datahub_assets.ingest.ledger import ledger_ref
from datahub_assets.ingest.store import LinkRefused, LocalStore, S3Store, store_for
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context
from tests.support.iceberg import table_rows

DAY = date(2026, 11, 22)
PIPELINE = """<pipeline id="{id}" version="1.0.0" layer="raw">
  <sources>
    <csv id="{source}" path="{path}">
      <watch minAgeSeconds="0"/>
    </csv>
  </sources>
  <targets><table table="{table}" mode="append"/></targets>
</pipeline>
"""
SECRET = "order_id,amount\n666,6.66\n"


# ---------------------------------------------------------------------------------- helpers


def _specs(settings, *pipelines: tuple[str, str, str, str]) -> dict:
    """{pipeline id: spec} of app `shop` with pipelines (id, source id, path, table)."""
    raw = settings.pipelines_dir / "shop" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for pid, source, path, table in pipelines:
        text = PIPELINE.format(id=pid, source=source, path=path, table=table)
        (raw / f"{pid}.xml").write_text(text)
    return {s.pipeline.id: s for s in load_project(settings.pipelines_dir).pipelines}


def _orders(settings, path="landing/orders/*.csv"):
    return _specs(settings, ("orders_raw", "orders", path, "orders"))["orders_raw"]


def _ctx(settings, run_id: str, s3_client=None) -> ExecContext:
    ctx = exec_context(duckdb_engine(settings), settings, run_id=run_id, run_date=DAY)
    ctx.s3_client = s3_client
    return ctx


def _put(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _rows(catalog, table: str) -> list[tuple]:
    rows = table_rows(catalog, f"shop_raw.{table}", "order_id", "_source_file", missing_ok=True)
    return sorted((str(order_id), file) for order_id, file in rows)


def _ledger(catalog, pipeline: str) -> list[dict]:
    ref = ledger_ref("shop", pipeline)
    if not catalog.table_exists(ref.identifier):
        return []
    rows = catalog.load_table(ref.identifier).scan().to_arrow().to_pylist()
    return sorted(rows, key=lambda r: (r["path"], r["moved_to"] or ""))


def _day(settings, folder: str) -> Path:
    return settings.data_dir / "shop" / folder / DAY.isoformat() / "orders"


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file the service user can read, outside every landing folder."""
    return _put(tmp_path / "private" / "passwd.csv", SECRET)


# --------------------------------------------------------------- finding 3: links in landing


def test_a_symlinked_file_is_rejected_and_only_the_link_moves(settings, secret):
    spec = _orders(settings)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    good = _put(landing / "a.csv", "order_id,amount\n1,1.5\n")
    link = landing / "evil.csv"
    link.symlink_to(secret)
    catalog = load_catalog(settings)

    run_pipeline(spec, _ctx(settings, "r1"), catalog)

    assert _rows(catalog, "orders") == [("1", str(good))]
    assert secret.read_text() == SECRET  # the target is neither moved nor changed
    moved = _day(settings, "rejected") / "evil.csv"
    assert moved.is_symlink()
    assert moved.readlink() == secret
    assert not os.path.lexists(link)
    reason = json.loads((_day(settings, "rejected") / "evil.csv.reason.json").read_text())
    assert reason["rule"] == "symlink"
    assert "symbolic link" in reason["message"]
    assert str(link) in reason["message"]
    assert {(r["path"], r["status"], r["rule"]) for r in _ledger(catalog, "orders_raw")} == {
        (str(good), "ingested", None),
        (str(link), "rejected", "symlink"),
    }


def test_files_below_a_symlinked_directory_are_never_read_or_moved(settings, secret):
    spec = _orders(settings, path="landing/orders/*/*.csv")
    landing = settings.data_dir / "shop" / "landing" / "orders"
    good = _put(landing / "eu" / "a.csv", "order_id,amount\n1,1.5\n")
    (landing / "evil").symlink_to(secret.parent, target_is_directory=True)
    catalog = load_catalog(settings)

    # listed by the run (the sensor's listing is the same) ...
    run_pipeline(spec, _ctx(settings, "r1"), catalog)
    # ... and asked for by name (a run request naming the path)
    foreign = str(landing / "evil" / "passwd.csv")
    ctx = _ctx(settings, "r2")
    run_pipeline(spec, ctx, catalog, files={"orders": [foreign]})

    assert _rows(catalog, "orders") == [("1", str(good))]
    assert secret.read_text() == SECRET  # still in its own folder
    assert (landing / "evil").is_symlink()  # left in landing
    assert [r["path"] for r in _ledger(catalog, "orders_raw")] == [str(good)]
    why = f"{foreign} lies below a symbolic link in landing ({landing / 'evil'}); "
    assert ctx.drops.skipped == [(foreign, why + "links are not followed")]


def test_a_symlinked_checksum_sidecar_is_not_read(settings, tmp_path):
    spec = _orders(settings)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    data = _put(landing / "a.csv", "order_id,amount\n1,1.5\n")
    hidden = _put(tmp_path / "private" / "token", "top-secret-token-value\n")
    (landing / "a.csv.sha256").symlink_to(hidden)
    catalog = load_catalog(settings)

    run_pipeline(spec, _ctx(settings, "r1"), catalog)

    assert _rows(catalog, "orders") == []
    rejected = _day(settings, "rejected")
    text = (rejected / "a.csv.reason.json").read_text()
    assert "top-secret" not in text
    assert json.loads(text)["rule"] == "symlink"
    assert (rejected / "a.csv").read_text() == "order_id,amount\n1,1.5\n"
    assert not data.exists()
    assert (rejected / "a.csv.sha256").is_symlink()  # the link moved with its file
    assert hidden.read_text() == "top-secret-token-value\n"


@pytest.mark.parametrize("swap", ["file", "folder"])
@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-link", "copy"])
def test_a_file_swapped_for_a_link_after_validation_is_not_read(
    settings, secret, monkeypatch, hard_links, swap
):
    """The run validates a regular file; before it is read the attacker replaces it with a
    link, or its folder with a linked one: the read refuses, nothing foreign is read.
    Without hard links (another device, protected_hardlinks) the run copies the file."""
    spec = _orders(settings, path="landing/orders/*/*.csv")
    landing = settings.data_dir / "shop" / "landing" / "orders"
    a = _put(landing / "x" / "a.csv", "order_id,amount\n1,1.5\n")
    if not hard_links:

        def no_link(*_args, **_kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(store_module.os, "link", no_link)
    ctx = _ctx(settings, "r1")
    ctx.spec = spec
    (source,) = spec.watched_sources
    with use(ctx.active_engine):
        batch = drops.plan_batch(spec, ctx, load_catalog(settings), None)
        assert [f.info.path for f in batch.with_status(drops.INGEST)] == [str(a)]
        if swap == "file":
            a.unlink()
            a.symlink_to(secret)
        else:
            (landing / "x").rename(landing / "x-away")
            (landing / "x").symlink_to(secret.parent, target_is_directory=True)
            (secret.parent / "a.csv").write_text(SECRET)
        with pytest.raises(LinkRefused, match="symbolic link") as refused:
            drops.read_drops(source, ctx, batch).collect()
        assert str(a) in str(refused.value)
    drops.cleanup(batch)
    assert not batch.workdir.exists()
    assert secret.read_text() == SECRET


def test_a_landing_root_that_is_a_symlink_is_the_operators_choice(settings, tmp_path):
    """Only entries below the static prefix of the watched path matter: the operator may
    point a landing folder (or a parent of it) at another volume."""
    volume = tmp_path / "volume" / "orders"
    a = _put(volume / "a.csv", "order_id,amount\n1,1.5\n")
    landing = settings.data_dir / "shop" / "landing"
    landing.mkdir(parents=True)
    (landing / "orders").symlink_to(volume, target_is_directory=True)
    spec = _orders(settings)
    catalog = load_catalog(settings)
    run_pipeline(spec, _ctx(settings, "r1"), catalog)
    assert _rows(catalog, "orders") == [("1", str(landing / "orders" / "a.csv"))]
    assert not a.exists()
    assert (_day(settings, "processed") / "a.csv").read_text() == "order_id,amount\n1,1.5\n"


def test_local_store_never_follows_links_below_its_root(tmp_path, secret):
    root = tmp_path / "landing"
    _put(root / "a.csv", "id\n1\n")
    (root / "l.csv").symlink_to(secret)
    (root / "d").symlink_to(secret.parent, target_is_directory=True)
    (root / "dangling.csv").symlink_to(tmp_path / "nothing")
    store = store_for(f"{root}/*.csv")
    listed = {Path(i.path).name: i.link for i in store.list(f"{root}/*.csv")}
    assert listed == {"a.csv": False, "l.csv": True, "dangling.csv": True}
    assert {Path(i.path).name for i in store.list(f"{root}/*/*.csv")} == set()
    assert {Path(i.path).name: i.link for i in store.list(f"{root}/**/*.csv")} == listed
    link = f"{root}/l.csv"
    info = store.stat(link)
    assert info is not None
    assert info.link
    with pytest.raises(LinkRefused, match="symbolic link"):
        store.read_bytes(link)
    with pytest.raises(LinkRefused, match="symbolic link"):
        store.open(link)
    below = f"{root}/d/passwd.csv"
    for call in (store.stat, store.read_bytes, store.open):
        with pytest.raises(LinkRefused, match="below a symbolic link"):
            call(below)
    with pytest.raises(LinkRefused, match="below a symbolic link"):
        store.move(below, str(tmp_path / "processed" / "passwd.csv"))
    assert secret.read_text() == SECRET
    store.move(link, str(tmp_path / "rejected" / "l.csv"))  # the link itself moves
    assert (tmp_path / "rejected" / "l.csv").readlink() == secret
    assert secret.read_text() == SECRET


# ------------------------------------------------ finding 7: per-pipeline ingest work folders

TWO = (
    ("orders_raw", "in", "landing/orders/*.csv", "orders"),
    ("returns_raw", "in", "landing/returns/*.csv", "returns"),
)


def _two_drops(settings) -> tuple[Path, Path]:
    data = settings.data_dir / "shop" / "landing"
    a = _put(data / "orders" / "a.csv", "order_id,amount\n1,1.5\n2,2.5\n")
    b = _put(data / "returns" / "b.csv", "order_id,amount\n70,7.5\n")
    return a, b


def test_pipelines_of_one_run_do_not_share_a_work_folder(settings):
    """Two pipelines whose sources share the id `in`, as two steps of one run (the
    multiprocess executor): planned, linked and read interleaved with the same run id."""
    specs = _specs(settings, *TWO)
    a, b = _two_drops(settings)
    catalog = load_catalog(settings)
    ctx_a, ctx_b = _ctx(settings, "same-run"), _ctx(settings, "same-run")
    ctx_a.spec, ctx_b.spec = specs["orders_raw"], specs["returns_raw"]
    with use(ctx_a.active_engine):
        batch_a = drops.plan_batch(specs["orders_raw"], ctx_a, catalog, None)
    with use(ctx_b.active_engine):
        batch_b = drops.plan_batch(specs["returns_raw"], ctx_b, catalog, None)
    with use(ctx_a.active_engine):
        frame_a = drops.read_drops(specs["orders_raw"].watched_sources[0], ctx_a, batch_a)
    with use(ctx_b.active_engine):
        frame_b = drops.read_drops(specs["returns_raw"].watched_sources[0], ctx_b, batch_b)
        rows_b = sorted((str(r["order_id"]), r["_source_file"]) for r in frame_b.collect())
    drops.finish(batch_b, ctx_b)  # B ends first: its cleanup must leave A's links alone
    with use(ctx_a.active_engine):
        rows_a = sorted((str(r["order_id"]), r["_source_file"]) for r in frame_a.collect())
    assert rows_b == [("70", str(b))]
    assert rows_a == [("1", str(a)), ("2", str(a))]
    assert batch_a.workdir != batch_b.workdir
    entries_a = drops.ledger_entries(batch_a, ctx_a, None, {str(a): 2})
    entries_b = drops.ledger_entries(batch_b, ctx_b, None, {str(b): 1})
    assert [(e.path, e.source_id, e.rows) for e in entries_a] == [(str(a), "in", 2)]
    assert [(e.path, e.source_id, e.rows) for e in entries_b] == [(str(b), "in", 1)]
    drops.finish(batch_a, ctx_a)
    assert not batch_a.workdir.exists()
    assert not batch_b.workdir.exists()
    assert not (settings.home / "ingest" / "same-run").exists()


def test_two_pipelines_running_inside_one_run_each_ingest_their_own_files(settings, monkeypatch):
    """End to end: pipeline B runs start to finish (same run id) while pipeline A has linked
    its files and not yet written them."""
    specs = _specs(settings, *TWO)
    a, b = _two_drops(settings)
    catalog = load_catalog(settings)
    real = drops.read_drops
    ran: list = []

    def read_then_run_b(source, ctx, batch):
        frame = real(source, ctx, batch)
        if ctx.spec is specs["orders_raw"] and not ran:
            ran.append(None)
            ran[0] = run_pipeline(specs["returns_raw"], _ctx(settings, "same-run"), catalog)
        return frame

    monkeypatch.setattr(runner, "read_drops", read_then_run_b)
    run_pipeline(specs["orders_raw"], _ctx(settings, "same-run"), catalog)

    assert ran
    assert ran[0][0].rows == 1
    assert _rows(catalog, "orders") == [("1", str(a)), ("2", str(a))]
    assert _rows(catalog, "returns") == [("70", str(b))]
    assert [(r["path"], r["rows"]) for r in _ledger(catalog, "orders_raw")] == [(str(a), 2)]
    assert [(r["path"], r["rows"]) for r in _ledger(catalog, "returns_raw")] == [(str(b), 1)]
    assert not (settings.home / "ingest" / "same-run").exists()


# ----------------------------------------------- finding 11: processed/ copies never replaced


def _drop_twice(settings, spec, catalog, first: str, second: str) -> Path:
    landing = settings.data_dir / "shop" / "landing" / "orders"
    _put(landing / "a.csv", first)
    run_pipeline(spec, _ctx(settings, "first"), catalog)
    _put(landing / "a.csv", second)
    os.utime(landing / "a.csv", (1_700_000_000, 1_700_000_000))  # another version
    run_pipeline(spec, _ctx(settings, "second"), catalog)
    return landing / "a.csv"


def test_a_file_name_dropped_twice_a_day_keeps_both_processed_copies(settings):
    spec = _orders(settings)
    catalog = load_catalog(settings)
    one, two = "order_id,amount\n1,1.5\n", "order_id,amount\n2,2.5\n"
    landed = _drop_twice(settings, spec, catalog, one, two)
    assert [r[0] for r in _rows(catalog, "orders")] == ["1", "2"]
    folder = _day(settings, "processed")
    copies = {p.name: p.read_text() for p in folder.iterdir()}
    assert copies["a.csv"] == one
    (renamed,) = set(copies) - {"a.csv"}
    assert renamed.startswith("a.")
    assert renamed.endswith(".csv")
    assert copies[renamed] == two
    # the ledger says where each version went
    moved = {r["run_id"]: r["moved_to"] for r in _ledger(catalog, "orders_raw")}
    assert moved == {"first": str(folder / "a.csv"), "second": str(folder / renamed)}
    assert not landed.exists()


def test_a_file_name_rejected_twice_a_day_keeps_both_copies_and_reasons(settings):
    spec = _orders(settings)
    catalog = load_catalog(settings)
    _drop_twice(settings, spec, catalog, "", "   \n")
    folder = _day(settings, "rejected")
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 4, names
    data = [n for n in names if not n.endswith(".reason.json")]
    assert sorted(n + ".reason.json" for n in data) == [n for n in names if n not in data]
    assert sorted((folder / n).read_text() for n in data) == ["", "   \n"]
    run_ids = {json.loads((folder / f"{n}.reason.json").read_text())["run_id"] for n in data}
    assert run_ids == {"first", "second"}
    moved = {r["run_id"]: r["moved_to"] for r in _ledger(catalog, "orders_raw")}
    assert sorted(Path(p).name for p in moved.values()) == data


def test_an_identical_redrop_does_not_replace_the_processed_copy(settings):
    spec = _orders(settings)
    catalog = load_catalog(settings)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    for run in ("first", "again"):
        _put(landing / "a.csv", "order_id,amount\n1,1.5\n")
        os.utime(landing / "a.csv", (1_700_000_000, 1_700_000_000))  # same version: cp -p
        run_pipeline(spec, _ctx(settings, run), catalog)
    assert [r[0] for r in _rows(catalog, "orders")] == ["1"]
    assert len(list(_day(settings, "processed").iterdir())) == 2


def test_s3_a_key_dropped_twice_a_day_keeps_both_processed_copies(settings, s3_client):
    client, bucket = s3_client
    spec = _orders(settings, path=s3_client.uri("landing/orders/*.csv"))
    catalog = load_catalog(settings)
    bodies_by_run = {"first": b"order_id,amount\n1,1.5\n", "second": b"order_id,amount\n2,2\n"}
    for run, body in bodies_by_run.items():
        client.put_object(Bucket=bucket, Key="landing/orders/a.csv", Body=body)
        run_pipeline(spec, _ctx(settings, run, lambda: client), catalog)
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert "processed/2026-11-22/orders/a.csv" in keys
    (renamed,) = set(keys) - {"processed/2026-11-22/orders/a.csv"}
    assert renamed.startswith("processed/2026-11-22/orders/a.")
    assert renamed.endswith(".csv")
    bodies = {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}
    assert sorted(bodies.values()) == sorted(bodies_by_run.values())
    moved = {r["moved_to"] for r in _ledger(catalog, "orders_raw")}
    assert moved == {s3_client.uri(k) for k in keys}


def test_s3_store_move_never_replaces(s3_client):
    client, bucket = s3_client
    client.put_object(Bucket=bucket, Key="landing/a.csv", Body=b"new")
    client.put_object(Bucket=bucket, Key="processed/a.csv", Body=b"old")
    with pytest.raises(FileExistsError, match="processed/a.csv"):
        S3Store(client).move(s3_client.uri("landing/a.csv"), s3_client.uri("processed/a.csv"))
    assert client.get_object(Bucket=bucket, Key="processed/a.csv")["Body"].read() == b"old"
    assert client.get_object(Bucket=bucket, Key="landing/a.csv")["Body"].read() == b"new"


@pytest.mark.parametrize("device", ["same", "cross"])
def test_local_store_move_never_replaces(tmp_path, monkeypatch, device):
    src = _put(tmp_path / "landing" / "a.csv", "new")
    dst = _put(tmp_path / "processed" / "a.csv", "old")
    if device == "cross":
        real_link = os.link

        def cross(source, target, **kwargs):
            if os.fspath(source) == "a.csv":  # the landed file, relative to its folder
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real_link(source, target, **kwargs)

        monkeypatch.setattr(store_module.os, "link", cross)
    with pytest.raises(FileExistsError, match=str(dst)):
        LocalStore().move(str(src), str(dst))
    assert dst.read_text() == "old"
    assert src.read_text() == "new"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["a.csv"]  # no temp file left


def test_a_reason_left_by_a_crash_before_the_move_does_not_rename_the_file(settings):
    """The reason is written before the move: a run killed in between leaves it alone in
    rejected/; the next run rejects the file under its own name and rewrites the reason."""
    spec = _orders(settings)
    folder = _day(settings, "rejected")
    _put(folder / "a.csv.reason.json", '{"rule": "empty", "run_id": "killed"}\n')
    _put(settings.data_dir / "shop" / "landing" / "orders" / "a.csv", "")
    run_pipeline(spec, _ctx(settings, "again"), load_catalog(settings))
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv", "a.csv.reason.json"]
    assert json.loads((folder / "a.csv.reason.json").read_text())["run_id"] == "again"
