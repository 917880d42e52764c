"""The sensor's tick planning: age, in-flight, batching, retry backoff, cursor round trip."""

from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.planner import WatchCursor, plan_tick, settle, short_fingerprint

NOW = 1_000_000.0


def _files(n, modified=NOW - 100, prefix="/d/landing/f"):
    return [FileInfo(f"{prefix}{i:05d}.csv", 10 + i, modified - i) for i in range(n)]


def _plan(listing, cursor=None, **kw):
    args = {"min_age_seconds": 10, "max_files_per_run": 500, "max_runs": 20, **kw}
    return plan_tick(listing, cursor or WatchCursor(), NOW, **args)


def test_new_files_are_batched_oldest_first_within_limits():
    files = _files(1203)
    plan = _plan(files)
    assert [len(b.files) for b in plan.batches] == [500, 500, 203]
    requested = [f for b in plan.batches for f in b.files]
    assert sorted(requested) == sorted(files)
    assert [f.modified for f in requested] == sorted(f.modified for f in files)
    assert len({b.batch_id for b in plan.batches}) == 3


def test_too_young_files_wait():
    young = FileInfo("/d/landing/new.csv", 5, NOW - 3)
    plan = _plan([young, *_files(2)])
    assert plan.too_young == 1
    assert young not in plan.batches[0].files
    assert len(plan.batches[0].files) == 2


def test_in_flight_files_are_not_requested_again_until_their_run_ends():
    files = _files(3)
    first = _plan(files)
    cursor = WatchCursor.parse(first.cursor.dumps())
    second = plan_tick(
        files, cursor, NOW + 30, min_age_seconds=10, max_files_per_run=500, max_runs=20
    )
    assert second.batches == []
    assert second.in_flight == 3
    batch_id = first.batches[0].batch_id
    # the run ended (succeeded, but a file is still listed: e.g. its move failed)
    settle(cursor, NOW + 60, active=set(), failed=set(), grace_seconds=0, poll_seconds=30)
    third = plan_tick(
        files, cursor, NOW + 60, min_age_seconds=10, max_files_per_run=500, max_runs=20
    )
    assert batch_id not in cursor.batches or third.batches
    assert sorted(f for b in third.batches for f in b.files) == sorted(files)


def test_a_batch_without_a_run_yet_stays_in_flight_during_the_grace_period():
    files = _files(2)
    cursor = _plan(files).cursor
    settle(cursor, NOW + 10, active=set(), failed=set(), grace_seconds=120, poll_seconds=30)
    assert _plan(files, cursor).batches == []


def test_files_of_failed_runs_back_off_exponentially():
    files = _files(2)
    cursor = _plan(files).cursor
    (batch_id,) = cursor.batches
    settle(cursor, NOW, active=set(), failed={batch_id}, grace_seconds=120, poll_seconds=30)
    fp = short_fingerprint(files[0])
    assert cursor.retry[fp] == [1, NOW + 60]
    waiting = plan_tick(
        files, cursor, NOW + 59, min_age_seconds=10, max_files_per_run=500, max_runs=20
    )
    assert waiting.batches == []
    assert waiting.waiting_retry == 2
    again = plan_tick(
        files, cursor, NOW + 61, min_age_seconds=10, max_files_per_run=500, max_runs=20
    )
    assert len(again.batches) == 1
    (second,) = [b for b in cursor.batches if b != batch_id]
    settle(cursor, NOW + 62, active=set(), failed={second}, grace_seconds=120, poll_seconds=30)
    assert cursor.retry[fp] == [2, NOW + 62 + 120]


def test_a_changed_file_is_a_new_file():
    original = FileInfo("/d/landing/a.csv", 10, NOW - 100)
    cursor = _plan([original]).cursor
    changed = FileInfo("/d/landing/a.csv", 12, NOW - 50)
    plan = _plan([changed], cursor)
    assert [b.files for b in plan.batches] == [(changed,)]


def test_backlog_beyond_one_tick_is_left_for_the_next():
    plan = _plan(_files(30), max_files_per_run=5, max_runs=2)
    assert [len(b.files) for b in plan.batches] == [5, 5]
    assert plan.left_for_next_tick == 20


def test_cursor_round_trip_and_garbage():
    cursor = _plan(_files(4)).cursor
    again = WatchCursor.parse(cursor.dumps())
    assert again.in_flight() == cursor.in_flight()
    assert len(again.in_flight()) == 4
    assert WatchCursor.parse("not json").batches == {}
    assert WatchCursor.parse(None).batches == {}


def test_no_more_than_max_runs_batches_are_in_flight():
    files = _files(30)
    first = _plan(files, max_files_per_run=5, max_runs=2)
    assert [len(b.files) for b in first.batches] == [5, 5]
    blocked = plan_tick(
        files, first.cursor, NOW + 30, min_age_seconds=10, max_files_per_run=5, max_runs=2
    )
    assert blocked.batches == []
    assert blocked.left_for_next_tick == 20
    assert len(blocked.cursor.in_flight()) == 10
    (done, _) = blocked.cursor.batches
    blocked.cursor.batches.pop(done)  # one run ended (its files moved out of landing)
    listing = [
        f
        for f in files
        if short_fingerprint(f) in blocked.cursor.in_flight()
        or f not in first.batches[0].files + first.batches[1].files
    ]
    nxt = plan_tick(
        listing, blocked.cursor, NOW + 60, min_age_seconds=10, max_files_per_run=5, max_runs=2
    )
    assert [len(b.files) for b in nxt.batches] == [5]


def test_a_batch_whose_run_succeeded_is_forgotten_at_once():
    cursor = _plan(_files(2)).cursor
    (batch_id,) = cursor.batches
    settle(
        cursor,
        NOW + 1,
        active=set(),
        failed=set(),
        grace_seconds=120,
        poll_seconds=30,
        succeeded={batch_id},
    )
    assert cursor.batches == {}
    assert cursor.retry == {}
