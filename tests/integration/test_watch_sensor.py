"""The real Dagster sensor of a `<watch>`ed source: ticks, cursor, run requests, the runs they
start (through Dagster), observations of rejected files, and eager automation downstream."""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import pytest

from datahub_assets.orchestration import sensors
from datahub_assets.orchestration.project import build_assets
from datahub_assets.orchestration.sensors import BATCH_TAG, INGEST_TAG, WATCH_TAG, watch_sensors
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources

pytestmark = pytest.mark.spark

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv">
      <watch pollSeconds="15" minAgeSeconds="5" maxFilesPerRun="2"/>
    </csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>
"""
BRONZE = """<pipeline id="orders" version="1.0.0" layer="bronze">
  <sources><table id="o" ref="raw.orders"/></sources>
  <targets><table table="orders" mode="overwrite"/></targets>
</pipeline>
"""
OLD = time.time() - 3600


def age_by_mtime(monkeypatch):
    """Files backdated with os.utime count as old here (this module is about batches, not
    about when a file appeared: the utime sets the ctime that minAgeSeconds counts from,
    see tests/unit/test_ingest_appeared.py)."""
    from datahub_assets.ingest.fileinfo import FileInfo

    monkeypatch.setattr(
        FileInfo,
        "local",
        classmethod(lambda cls, path, st: cls(path, st.st_size, st.st_mtime, mtime=st.st_mtime)),
    )


@pytest.fixture
def project(settings, monkeypatch):
    age_by_mtime(monkeypatch)
    app = settings.pipelines_dir / "shop"
    for layer, text in (("raw", RAW), ("bronze", BRONZE)):
        (app / layer).mkdir(parents=True)
        (app / layer / "orders.xml").write_text(text)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    project = load_project(settings.pipelines_dir)
    defs = dg.Definitions(
        assets=build_assets(project), sensors=watch_sensors(project), resources=resources()
    )
    with dg.instance_for_test() as instance:
        yield defs, instance, landing


def _drop(landing, name, text, mtime=OLD):
    path = landing / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def _tick(defs, instance, cursor=None):
    sensor = defs.get_sensor_def("watch__shop__orders_raw__orders")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"s3": resources()["s3"]}
    )
    return sensor.evaluate_tick(context)


def _launch(defs, instance, request):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=request.run_config,
        instance=instance,
        tags=request.tags,
        asset_selection=list(request.asset_selection),
        raise_on_error=False,
    )


def test_the_sensor_is_declared_from_the_watch_element(project):
    defs, _, _ = project
    sensor = defs.get_sensor_def("watch__shop__orders_raw__orders")
    assert sensor.minimum_interval_seconds == 15
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.asset_selection is not None


def test_ticks_request_bounded_batches_and_never_repeat_in_flight_files(project):
    defs, instance, landing = project
    files = [_drop(landing, f"{n}.csv", f"id,amount\n{n},1\n", OLD + n) for n in range(3)]
    _drop(landing, "young.csv", "id,amount\n9,1\n", mtime=time.time())

    first = _tick(defs, instance)
    assert [
        len(r.run_config["ops"]["shop__raw__orders"]["config"]["files"]["orders"])
        for r in first.run_requests
    ] == [2, 1]
    requested = [
        p
        for r in first.run_requests
        for p in r.run_config["ops"]["shop__raw__orders"]["config"]["files"]["orders"]
    ]
    assert requested == [str(f) for f in files]  # oldest first, the young file waits
    request = first.run_requests[0]
    assert request.tags[WATCH_TAG] == "watch__shop__orders_raw__orders"
    assert request.tags[INGEST_TAG] == "shop.orders_raw"
    assert request.run_key == request.tags[BATCH_TAG]
    assert [k.to_user_string() for k in request.asset_selection] == ["shop/raw/orders"]

    again = _tick(defs, instance, first.cursor)
    assert again.run_requests == []
    assert "in flight 3" in again.skip_message

    result = _launch(defs, instance, request)
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert meta["dagster/row_count"].value == 2
    assert meta["datahub/files_ingested"].value == 2
    assert not files[0].exists()
    assert not files[1].exists()
    assert files[2].exists()


def test_finished_batches_are_forgotten_and_unfinished_files_asked_for_again(project, monkeypatch):
    defs, instance, landing = project
    a = _drop(landing, "a.csv", "id,amount\n1,1\n")
    first = _tick(defs, instance)
    (request,) = first.run_requests
    # no run was launched for the request (e.g. the daemon died): after the grace period the
    # file is asked for again, in a new batch
    later = time.time() + 600
    monkeypatch.setattr(sensors.time, "time", lambda: later)
    second = _tick(defs, instance, first.cursor)
    (retry,) = second.run_requests
    assert retry.run_key != request.run_key
    assert retry.run_config["ops"]["shop__raw__orders"]["config"]["files"]["orders"] == [str(a)]


def test_rejected_files_show_as_observations_and_nothing_materialises(project):
    defs, instance, landing = project
    _drop(landing, "empty.csv", "")
    (request,) = _tick(defs, instance).run_requests
    result = _launch(defs, instance, request)
    assert result.success
    assert result.get_asset_materialization_events() == []
    observations = [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    rules = [
        o.metadata["datahub/rejected_rule"].value
        for o in observations
        if "datahub/rejected_rule" in o.metadata
    ]
    assert rules == ["empty"]
    moved = json.loads(
        next((landing.parent.parent / "rejected").rglob("*.reason.json")).read_text()
    )
    assert moved["rule"] == "empty"
    assert moved["run_id"] == result.run_id


def test_downstream_assets_follow_a_landed_file_by_eager_automation(project):
    defs, instance, landing = project
    _drop(landing, "a.csv", "id,amount\n1,1\n")
    (request,) = _tick(defs, instance).run_requests
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert before.total_requested == 0
    assert _launch(defs, instance, request).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    assert {r.key.to_user_string() for r in after.results if r.true_subset.size} == {
        "shop/bronze/orders"
    }
    # bronze runs; a second file lands before the automation's next tick: bronze must follow
    # again (Dagster's stock eager() loses this update: dagster-io/dagster#24650)
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["shop", "bronze", "orders"])]
    ).success
    _drop(landing, "b.csv", "id,amount\n2,2\n")
    (request,) = _tick(defs, instance).run_requests
    assert _launch(defs, instance, request).success
    again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor)
    assert {r.key.to_user_string() for r in again.results if r.true_subset.size} == {
        "shop/bronze/orders"
    }
    assert job.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey(["shop", "bronze", "orders"])]
    ).success
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=again.cursor)
    assert settled.total_requested == 0


def test_files_of_a_failed_run_are_asked_for_again_after_a_backoff(project, monkeypatch):
    defs, instance, landing = project
    a = _drop(landing, "a.csv", "id,amount\n1,1\n")
    first = _tick(defs, instance)
    from datahub_assets.iceberg import tables as publish

    def unreachable(*_args, **_kwargs):
        raise RuntimeError("catalog unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(publish, "commit_tables", unreachable)
        assert not _launch(defs, instance, first.run_requests[0]).success
    assert a.exists()  # nothing committed, the file waits in landing

    waiting = _tick(defs, instance, first.cursor)  # the run failed: back off 2 x 15 s
    assert waiting.run_requests == []
    assert "waiting to retry 1" in waiting.skip_message
    later = time.time() + 31
    monkeypatch.setattr(sensors.time, "time", lambda: later)
    (retry,) = _tick(defs, instance, waiting.cursor).run_requests
    assert _launch(defs, instance, retry).success
    assert not a.exists()


def test_s3_drops_through_the_dagster_s3_resource_with_an_endpoint_override(settings, s3_client):
    """The sensor lists and the run reads, validates and moves objects on a real S3 endpoint
    (moto's server), configured only through dagster-aws's S3Resource."""
    from dagster_aws.s3 import S3Resource

    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY

    client, bucket = s3_client
    app = settings.pipelines_dir / "shop" / "raw"
    app.mkdir(parents=True)
    (app / "orders.xml").write_text(
        RAW.replace(
            'path="landing/orders/*.csv"', f'path="{s3_client.uri("landing/orders/*.csv")}"'
        ).replace('minAgeSeconds="5"', 'minAgeSeconds="0"')
    )
    project = load_project(settings.pipelines_dir)
    s3 = S3Resource(
        endpoint_url=client.meta.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    defs = dg.Definitions(
        assets=build_assets(project),
        sensors=watch_sensors(project),
        resources={**resources(), "s3": s3},
    )
    for name, body in (
        ("a.csv", b"id,amount\n1,1\n2,2\n"),
        ("b.csv", b""),
        ("c.csv", b"id,amount\n3,3\n"),
    ):
        client.put_object(Bucket=bucket, Key=f"landing/orders/{name}", Body=body)
    with dg.instance_for_test() as instance:
        sensor = defs.get_sensor_def("watch__shop__orders_raw__orders")
        tick = sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs, resources={"s3": s3})
        )
        assert [
            len(r.run_config["ops"]["shop__raw__orders"]["config"]["files"]["orders"])
            for r in tick.run_requests
        ] == [2, 1]
        for request in tick.run_requests:
            assert _launch(defs, instance, request).success
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    day = keys[0].split("/")[1]
    assert keys == [
        f"processed/{day}/orders/a.csv",
        f"processed/{day}/orders/c.csv",
        f"rejected/{day}/orders/b.csv",
        f"rejected/{day}/orders/b.csv.reason.json",
    ]
    from datahub_assets.iceberg.read import read_table
    from datahub_assets.spec.models import TableRef
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.spark import connect

    rows = read_table(
        connect(), load_catalog(settings), TableRef(app="shop", layer="raw", table="orders")
    ).collect()
    assert sorted((r["id"], r["_source_file"]) for r in rows) == [
        ("1", s3_client.uri("landing/orders/a.csv")),
        ("2", s3_client.uri("landing/orders/a.csv")),
        ("3", s3_client.uri("landing/orders/c.csv")),
    ]
