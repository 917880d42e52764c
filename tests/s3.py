"""S3 fixtures backed by a real S3 endpoint: moto's standalone server on a free loopback port.

Registered in `tests/conftest.py` (`pytest_plugins = ["tests.s3"]`). Code under test talks HTTP
to the server exactly as it would to MinIO or AWS; nothing is patched and no environment
variable is set, so pass the endpoint or the client explicitly:

    def test_x(s3_client):
        client, bucket = s3_client          # a fresh, empty bucket per test
        client.put_object(Bucket=bucket, Key="landing/a.csv", Body=b"id\\n1\\n")
        store = S3Store(client)
        list(store.list(s3_client.uri("landing/*.csv")))
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def use_bucket_env(monkeypatch: pytest.MonkeyPatch, client: Any) -> None:
    """The AWS environment of the moto server behind `client` for this test (boto3, Spark's
    S3A and pyiceberg read it), with no other endpoint, session or profile around."""
    env = {
        "AWS_ENDPOINT_URL": client.meta.endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


class S3Bucket(NamedTuple):
    """A boto3 client for the test endpoint and a bucket created for one test."""

    client: Any
    bucket: str

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"


def make_client(endpoint: str) -> Any:
    """A boto3 S3 client for `endpoint` with the dummy credentials moto accepts."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """`http://127.0.0.1:<port>` of a moto S3 server running for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_client(s3_endpoint: str) -> Iterator[S3Bucket]:
    """`(client, bucket)`: a client for the session's endpoint and a fresh bucket, removed
    with its objects after the test."""
    client = make_client(s3_endpoint)
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    yield S3Bucket(client, bucket)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
    client.delete_bucket(Bucket=bucket)
