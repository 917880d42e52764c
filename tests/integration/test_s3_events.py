"""S3 event notifications (SQS) keep a watched S3 path's listing current (`ingest.s3_events`),
on moto's S3 and SQS server: the store answers from the view, not from a new listing."""

from __future__ import annotations

import uuid

import pytest

from datahub_assets.ingest import s3_events
from datahub_assets.ingest.store import S3Store


@pytest.fixture
def events(s3_client, s3_endpoint, monkeypatch):
    import boto3

    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY

    sqs = boto3.client(
        "sqs",
        endpoint_url=s3_endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    url = s3_events.configure_bucket(
        s3_client.client, sqs, s3_client.bucket, f"q-{uuid.uuid4().hex[:12]}"
    )
    monkeypatch.setenv(s3_events.QUEUE_ENV, url)
    views = s3_events.for_queue(url, sqs)
    yield views
    s3_events._QUEUES.pop(url, None)


def _discard(events):
    while messages := events.sqs.receive_message(
        QueueUrl=events.queue_url, MaxNumberOfMessages=10
    ).get("Messages"):
        for m in messages:
            events.sqs.delete_message(QueueUrl=events.queue_url, ReceiptHandle=m["ReceiptHandle"])


def _paths(store, pattern):
    return sorted(i.path for i in store.list(pattern))


def test_the_view_follows_created_and_removed_objects_without_listing(s3_client, events):
    client, bucket = s3_client
    store = S3Store(client, events)
    pattern = s3_client.uri("landing/*.csv")
    client.put_object(Bucket=bucket, Key="landing/a.csv", Body=b"id\n1\n")
    assert _paths(store, pattern) == [s3_client.uri("landing/a.csv")]  # a full listing

    listings = []
    store._list = lambda glob: listings.append(glob) or iter(())  # no listing from now on
    client.put_object(Bucket=bucket, Key="landing/b.csv", Body=b"id\n2\n")
    client.put_object(Bucket=bucket, Key="landing/sub/c.csv", Body=b"id\n3\n")  # not matched
    client.put_object(Bucket=bucket, Key="landing/_tmp.csv", Body=b"id\n3\n")  # ignored name
    client.delete_object(Bucket=bucket, Key="landing/a.csv")
    infos = list(store.list(pattern))
    assert [i.path for i in infos] == [s3_client.uri("landing/b.csv")]
    head = client.head_object(Bucket=bucket, Key="landing/b.csv")
    assert infos[0].etag == head["ETag"].strip('"')
    assert infos[0].size == 5
    assert infos[0].fingerprint() == store.stat(infos[0].path).fingerprint()
    assert listings == []
    store.move(s3_client.uri("landing/b.csv"), s3_client.uri("processed/b.csv"))
    assert _paths(store, pattern) == []


def test_a_stale_view_is_listed_again(s3_client, events):
    client, bucket = s3_client
    store = S3Store(client, events)
    pattern = s3_client.uri("in/*.csv")
    assert _paths(store, pattern) == []
    client.put_object(Bucket=bucket, Key="in/a.csv", Body=b"x")
    _discard(events)  # a missed notification
    assert _paths(store, pattern) == []
    events.relist_seconds = 0
    assert _paths(store, pattern) == [s3_client.uri("in/a.csv")]


def test_records_of_sns_wrapped_and_test_events():
    import json

    inner = {"Records": [{"eventName": "ObjectCreated:Put"}]}
    assert s3_events.records(json.dumps({"Message": json.dumps(inner)})) == inner["Records"]
    assert s3_events.records('{"Event": "s3:TestEvent"}') == []
    assert s3_events.records("not json") == []
    assert s3_events._newer("0A", "9")
    assert not s3_events._newer("09", "0A")
