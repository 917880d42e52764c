"""Registry.validate: a change validated as the whole project loads with it applied, errors
located in the change's files (app-relative), base errors elsewhere left out, hostile files
as located errors, nothing written; and the plan and diff of a change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from datahub_assets.service.registry import validate as validation
from datahub_assets.service.registry.changes import Registry
from datahub_assets.service.registry.diff import change_diff
from datahub_assets.service.registry.errors import PathRefused
from datahub_assets.service.registry.plan import plan
from datahub_assets.spec.errors import SpecErrors
from tests.service.registry_fixtures import (
    BILLION_LAUGHS,
    DOCTYPE_EXTERNAL,
    YAML_BOMB,
    bronze_xml,
    commits,
    raw_xml,
    settings_for,
)


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(settings_for(tmp_path))


def _snapshot(root: Path) -> dict[str, bytes]:
    """The work tree's files (not .git's: overlays are removed there in the background)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = Path(folder) / name
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def test_a_valid_change(registry):
    before = _snapshot(registry.root)
    result = registry.validate(
        "shop", [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}]
    )
    assert result == {"ok": True, "errors": []}
    assert _snapshot(registry.root) == before
    scratch = registry.root / ".git" / validation.OVERLAYS
    deadline = time.monotonic() + 10
    while any(scratch.iterdir()):  # the overlay is removed in the background
        assert time.monotonic() < deadline, list(scratch.iterdir())
        time.sleep(0.05)


def test_the_parse_cache_answers_as_a_fresh_parse():
    from datahub_assets.spec.loader import ParseCache, read_pipeline_text

    cache = ParseCache(read_pipeline_text, size=2)
    text = raw_xml("items")
    first = cache(text, "shop/raw/a.xml")
    assert cache(text, "shop/raw/a.xml") is first
    assert first == read_pipeline_text(text, "shop/raw/a.xml")
    assert cache(text, "shop/raw/b.xml").loc.file == "shop/raw/b.xml"
    bad = text.replace("append", "sideways")
    for _ in range(2):
        with pytest.raises(SpecErrors) as err:
            cache(bad, "shop/raw/c.xml")
        assert "sideways" in str(err.value)
    assert cache(text, "shop/raw/a.xml") is not first  # a.xml was the least recently used


def test_the_loader_itself_is_never_patched(registry):
    """The registry passes its cache to load_project: the module's reader stays the plain
    function, so other loads in the process (the CLI, tests) never go through a cache."""
    from datahub_assets.spec import loader

    registry.validate("shop", [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}])
    assert loader.read_pipeline_text.__name__ == "read_pipeline_text"
    assert not isinstance(loader.read_pipeline_text, loader.ParseCache)


def test_errors_are_located_in_the_change_app_relative(registry):
    bad = raw_xml("items").replace('mode="append"', 'mode="sideways"')
    result = registry.validate("shop", [{"path": "raw/ingest_items.xml", "content": bad}])
    assert not result["ok"]
    [error] = result["errors"]
    assert error["file"] == "raw/ingest_items.xml"
    assert error["line"] > 1
    assert "sideways" in error["message"]


def test_an_error_the_change_causes_in_another_file_is_reported(registry):
    """Deleting the raw pipeline breaks the bronze one that reads its table."""
    result = registry.validate("shop", [{"path": "raw/ingest_orders.xml", "content": None}])
    assert not result["ok"]
    assert [e["file"] for e in result["errors"]] == ["bronze/conform_orders.xml"]
    assert "raw.orders" in result["errors"][0]["message"]


def test_a_change_to_another_app_reports_its_files_pipelines_dir_relative(registry):
    """shop's bronze pipeline reads other.raw.things; removing that table from `other`
    is an error in shop's file, named from the pipelines folder."""
    (registry.root / "shop" / "bronze" / "conform_things.xml").write_text(
        bronze_xml("things", "other.raw.things")
    )
    registry.repo.repo.index.add(["shop/bronze/conform_things.xml"])
    registry.repo.repo.index.commit("add a cross-app reader")
    result = registry.validate("other", [{"path": "raw/ingest_things.xml", "content": None}])
    assert [e["file"] for e in result["errors"]] == ["shop/bronze/conform_things.xml"]


