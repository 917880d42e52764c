"""The folder a private database server keeps its files in when it runs as root (issue #19
finding 12): `/var/tmp/datahub-servers/<user>-<hash>` has a predictable name in a folder
every local user can write to, so another user could put a link or a folder of theirs there
first and have root chown or chmod what it points to. Such a folder is now refused; the
folders are made by root, the shared one writable by root only."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from datahub_assets.demo import local_servers

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the service folder is only used when the servers run as root"
)
USER = "postgres"


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    """SERVICE_BASE in tmp_path; the caller's root is unreachable for the service user (pytest's
    tmp dir is private to root), so `_service_home` falls back to it."""
    pytest.importorskip("pwd")
    try:
        _uid(USER)
    except KeyError:
        pytest.skip(f"no {USER} user")
    (tmp_path / "caller").mkdir()  # the caller's root (start_postgres makes it first)
    folder = tmp_path / "var-tmp" / "datahub-servers"
    folder.parent.mkdir()
    folder.parent.chmod(0o1777)  # like /var/tmp
    monkeypatch.setattr(local_servers, "SERVICE_BASE", folder, raising=False)
    return folder


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "etc"
    victim.mkdir()
    victim.chmod(0o755)
    (victim / "shadow").write_text("root:x:1")
    (victim / "shadow").chmod(0o600)
    return victim


def _unchanged(victim: Path) -> bool:
    st, shadow = victim.stat(), (victim / "shadow").stat()
    return (
        stat.S_IMODE(st.st_mode) == 0o755
        and st.st_uid == 0
        and shadow.st_uid == 0
        and stat.S_IMODE(shadow.st_mode) == 0o600
    )


def test_a_link_in_place_of_the_shared_folder_is_refused(tmp_path, base):
    """Before: `chmod 1777` through the link made the linked folder (/etc) world-writable."""
    victim = _victim(tmp_path)
    base.symlink_to(victim, target_is_directory=True)
    with pytest.raises(local_servers.LocalServerError, match="not a folder owned by root"):
        local_servers._service_home(tmp_path / "caller", USER)
    assert _unchanged(victim)
    assert sorted(p.name for p in victim.iterdir()) == ["shadow"]


def test_a_folder_another_user_made_first_is_refused(tmp_path, base):
    """Before: root took the other user's folder as is (chown -R to the service user), with the
    links that user had put in it: the server then wrote its log through them."""
    victim = _victim(tmp_path)
    base.mkdir(mode=0o1777)
    base.chmod(0o1777)  # what earlier versions made
    digest = hashlib.sha1(str((tmp_path / "caller").resolve()).encode())
    planted = base / f"{USER}-{digest.hexdigest()[:12]}"
    planted.mkdir()
    (planted / "pg.log").symlink_to(victim / "shadow")
    os.chown(planted, _uid("nobody"), -1)
    with pytest.raises(local_servers.LocalServerError, match=f"{planted}.*owned by"):
        local_servers._service_home(tmp_path / "caller", USER)
    assert _unchanged(victim)
    assert os.lstat(planted).st_uid == _uid("nobody")
    assert stat.S_IMODE(base.stat().st_mode) == 0o755  # tightened: only root makes entries


def test_the_service_folder_is_made_private_and_reused(tmp_path, base):
    home, prefix = local_servers._service_home(tmp_path / "caller", USER)
    assert prefix == ["runuser", "-u", USER, "--"]
    assert home.parent == base
    st_base, st_home = os.lstat(base), os.lstat(home)
    assert (st_base.st_uid, stat.S_IMODE(st_base.st_mode)) == (0, 0o755)
    assert stat.S_ISDIR(st_home.st_mode)
    assert (st_home.st_uid, stat.S_IMODE(st_home.st_mode)) == (_uid(USER), 0o700)
    assert local_servers._service_home(tmp_path / "caller", USER)[0] == home
