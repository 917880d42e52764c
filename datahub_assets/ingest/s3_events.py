"""S3 event notifications keep the listing of a watched S3 path current between full listings.

Listing 100,000 objects takes 100 `ListObjectsV2` round trips every tick. With
`DATAHUB_S3_EVENTS_QUEUE_URL` set (an SQS queue receiving the bucket's `s3:ObjectCreated:*`
and `s3:ObjectRemoved:*` notifications, directly or through SNS), `S3Store.list` answers from
a *view* instead: the files of the pattern as of its last full listing, updated with the
events received since. A tick then costs one `ReceiveMessage` (plus one per 10 events) and
the glob match of the view, whatever the size of the backlog.

Protocol (per process; the view lives in the memory of the code server that evaluates the
sensors, so a restart costs one full listing):

1. No view of the pattern yet, or its full listing is older than `DATAHUB_S3_RELIST_SECONDS`
   (default 900): list the pattern fully (the fallback that catches whatever notifications
   missed: a queue configured late, an expired message, a prefix without notifications),
   then apply the queued events.
2. Every call: drain the queue (messages are deleted once applied) and apply each record to
   every view of its bucket in this process: created -> the file (size, ETag, event time as
   modification time) if the pattern lists it; removed -> gone. Records are applied per key
   in S3's `sequencer` order (a late, older record never overrides a newer one).
3. Answer the files of the view.

Only the *listing* comes from events: a run still stats every file it was asked for, and the
fingerprint (path, size, ETag) is the same whether a file was listed or notified, so a stale
view can at worst ask for a file that is gone (the run leaves it, "no longer in landing") or
ask for a new file one relist later. One queue per process that evaluates the sensors
(every sensor of a code location shares the views): two processes draining one queue would
each miss the other's events until their next full listing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.paths import compiled

QUEUE_ENV, RELIST_ENV = "DATAHUB_S3_EVENTS_QUEUE_URL", "DATAHUB_S3_RELIST_SECONDS"
DEFAULT_RELIST_SECONDS = 900.0


@dataclass
class _View:
    pattern: str
    bucket: str
    listed_at: float
    files: dict[str, FileInfo] = field(default_factory=dict)
    sequencers: dict[str, str] = field(default_factory=dict)


def _newer(sequencer: str, previous: str | None) -> bool:
    """S3 sequencers compare as hex strings of different lengths: pad, then compare."""
    if previous is None or not sequencer:
        return True
    width = max(len(sequencer), len(previous))
    return sequencer.rjust(width, "0") >= previous.rjust(width, "0")


def records(body: str) -> list[dict]:
    """The S3 event records of one SQS message body (plain, or wrapped by SNS)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    if isinstance(doc, dict) and "Records" not in doc and isinstance(doc.get("Message"), str):
        return records(doc["Message"])
    return doc.get("Records", []) if isinstance(doc, dict) else []


def _event_time(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return time.time()


class EventViews:
    """The views of one SQS queue (one per process: `for_queue`)."""

    def __init__(self, sqs: Any, queue_url: str, relist_seconds: float) -> None:
        self.sqs, self.queue_url, self.relist_seconds = sqs, queue_url, relist_seconds
        self.views: dict[tuple[str, str], _View] = {}
        self.lock = threading.Lock()

    def list(
        self,
        endpoint: str,
        bucket: str,
        pattern: str,
        full_listing: Callable[[], Iterator[FileInfo]],
    ) -> list[FileInfo]:
        with self.lock:
            key = (endpoint, pattern)
            view = self.views.get(key)
            if view is None or time.time() - view.listed_at >= self.relist_seconds:
                started = time.time()
                view = _View(pattern, bucket, started, files={i.path: i for i in full_listing()})
                self.views[key] = view
            self.drain()
            return list(view.files.values())

    def drain(self) -> int:
        """Receive and apply every queued event; the number of records applied."""
        applied = 0
        while True:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            messages = response.get("Messages", [])
            if not messages:
                return applied
            for message in messages:
                for record in records(message.get("Body", "")):
                    applied += self.apply(record)
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    def apply(self, record: dict) -> int:
        name = str(record.get("eventName", ""))
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        if not bucket or "key" not in obj:
            return 0
        key = unquote_plus(obj["key"])
        sequencer = str(obj.get("sequencer", ""))
        created = name.startswith("ObjectCreated")
        if not created and not name.startswith("ObjectRemoved"):
            return 0
        for view in self.views.values():
            if view.bucket != bucket:
                continue
            path = f"s3://{bucket}/{key}"
            if not _newer(sequencer, view.sequencers.get(path)):
                continue
            view.sequencers[path] = sequencer
            if created and not key.endswith("/") and compiled(view.pattern).lists(path):
                view.files[path] = FileInfo(
                    path,
                    int(obj.get("size", 0)),
                    _event_time(record.get("eventTime", "")),
                    str(obj.get("eTag", "")).strip('"') or None,
                )
            else:
                view.files.pop(path, None)
        return 1


_QUEUES: dict[str, EventViews] = {}
_QUEUES_LOCK = threading.Lock()


def for_queue(
    queue_url: str | None = None,
    sqs: Any = None,
    relist_seconds: float = DEFAULT_RELIST_SECONDS,
) -> EventViews | None:
    """The process's views of `queue_url` (DATAHUB_S3_EVENTS_QUEUE_URL, passed in from
    `Settings.s3_events_queue_url`), or None when no queue is configured. The SQS client
    comes from boto3's environment (AWS_ENDPOINT_URL[_SQS], AWS_REGION, keys)."""
    if not queue_url:
        return None
    with _QUEUES_LOCK:
        views = _QUEUES.get(queue_url)
        if views is None:
            if sqs is None:
                import boto3

                sqs = boto3.client("sqs")
            views = _QUEUES[queue_url] = EventViews(sqs, queue_url, relist_seconds)
        return views


def configure_bucket(s3_client: Any, sqs: Any, bucket: str, queue_name: str) -> str:
    """Create `queue_name` and point `bucket`'s object created/removed notifications at it
    (for tests, benchmarks and `datahub`-managed buckets); the queue URL."""
    url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3_client.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}
            ]
        },
    )
    return url
