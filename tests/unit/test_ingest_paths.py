"""Glob matching, static prefixes and processed/rejected destinations of file drops (pure)."""

from __future__ import annotations

import datetime

import pytest

from datahub_assets.ingest import paths
from datahub_assets.ingest.paths import (
    compiled,
    destination,
    glob_regex,
    is_ignored_name,
    is_lifecycle_path,
    sidecars,
    static_prefix,
)

DAY = datetime.date(2026, 11, 22)


def matches(pattern: str, path: str) -> bool:
    return glob_regex(pattern).fullmatch(path) is not None


# ------------------------------------------------------------------------------ glob_regex


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # `*` and `?` stay within one segment
        ("/d/*.csv", "/d/a.csv", True),
        ("/d/*.csv", "/d/.csv", False),
        ("/d/*.csv", "/d/sub/a.csv", False),
        ("/d/*.csv", "/d/a.csv.gz", False),
        ("/d/*", "/d/a", True),
        ("/d/*", "/d/a/b", False),
        ("/d/a?.csv", "/d/ab.csv", True),
        ("/d/a?.csv", "/d/a.csv", False),
        ("/d/a?c", "/d/a/c", False),
        ("/d/*/x.csv", "/d/2024/x.csv", True),
        ("/d/*/x.csv", "/d/x.csv", False),
        ("/d/*/x.csv", "/d/a/b/x.csv", False),
        ("/d/2024*/x.csv", "/d/2024-01/x.csv", True),
        ("/d/2024*/x.csv", "/d/2023-01/x.csv", False),
        # literal characters, including regex metacharacters
        ("/d/a+b (1).csv", "/d/a+b (1).csv", True),
        ("/d/a+b (1).csv", "/d/aab (1).csv", False),
        ("/d/a.csv", "/d/aXcsv", False),
        ("/d/$x^.csv", "/d/$x^.csv", True),
        ("/d/*.CSV", "/d/a.csv", False),
        # classes
        ("/d/[ab].csv", "/d/a.csv", True),
        ("/d/[ab].csv", "/d/c.csv", False),
        ("/d/[a-c]x", "/d/bx", True),
        ("/d/[a-c]x", "/d/dx", False),
        ("/d/[!a-c]x", "/d/dx", True),
        ("/d/[!a-c]x", "/d/ax", False),
        ("/d/[0-9][0-9].csv", "/d/42.csv", True),
        ("/d/[]]x", "/d/]x", True),
        ("/d/[!]]x", "/d/]x", False),
        ("/d/[!]]x", "/d/ax", True),
        ("/d/[a-]x", "/d/-x", True),
        ("/d/[^a]x", "/d/^x", True),
        ("/d/[^a]x", "/d/bx", False),
        ("/d/[\\]x", "/d/\\x", True),
        ("/d/[z-a]x", "/d/mx", False),
        ("/d/[[]x", "/d/[x", True),
        ("/d/[abc", "/d/[abc", True),  # unclosed: literal
        ("/d/[abc", "/d/a", False),
        ("/d/x[!a]y", "/d/x/y", False),  # a negated class never matches `/`
        # `**`: zero or more directories
        ("/d/**/*.csv", "/d/a.csv", True),
        ("/d/**/*.csv", "/d/x/a.csv", True),
        ("/d/**/*.csv", "/d/x/y/z/a.csv", True),
        ("/d/**/*.csv", "/e/a.csv", False),
        ("/d/**/x/*.csv", "/d/x/a.csv", True),
        ("/d/**/x/*.csv", "/d/p/q/x/a.csv", True),
        ("/d/**/x/*.csv", "/d/p/q/a.csv", False),
        ("/d/**/**/*.csv", "/d/a.csv", True),
        ("/d/**/**/*.csv", "/d/p/q/a.csv", True),
        ("/d/**", "/d/a.csv", True),
        ("/d/**", "/d/p/q/a.csv", True),
        ("/d/a**b", "/d/axxb", True),  # not a whole segment: like `*`
        ("/d/a**b", "/d/ax/xb", False),
        # hidden names are matched only by a segment that starts with `.`
        ("/d/*", "/d/.hidden", False),
        ("/d/?x", "/d/.x", False),
        ("/d/[.]x", "/d/.x", False),
        ("/d/.*", "/d/.hidden", True),
        ("/d/**/*.csv", "/d/.git/a.csv", False),
        ("/d/**", "/d/.x/a", False),
        ("/d/.cache/*.csv", "/d/.cache/a.csv", True),
        # URIs
        ("s3://b/in/*.csv", "s3://b/in/a.csv", True),
        ("s3://b/in/*.csv", "s3://b/in/x/a.csv", False),
        ("s3://b/in/*.csv", "s3://c/in/a.csv", False),
        ("s3://b/**/*.csv", "s3://b/a.csv", True),
        ("s3://b/**/*.csv", "s3://b/x/y/a.csv", True),
        ("s3a://b/*.json", "s3a://b/e.json", True),
        ("file:///d/*.csv", "file:///d/a.csv", True),
        # newlines in names are just characters
        ("/d/*.csv", "/d/a\nb.csv", True),
    ],
)
def test_glob_regex(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_glob_regex_is_anchored_for_match() -> None:
    assert glob_regex("/d/*.csv").match("/d/a.csv.bak") is None
    assert glob_regex("/d/*.csv").match("/d/a.csv")


# ------------------------------------------------------------------------------ static_prefix


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("/d/landing/orders/*.csv", "/d/landing/orders/"),
        ("s3://b/in/2024*/x.csv", "s3://b/in/"),
        ("s3://b/*.csv", "s3://b/"),
        ("s3://b/**/*.csv", "s3://b/"),
        ("s3a://b/in/*.csv", "s3a://b/in/"),
        ("/d/x.csv", "/d/"),
        ("/x.csv", "/"),
        ("/*.csv", "/"),
        ("s3://b/x.csv", "s3://b/"),
        ("/d/a?/b/*.csv", "/d/"),
        ("/d/[ab]/x.csv", "/d/"),
        ("/d/**", "/d/"),
        ("file:///d/in/*.csv", "file:///d/in/"),
    ],
)
def test_static_prefix(pattern: str, prefix: str) -> None:
    assert static_prefix(pattern) == prefix


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("landing/*.csv", "must be absolute"),
        ("*.csv", "must be absolute"),
        ("s3://b*/x.csv", "bucket or host"),
        ("s3://b", "names no file"),
        ("/d/in/", "names no file"),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        static_prefix(pattern)


