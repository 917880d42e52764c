"""registry/paths.py: only the contract's path forms, UTF-8 text within the limits, never
through a symlink."""

from __future__ import annotations

import pytest

from datahub_assets.service.registry.errors import PathRefused
from datahub_assets.service.registry.paths import (
    MAX_CHANGE_BYTES,
    check_app,
    check_content,
    check_files,
    check_path,
    target_in_tree,
)
from datahub_assets.spec.limits import MAX_DEFINITION_BYTES

GOOD = [
    "raw/orders.xml",
    "bronze/orders.yaml",
    "silver/orders-2.yml",
    "gold/x.xml",
    "service/api_view.xml",
    "staging/a.xml",
    "standardization/b.yaml",
    "jobs/nightly.xml",
    "jobs/nightly.yaml",
    "schemas/orders.avsc",
    "schemas/orders.json",
    "lookups/countries.csv",
    "python/assets.py",
    "app.yaml",
]
BAD = [
    "",
    "/etc/passwd",
    "/raw/orders.xml",
    "../other/raw/orders.xml",
    "raw/../../etc/passwd.xml",
    "raw/./orders.xml",
    "raw//orders.xml",
    "raw/orders.xml/",
    "raw\\orders.xml",
    "raw/orders\x00.xml",
    "raw/orders.txt",
    "raw/orders.XML",
    "raw/orders.xml.bak",
    "raw/.hidden.xml",
    "raw/sub/orders.xml",
    "jobs/nightly.yml",
    "schemas/orders.xml",
    "lookups/countries.json",
    "python/my-assets.py",
    "python/assets.pyc",
    "app.yml",
    "app.json",
    "unknown/orders.xml",
    "raw",
    "raw/" + "a" * 300 + ".xml",
    "raw/x'; DROP TABLE changes; --.xml",
    "raw/orders .xml",
    "~/raw/orders.xml",
]


@pytest.mark.parametrize("path", GOOD)
def test_allowed_forms(path):
    assert check_path(path).as_posix() == path


@pytest.mark.parametrize("path", BAD)
def test_refused_forms_name_the_path_and_the_allowed_forms(path):
    with pytest.raises(PathRefused) as err:
        check_path(path)
    assert err.value.status_code == 422
    assert "allowed" in str(err.value.detail)


@pytest.mark.parametrize("path", [None, 3, ["raw/a.xml"]])
def test_a_path_that_is_not_text(path):
    with pytest.raises(PathRefused):
        check_path(path)


@pytest.mark.parametrize("app", ["Shop", "1shop", "shop-x", "../shop", "", "a" * 65, "shop'--"])
def test_app_names(app):
    with pytest.raises(PathRefused):
        check_app(app)
    assert check_app("shop_2") == "shop_2"


def test_content_must_be_utf8_text_within_the_limit():
    path = check_path("raw/a.xml")
    assert check_content(path, "<pipeline/>") == "<pipeline/>"
    assert check_content(path, None) is None
    with pytest.raises(PathRefused, match=r"raw/a\.xml: content is not UTF-8"):
        check_content(path, "bad \udc80 surrogate")
    with pytest.raises(PathRefused, match="at most"):
        check_content(path, "x" * (MAX_DEFINITION_BYTES + 1))
    with pytest.raises(PathRefused, match="text or null"):
        check_content(path, b"bytes")


def test_files_of_a_change():
    files = check_files(
        [{"path": "raw/a.xml", "content": "x"}, {"path": "raw/b.xml", "content": None}]
    )
    assert [(f.path, f.content) for f in files] == [("raw/a.xml", "x"), ("raw/b.xml", None)]
    with pytest.raises(PathRefused, match="1 to 200"):
        check_files([])
    with pytest.raises(PathRefused, match="1 to 200"):
        check_files([{"path": f"raw/a{i}.xml", "content": "x"} for i in range(201)])
    with pytest.raises(PathRefused, match="twice"):
        check_files([{"path": "raw/a.xml", "content": "x"}, {"path": "raw/a.xml", "content": "y"}])
    big = "x" * (10 << 20)
    with pytest.raises(PathRefused, match="total more than"):
        check_files([{"path": f"lookups/l{i}.csv", "content": big} for i in range(4)])
    assert 4 * len(big) > MAX_CHANGE_BYTES


def test_no_symlink_is_followed(tmp_path):
    root = tmp_path / "pipes"
    (root / "shop" / "raw").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert target_in_tree(root, "shop", "raw/a.xml") == root / "shop" / "raw" / "a.xml"
    assert target_in_tree(root, "newapp", "raw/a.xml") == root / "newapp" / "raw" / "a.xml"
    # a layer folder that is a symlink out of the app
    (root / "shop" / "bronze").symlink_to(outside)
    with pytest.raises(PathRefused, match="symlink"):
        target_in_tree(root, "shop", "bronze/a.xml")
    # a file that is a symlink (to a file outside)
    (outside / "secret.xml").write_text("x")
    (root / "shop" / "raw" / "b.xml").symlink_to(outside / "secret.xml")
    with pytest.raises(PathRefused, match="symlink"):
        target_in_tree(root, "shop", "raw/b.xml")
    # the app folder itself
    (root / "linked").symlink_to(outside)
    with pytest.raises(PathRefused, match="symlink"):
        target_in_tree(root, "linked", "raw/a.xml")
    assert not (outside / "a.xml").exists()
