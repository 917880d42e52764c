"""Where a CSV export may write (issue #19 finding 6): below the app's data folder, or below a
folder the operator allows in DATAHUB_EXPORT_ROOTS; never `..` out of it. The loader refuses
any other path at its file:line, before a run could replace (delete) the folder there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from spec_helpers import find_error, write
from test_spec_rules import line_of, load_errors, pipeline

from datahub_assets.spec.loader import load_project
from datahub_resources.settings import Settings


def _settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(
        {"DATAHUB_HOME": str(tmp_path / "home"), "DATAHUB_DATA_DIR": str(tmp_path / "data"), **env}
    )


def test_relative_data_paths_cannot_leave_the_apps_folder(tmp_path):
    s = _settings(tmp_path)
    assert s.data_path("shop", "landing/*.csv") == str(tmp_path / "data/shop/landing/*.csv")
    for bad in ("../crm/landing/*.csv", "service/../../crm/x", ".."):
        with pytest.raises(ValueError, match=r"'\.\.'"):
            s.data_path("shop", bad)


def test_exports_stay_below_the_apps_data_folder(tmp_path):
    s = _settings(tmp_path)
    data = tmp_path / "data"
    assert s.export_path("shop", "service/x/%Y") == str(data / "shop/service/x/%Y")
    assert s.export_path("shop", str(data / "shop/service/y")) == str(data / "shop/service/y")
    refused = {
        "/data/shared": "outside",
        str(data / "crm/service/x"): "outside",  # another app's folder
        str(data / "shop"): "outside",  # the app's folder itself
        str(data / "shop2/x"): "outside",  # a sibling with the same prefix
        "file:///etc": "outside",
        "s3://other-bucket/exports/x": "outside",
        "hdfs://nn/x": "outside",
        "../crm/service/x": "'..'",
        "service/../../crm": "'..'",
        f"{data}/shop/../crm/x": "'..'",
        "": "names the app's data folder itself",
        ".": "names the app's data folder itself",
        "./": "names the app's data folder itself",
    }
    for path, why in refused.items():
        assert why in (s.export_path_problem("shop", path) or ""), path
        with pytest.raises(ValueError, match=f'export path "{re.escape(path)}" '):
            s.export_path("shop", path)


def test_export_roots_allow_folders_and_buckets_outside_the_data_root(tmp_path):
    s = _settings(tmp_path, DATAHUB_EXPORT_ROOTS=" /srv/outbox/ , s3a://partner/drop ,")
    assert s.export_roots == ("/srv/outbox", "s3://partner/drop")
    assert s.export_path("shop", "/srv/outbox/shop/x") == "/srv/outbox/shop/x"
    assert s.export_path("shop", "file:///srv/outbox/y") == "file:///srv/outbox/y"
    assert s.export_path("shop", "s3://partner/drop/x") == "s3://partner/drop/x"
    assert s.export_path("shop", "s3a://partner/drop/x") == "s3a://partner/drop/x"
    for path in ("/srv/outbox", "/srv/outbox2/x", "s3://partner/drop", "s3://partner/dropx/y"):
        assert "outside" in (s.export_path_problem("shop", path) or ""), path
    assert "'..'" in (s.export_path_problem("shop", "/srv/outbox/../etc") or "")


def test_exports_on_an_s3_data_root(tmp_path):
    s = _settings(tmp_path, DATAHUB_DATA_DIR="s3://lake/data")
    assert s.export_path("shop", "service/x") == "s3://lake/data/shop/service/x"
    assert s.export_path("shop", "s3://lake/data/shop/service/y") == "s3://lake/data/shop/service/y"
    assert s.export_path("shop", "s3a://lake/data/shop/z") == "s3a://lake/data/shop/z"
    for path in ("s3://lake/data/crm/x", "s3://lake/other", "s3://lake/data/shop", "/tmp/x"):
        assert "outside" in (s.export_path_problem("shop", path) or ""), path


def _project(targets: str) -> tuple[str, str]:
    text = pipeline(pid="exp", layer="service", targets=targets)
    return "shop/service/exp.xml", text


def test_the_loader_refuses_exports_outside_the_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAHUB_EXPORT_ROOTS", raising=False)
    targets = (
        '<csv name="a" path="/data/shared" mode="overwrite"/>\n'
        '<csv name="b" path="../crm/service/x"/>\n'
        '<csv name="c" path="s3://other-bucket/x"/>\n'
        '<csv name="d" path="service/ok/%Y"/>'
    )
    rel, text = _project(targets)
    errors = load_errors(tmp_path, {rel: text})
    find_error(
        errors,
        rel,
        line_of(text, "/data/shared"),
        'path="/data/shared" on <csv> target "a"',
        "outside",
        "DATAHUB_EXPORT_ROOTS",
    )
    find_error(errors, rel, line_of(text, "../crm"), 'path="../crm/service/x"', "'..'")
    find_error(errors, rel, line_of(text, "other-bucket"), 's3://other-bucket/x"', "outside")
    assert not [e for e in errors if e.line == line_of(text, "service/ok")]


def test_the_loader_refuses_relative_source_paths_with_dotdot(tmp_path):
    text = pipeline(sources='<csv id="a" path="../crm/landing/*.csv"/>')
    errors = load_errors(tmp_path, {"shop/silver/p.xml": text})
    find_error(errors, "shop/silver/p.xml", line_of(text, "../crm"), 'path="../crm/landing', "'..'")


def test_the_loader_accepts_exports_below_an_export_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAHUB_EXPORT_ROOTS", "/srv/outbox,s3://partner/drop")
    targets = (
        '<csv name="a" path="/srv/outbox/shop/a"/>\n<csv name="b" path="s3://partner/drop/b"/>'
    )
    rel, text = _project(targets)
    project = load_project(write(tmp_path / "pipelines", {rel: text}))
    assert [str(t.ref) for t in project.pipelines[0].targets] == [
        "shop.service.a",
        "shop.service.b",
    ]


def test_a_relative_export_root_names_the_variable(tmp_path):
    with pytest.raises(ValueError, match=r"DATAHUB_EXPORT_ROOTS='out,/srv/x': 'out' is neither"):
        _settings(tmp_path, DATAHUB_EXPORT_ROOTS="out,/srv/x")