# ------------------------------------------------------------------------------ destination


@pytest.mark.parametrize(
    ("pattern", "path", "folder", "expected"),
    [
        # a `landing` segment: its parent is the root, the path below it is kept
        (
            "/data/shop/landing/orders/*.csv",
            "/data/shop/landing/orders/a.csv",
            "processed",
            "/data/shop/processed/2026-11-22/orders/a.csv",
        ),
        (
            "/data/shop/landing/*.csv",
            "/data/shop/landing/a.csv",
            "rejected",
            "/data/shop/rejected/2026-11-22/a.csv",
        ),
        (
            "/data/landing/**/*.csv",
            "/data/landing/x/y/a.csv",
            "processed",
            "/data/processed/2026-11-22/x/y/a.csv",
        ),
        (
            "s3://b/landing/*.csv",
            "s3://b/landing/a.csv",
            "processed",
            "s3://b/processed/2026-11-22/a.csv",
        ),
        ("/landing/*.csv", "/landing/a.csv", "processed", "/processed/2026-11-22/a.csv"),
        (
            "file:///d/landing/*.csv",
            "file:///d/landing/a.csv",
            "processed",
            "file:///d/processed/2026-11-22/a.csv",
        ),
        # `landing` after wildcards: the root comes from the file's own path
        (
            "s3://b/*/landing/*.csv",
            "s3://b/tenant1/landing/a.csv",
            "processed",
            "s3://b/tenant1/processed/2026-11-22/a.csv",
        ),
        (
            "/d/**/landing/*.csv",
            "/d/x/y/landing/a.csv",
            "rejected",
            "/d/x/y/rejected/2026-11-22/a.csv",
        ),
        # the last `landing` segment counts
        (
            "/landing/shop/landing/*.csv",
            "/landing/shop/landing/a.csv",
            "processed",
            "/landing/shop/processed/2026-11-22/a.csv",
        ),
        # a bucket named landing is not a landing folder
        (
            "s3://landing/in/*.csv",
            "s3://landing/in/a.csv",
            "processed",
            "s3://landing/processed/2026-11-22/in/a.csv",
        ),
        # `landing` must be a whole segment, and a folder (not the file name)
        (
            "/d/landing2/*.csv",
            "/d/landing2/a.csv",
            "processed",
            "/d/processed/2026-11-22/landing2/a.csv",
        ),
        ("/d/in/landing", "/d/in/landing", "processed", "/d/processed/2026-11-22/in/landing"),
        # otherwise: the parent of the static prefix, never above the anchor
        ("/mnt/drop/*.csv", "/mnt/drop/a.csv", "processed", "/mnt/processed/2026-11-22/drop/a.csv"),
        (
            "/mnt/drop/**/*.csv",
            "/mnt/drop/x/a.csv",
            "processed",
            "/mnt/processed/2026-11-22/drop/x/a.csv",
        ),
        (
            "/mnt/drop/2024*/*.csv",
            "/mnt/drop/2024-01/a.csv",
            "rejected",
            "/mnt/rejected/2026-11-22/drop/2024-01/a.csv",
        ),
        ("/drop/*.csv", "/drop/a.csv", "processed", "/processed/2026-11-22/drop/a.csv"),
        ("/*.csv", "/a.csv", "processed", "/processed/2026-11-22/a.csv"),
        ("s3://b/in/*.csv", "s3://b/in/a.csv", "processed", "s3://b/processed/2026-11-22/in/a.csv"),
        ("s3://b/*.csv", "s3://b/a.csv", "processed", "s3://b/processed/2026-11-22/a.csv"),
        ("s3://b/**/*.csv", "s3://b/x/a.csv", "processed", "s3://b/processed/2026-11-22/x/a.csv"),
        ("s3://b/in/x.csv", "s3://b/in/x.csv", "rejected", "s3://b/rejected/2026-11-22/in/x.csv"),
        # sidecars and reasons sit beside their file
        (
            "/mnt/drop/*.csv",
            "/mnt/drop/a.csv.sha256",
            "processed",
            "/mnt/processed/2026-11-22/drop/a.csv.sha256",
        ),
        (
            "/data/landing/*.csv",
            "/data/landing/a.csv.md5",
            "rejected",
            "/data/rejected/2026-11-22/a.csv.md5",
        ),
    ],
)
def test_destination(pattern: str, path: str, folder: str, expected: str) -> None:
    assert destination(path, pattern, folder, DAY) == expected
    assert is_lifecycle_path(expected, pattern)
    assert not is_lifecycle_path(path, pattern)


