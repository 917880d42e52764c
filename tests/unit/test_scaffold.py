"""`datahub new`: every template validates with the project's loader, bad requests are refused
with the reason, and an invalid result is never left behind."""

from __future__ import annotations

import itertools

import pytest

from datahub_assets import cli
from datahub_assets.cli.scaffold import (
    SOURCES,
    TARGETS,
    Request,
    ScaffoldError,
    new_app,
    new_pipeline,
)
from datahub_assets.spec.loader import load_project

UPSTREAM = Request(app="shop", layer="raw", id="orders", source="csv", target="table")


@pytest.fixture
def pipes(tmp_path):
    root = tmp_path / "pipelines"
    new_app(root, "shop")
    new_pipeline(root, UPSTREAM)  # a table for `table` sources to read
    return root


@pytest.mark.parametrize("layer", ["raw", "silver"])
@pytest.mark.parametrize(("source", "target"), list(itertools.product(SOURCES, TARGETS)))
def test_every_source_and_target_validates(pipes, layer, source, target):
    req = Request(app="shop", layer=layer, id=f"p_{source}_{target}", source=source, target=target)
    path, project = new_pipeline(pipes, req)
    assert path == pipes / "shop" / layer / f"p_{source}_{target}.xml"
    spec = next(p for p in project.pipelines if p.pipeline.id == req.id)
    assert spec.pipeline.sources[0].kind == source
    assert spec.targets[0].target.kind == target
    if source == "table":
        assert [str(r) for r in spec.upstream] == ["shop.raw.orders"]
    watched = getattr(spec.pipeline.sources[0], "watch", None) is not None
    assert watched == (
        layer == "raw" and target == "table" and source in ("csv", "json", "parquet")
    )
    assert load_project(pipes)  # what `datahub validate` loads


def test_incremental_database_source_merges_on_keys(pipes):
    req = Request(
        app="shop",
        layer="raw",
        id="customers",
        source="database",
        target="table",
        incremental="updated_at",
        keys="customer_id",
    )
    _, project = new_pipeline(pipes, req)
    spec = next(p for p in project.pipelines if p.pipeline.id == "customers")
    assert spec.pipeline.sources[0].incremental.column == "updated_at"
    table = spec.targets[0].target
    assert (table.mode, list(table.keys)) == ("merge", ["customer_id"])


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (
            Request("shop", "raw", "c", "database", "csv", incremental="ts", keys="id"),
            "--incremental needs --target table",
        ),
        (Request("shop", "raw", "c", "database", "table", incremental="ts"), "needs --keys"),
        (
            Request("shop", "raw", "c", "csv", "table", incremental="ts", keys="id"),
            "is for --source database",
        ),
        (Request("Shop", "raw", "c", "csv", "table"), 'app name "Shop" is not valid'),
        (Request("shop", "platinum", "c", "csv", "table"), 'layer "platinum" is not valid'),
        (Request("shop", "raw", "1c", "csv", "table"), 'pipeline id "1c" is not valid'),
        (Request("shop", "raw", "c", "excel", "table"), "--source excel is not valid"),
        (
            Request("shop", "raw", "c", "csv", "table", ref="shop.raw.orders"),
            "--ref is for --source table",
        ),
    ],
)
def test_bad_requests_are_refused_with_the_reason(pipes, req, message):
    with pytest.raises(ScaffoldError, match=message.replace("-", "\\-")):
        new_pipeline(pipes, req)
    assert not (pipes / req.app / req.layer / f"{req.id}.xml").exists()


def test_an_existing_file_is_never_overwritten(pipes):
    before = (pipes / "shop" / "raw" / "orders.xml").read_text()
    with pytest.raises(ScaffoldError, match="already exists"):
        new_pipeline(pipes, UPSTREAM)
    assert (pipes / "shop" / "raw" / "orders.xml").read_text() == before
    with pytest.raises(ScaffoldError, match="already exists"):
        new_app(pipes, "shop")


def test_a_result_that_would_not_validate_is_removed_with_the_errors(pipes):
    # the same id in another layer folder: the loader rejects duplicate ids within an app
    req = Request(app="shop", layer="silver", id="orders", source="table", target="table")
    with pytest.raises(ScaffoldError, match=r"not kept(.|\n)*ids must be unique"):
        new_pipeline(pipes, req)
    assert not (pipes / "shop" / "silver" / "orders.xml").exists()
    assert len(load_project(pipes).pipelines) == 1


def test_table_source_without_any_table_asks_for_ref(tmp_path):
    with pytest.raises(ScaffoldError, match="--ref"):
        new_pipeline(tmp_path / "p", Request("shop", "silver", "x", "table", "table"))


def test_a_pipeline_in_a_new_app_creates_the_app(tmp_path):
    path, _ = new_pipeline(tmp_path / "p", Request("fresh", "raw", "events", "json", "table"))
    assert (tmp_path / "p" / "fresh" / "app.yaml").exists()
    assert path.exists()


def test_cli_new_app_and_pipeline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATAHUB_PIPELINES_DIR", str(tmp_path / "p"))
    assert cli.main(["new", "app", "shop", "--owner", "sales"]) == 0
    assert "owner: sales" in (tmp_path / "p" / "shop" / "app.yaml").read_text()
    assert cli.main(["new", "pipeline", "shop", "raw", "orders", "--source", "parquet"]) == 0
    out = capsys.readouterr().out
    assert "assets: shop/raw/orders" in out
    assert "dg list defs" in out
    assert (
        cli.main(
            [
                "new",
                "pipeline",
                "shop",
                "gold",
                "revenue",
                "--source",
                "table",
                "--ref",
                "shop.raw.orders",
                "--target",
                "csv",
            ]
        )
        == 0
    )
    assert cli.main(["validate"]) == 0
    assert cli.main(["new", "pipeline", "shop", "raw", "orders"]) == 1
    assert "already exists" in capsys.readouterr().err