def test_errors_already_at_the_base_elsewhere_are_not_the_change(registry):
    broken = registry.root / "other" / "raw" / "broken.xml"
    broken.write_text("<pipeline id='broken'")
    # committed on the branch by someone else (the base's errors are those of HEAD)
    registry.repo.repo.index.add(["other/raw/broken.xml"])
    registry.repo.repo.index.commit("a broken file elsewhere")
    result = registry.validate(
        "shop", [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}]
    )
    assert result == {"ok": True, "errors": []}
    # ... but the same error in a file of the change is
    result = registry.validate("other", [{"path": "raw/broken.xml", "content": "<pipeline id='x'"}])
    assert not result["ok"]
    assert result["errors"][0]["file"] == "raw/broken.xml"


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("raw/evil.xml", DOCTYPE_EXTERNAL),
        ("raw/lolz.xml", BILLION_LAUGHS),
        ("raw/bomb.yaml", YAML_BOMB),
        ("app.yaml", YAML_BOMB),
        ("jobs/evil.xml", DOCTYPE_EXTERNAL),
    ],
)
def test_hostile_files_are_located_errors(registry, path, content):
    result = registry.validate("shop", [{"path": path, "content": content}])
    assert not result["ok"]
    assert {e["file"] for e in result["errors"]} == {path}
    assert all(e["line"] >= 1 for e in result["errors"]), result
    text = " ".join(e["message"] for e in result["errors"])
    assert "Internal error" not in text
    hostname = Path("/etc/hostname")
    if hostname.exists() and hostname.read_text().strip():
        assert hostname.read_text().strip() not in text


def test_a_base_file_that_is_not_utf8_is_a_located_error(registry):
    (registry.root / "shop" / "raw" / "latin.xml").write_bytes(
        raw_xml("latin").encode() + b"\xff\xfe"
    )
    result = registry.validate("shop", [{"path": "raw/latin.xml", "content": raw_xml("latin")}])
    assert result == {"ok": True, "errors": []}, "the change replaces the bad file"
    result = registry.validate("shop", [{"path": "raw/other.xml", "content": raw_xml("x")}])
    assert result["ok"], "the bad file is the base's, not the change's"


def test_a_crash_of_the_loader_is_a_located_error(registry, monkeypatch):
    def crash(*_args, **_kwargs):
        raise RuntimeError("Internal error in XML Schema validation")

    monkeypatch.setattr(validation, "load_project", crash)
    result = registry.validate("shop", [{"path": "raw/a.xml", "content": raw_xml("a")}])
    assert not result["ok"]
    [error] = result["errors"]
    assert error["file"] == "raw/a.xml"
    assert "loader" in error["message"]


def test_validate_refuses_bad_paths_and_writes_nothing(registry, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (registry.root / "shop" / "gold").symlink_to(outside)
    before = _snapshot(registry.root)
    for path in ("../other/raw/x.xml", "/etc/x.xml", "gold/x.xml", "raw/x.sh"):
        with pytest.raises(PathRefused):
            registry.validate("shop", [{"path": path, "content": raw_xml("x")}])
    assert _snapshot(registry.root) == before
    assert list(outside.iterdir()) == []
    assert len(commits(registry.root)) == 1


def test_plan_added_removed_changed():
    before = {"raw/a.xml": raw_xml("a"), "raw/b.xml": raw_xml("b"), "raw/c.xml": None}
    after = {
        "raw/a.xml": raw_xml("a", "Another description"),
        "raw/b.xml": None,
        "raw/c.xml": raw_xml("c"),
    }
    assert plan("shop", before, after) == {
        "added": [["shop", "raw", "c"]],
        "removed": [["shop", "raw", "b"]],
        "changed": [["shop", "raw", "a"]],
    }
    moved = "\n\n" + raw_xml("a")  # only its line numbers change
    assert plan("shop", {"raw/a.xml": raw_xml("a")}, {"raw/a.xml": moved})["changed"] == []
    assert plan("shop", {"raw/x.xml": None}, {"raw/x.xml": DOCTYPE_EXTERNAL}) == {
        "added": [],
        "removed": [],
        "changed": [],
    }


def test_diff_is_unified_per_file():
    text = change_diff(
        {"raw/a.xml": "one\ntwo\n", "raw/b.xml": None, "raw/c.xml": "gone\n"},
        {"raw/a.xml": "one\nthree\n", "raw/b.xml": "new\n", "raw/c.xml": None},
    )
    assert "--- a/raw/a.xml\n+++ b/raw/a.xml\n" in text
    assert "-two\n+three\n" in text
    assert "--- /dev/null\n+++ b/raw/b.xml\n" in text
    assert "--- a/raw/c.xml\n+++ /dev/null\n" in text