def test_destination_day_is_the_date_only() -> None:
    moment = datetime.datetime(2026, 1, 2, 23, 59)
    assert (
        destination("/d/landing/a.csv", "/d/landing/*.csv", "processed", moment)
        == "/d/processed/2026-01-02/a.csv"
    )


def test_destination_rejects_unknown_folders_and_foreign_paths() -> None:
    with pytest.raises(ValueError, match="processed, rejected"):
        destination("/d/landing/a.csv", "/d/landing/*.csv", "archive", DAY)
    with pytest.raises(ValueError, match="not a file of the watched path /d/landing/"):
        destination("/e/landing/a.csv", "/d/landing/*.csv", "processed", DAY)
    with pytest.raises(ValueError, match="not a file of the watched path"):
        destination("s3://other/in/a.csv", "s3://b/in/*.csv", "processed", DAY)


# ------------------------------------------------------------------------------ lifecycle


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("s3://b/**/*.csv", "s3://b/processed/2026-11-22/in/a.csv", True),
        ("s3://b/**/*.csv", "s3://b/rejected/2026-11-22/a.csv", True),
        ("s3://b/**/*.csv", "s3://b/in/a.csv", False),
        ("s3://b/**/*.csv", "s3://b/processed/a.csv", False),  # no date folder: a user's folder
        ("s3://b/**/*.csv", "s3://b/processed/latest/a.csv", False),
        ("s3://b/**/*.csv", "s3://b/in/processed/2026-11-22/a.csv", False),
        ("/d/landing/**/*.csv", "/d/processed/2026-11-22/a.csv", True),
        ("/d/landing/**/*.csv", "/d/landing/processed/2026-11-22/a.csv", False),
        ("/d/*/landing/*.csv", "/d/t1/processed/2026-11-22/a.csv", True),
        ("/d/*/landing/*.csv", "/d/processed/2026-11-22/a.csv", False),
        ("/mnt/processed/*.csv", "/mnt/processed/a.csv", False),
        ("/mnt/drop/*.csv", "/mnt/processed/2026-11-22/drop/a.csv", True),
    ],
)
def test_is_lifecycle_path(pattern: str, path: str, expected: bool) -> None:
    assert is_lifecycle_path(path, pattern) is expected


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.csv",
        "._a.csv",
        "_SUCCESS",
        "_temporary",
        ".a.csv.x1y2.tmp",
        "a.csv.tmp",
        "a.csv.part",
        "a.csv.crdownload",
        "a.csv.filepart",
        "a.csv.COPYING",
        "a.csv.copying",
        "a.csv.sha256",
        "a.csv.md5",
        "a.csv.reason.json",
        "A.CSV.TMP",
        "a.csv.SHA256",
    ],
)
def test_ignored_names(name: str) -> None:
    assert is_ignored_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "a.csv",
        "orders_2024.csv",
        "a.json",
        "reason.json",
        "a.tmp.csv",
        "part-00000.parquet",
        "a.md5sum",
        "data.partial.csv",
        "x",
    ],
)
def test_kept_names(name: str) -> None:
    assert not is_ignored_name(name)


