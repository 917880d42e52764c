"""minAgeSeconds counts from when a file appeared in landing, also for a file written
elsewhere and moved in (`mv` keeps the mtime; the rename sets the ctime)."""

from __future__ import annotations

import os
import time

from datahub_assets.ingest.planner import WatchCursor, plan_tick
from datahub_assets.ingest.store import LocalStore

OLD = time.time() - 3600


def _plan(infos, now, min_age=60):
    return plan_tick(
        infos, WatchCursor(), now, min_age_seconds=min_age, max_files_per_run=10, max_runs=5
    )


def test_a_file_moved_into_landing_is_young_from_the_move(tmp_path):
    elsewhere, landing = tmp_path / "work", tmp_path / "landing"
    elsewhere.mkdir()
    landing.mkdir()
    written = elsewhere / "orders.csv"
    written.write_text("id,amount\n1,10\n")
    os.utime(written, (OLD, OLD))  # written an hour ago
    time.sleep(0.05)
    moved_at = time.time()
    written.rename(landing / "orders.csv")

    st = (landing / "orders.csv").stat()
    assert st.st_mtime == OLD  # rename keeps the mtime ...
    assert st.st_ctime >= moved_at - 0.01  # ... and sets the ctime (Linux filesystems)
    (info,) = LocalStore().list(f"{landing}/*.csv")
    assert info.mtime == OLD
    assert info.modified >= moved_at - 0.01

    young = _plan([info], now=moved_at + 1)
    assert (young.too_young, len(young.batches)) == (1, 0)
    settled = _plan([info], now=info.modified + 61)
    assert (settled.too_young, [f.path for b in settled.batches for f in b.files]) == (
        0,
        [str(landing / "orders.csv")],
    )


def test_a_file_written_in_place_ages_from_its_last_write(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id\n1\n")
    (info,) = LocalStore().list(f"{tmp_path}/*.csv")
    st = path.stat()
    assert info.modified == max(st.st_mtime, st.st_ctime)
    assert _plan([info], now=time.time()).too_young == 1


def test_the_version_follows_the_content_not_the_ctime(tmp_path):
    """A chmod (or the move itself) changes the ctime: the file is the same version, so the
    ledger does not see a new file to ingest."""
    path = tmp_path / "a.csv"
    path.write_text("id\n1\n")
    before = LocalStore().stat(str(path))
    time.sleep(0.05)
    path.chmod(0o600)
    after = LocalStore().stat(str(path))
    assert before is not None
    assert after is not None
    assert after.modified > before.modified
    assert after.fingerprint() == before.fingerprint()
    path.write_text("id\n2\n")  # new content: a new version
    changed = LocalStore().stat(str(path))
    assert changed is not None
    assert changed.fingerprint() != before.fingerprint()