def test_sidecars() -> None:
    assert sidecars("s3://b/in/a.csv") == ["s3://b/in/a.csv.sha256", "s3://b/in/a.csv.md5"]


# ------------------------------------------------------------------------------ listing rules


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/d/*.csv", "/d/a.csv", True),
        ("/d/*", "/d/a.csv.sha256", False),
        ("/d/*", "/d/_SUCCESS", False),
        ("/d/*", "/d/a.csv.reason.json", False),
        ("/d/**/*.csv", "/d/_temporary/0/part-0.csv", False),
        ("/d/**/*.csv", "/d/x/_staging/a.csv", False),
        ("/d/*/_in/*.csv", "/d/x/_in/a.csv", True),  # named literally: entered
        ("/_d/**/*.csv", "/_d/x/a.csv", True),  # in the static prefix: not a listing's business
        ("s3://b/**/*.csv", "s3://b/processed/2026-11-22/a.csv", False),
        ("s3://b/**/*.csv", "s3://b/x/a.csv", True),
        ("s3://b/**/*.csv", "s3://b/x/a.txt", False),
    ],
)
def test_glob_lists(pattern: str, path: str, expected: bool) -> None:
    assert compiled(pattern).lists(path) is expected


def test_levels_of_fixed_depth_patterns() -> None:
    glob = compiled("/d/in/2024*/[ab]*.csv")
    assert glob.prefix == "/d/in/"
    assert glob.levels is not None
    assert len(glob.levels) == 2
    assert glob.levels[0].match("2024-01")
    assert not glob.levels[0].match("2023")
    assert glob.levels[1].match("a1.csv")
    assert not glob.levels[1].match("c1.csv")
    assert compiled("/d/**/*.csv").levels is None
    assert compiled("/d/x.csv").is_literal
    assert not compiled("/d/*.csv").is_literal


def test_has_magic() -> None:
    assert paths.has_magic("a*")
    assert paths.has_magic("a?")
    assert paths.has_magic("[a]")
    assert not paths.has_magic("/d/landing/a.csv")
