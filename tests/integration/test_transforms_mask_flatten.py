"""`mask` and `flatten` on a real Spark Connect server; expectations computed independently."""

from __future__ import annotations

import base64
import hashlib
import logging

import pytest
from cryptography.exceptions import InvalidTag
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F

from datahub_assets.execute.transforms import TransformError, apply_steps
from datahub_assets.execute.transforms.mask import decrypt_value, detokenize
from datahub_assets.spec import models as m
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

SECRET = "s3cr3t-mask-key"


@pytest.fixture
def ctx(spark, settings, monkeypatch):
    monkeypatch.setenv("SHOP_PII_KEY", SECRET)
    return exec_context(spark, settings)


@pytest.fixture
def people(spark):
    return spark.createDataFrame(
        [
            (1, "ann@x.io", "4111111111111111"),
            (2, "bob@y.io", "12"),
            (3, None, None),
            (4, "ann@x.io", "5500"),
        ],
        "id int, email string, card string",
    )


def masked(ctx, people, **kw):
    step = m.Mask(source="p", secret_ref="SHOP_PII_KEY", **kw)
    return {r["id"]: r for r in apply_steps([step], {"p": people}, ctx)["p"].collect()}


def test_hash_is_salted_sha256(ctx, people):
    out = masked(ctx, people, columns="email, card", strategy="hash")
    for rid, email in [(1, "ann@x.io"), (2, "bob@y.io")]:
        assert out[rid]["email"] == hashlib.sha256((SECRET + email).encode()).hexdigest()
    assert out[2]["card"] == hashlib.sha256(f"{SECRET}12".encode()).hexdigest()
    assert out[3]["email"] is None
    assert out[3]["card"] is None
    ids = (
        apply_steps(
            [m.Mask(source="p", columns="id", strategy="hash", secret_ref="SHOP_PII_KEY")],
            {"p": people},
            ctx,
        )["p"]
        .select("id")
        .collect()
    )
    assert {r["id"] for r in ids} == {
        hashlib.sha256(f"{SECRET}{i}".encode()).hexdigest() for i in (1, 2, 3, 4)
    }  # non-string columns are cast to string first


def test_hash_without_secret_ref_uses_install_key(ctx, people, monkeypatch):
    monkeypatch.setenv("DATAHUB_MASK_KEY", "install-key")
    step = m.Mask(source="p", columns="email", strategy="hash")
    out = apply_steps([step], {"p": people}, ctx)["p"].where("id = 2").first()
    assert out["email"] == hashlib.sha256(b"install-keybob@y.io").hexdigest()


def test_redact_keep_last(ctx, people):
    out = masked(ctx, people, columns="card", strategy="redact", keep_last=4)
    assert [out[i]["card"] for i in (1, 2, 3, 4)] == ["***1111", "***", None, "***"]
    out = masked(ctx, people, columns="email", strategy="redact")
    assert [out[i]["email"] for i in (1, 2, 3)] == ["***", "***", None]


def test_tokenize_is_deterministic_and_reversible(ctx, people):
    out = masked(ctx, people, columns="email", strategy="tokenize")
    t1, t2, t4 = out[1]["email"], out[2]["email"], out[4]["email"]
    assert t1.startswith("tok_")
    assert t1 == t4
    assert t1 != t2
    assert out[3]["email"] is None
    assert detokenize(t1, SECRET) == "ann@x.io"
    assert detokenize(t2, SECRET) == "bob@y.io"
    again = masked(ctx, people, columns="email", strategy="tokenize")
    assert again[1]["email"] == t1  # stable across runs
    with pytest.raises(InvalidTag):
        detokenize(t1, "another-key")


def test_encrypt_is_random_and_reversible(ctx, people, spark):
    out = masked(ctx, people, columns="email,card", strategy="encrypt")
    c1, c4 = out[1]["email"], out[4]["email"]
    assert c1 != c4  # same plaintext, different ciphertexts (random IV)
    assert decrypt_value(c1, SECRET) == "ann@x.io" == decrypt_value(c4, SECRET)
    assert decrypt_value(out[1]["card"], SECRET) == "4111111111111111"
    assert out[3]["email"] is None
    assert len(base64.b64decode(c1)) == 12 + 8 + 16
    key = hashlib.sha256(SECRET.encode()).digest()
    back = spark.createDataFrame([(c1,)], "c string").select(
        F.aes_decrypt(F.unbase64("c"), F.lit(key), F.lit("GCM")).cast("string").alias("v")
    )
    assert back.first()["v"] == "ann@x.io"


def test_mask_errors_never_show_the_secret(ctx, people, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransformError) as err:
        masked(ctx, people, columns="mail", strategy="encrypt")
    assert "column 'mail' not found in dataset 'p'" in str(err.value)
    key_hex = hashlib.sha256(SECRET.encode()).hexdigest().upper()
    for strategy in ("hash", "tokenize"):
        step = m.Mask(source="p", columns="email", strategy=strategy, secret_ref="SHOP_PII_KEY")
        out = apply_steps([step], {"p": people}, ctx)["p"]
        # a later failure anywhere prints the plan: the key material is no longer in it
        with pytest.raises(AnalysisException) as later:
            out.where("nope > 1").collect()
        assert SECRET not in str(later.value)
        assert key_hex not in str(later.value)
        with pytest.raises(TransformError) as wrapped:
            apply_steps([step, m.Filter(source="p", condition="nope > 1")], {"p": people}, ctx)
        assert "nope" in str(wrapped.value)
        assert wrapped.value.__cause__ is None
    for text in (str(err.value), repr(err.value.__cause__), caplog.text):
        assert SECRET not in text
        assert key_hex not in text


# ----------------------------------------------------------------------------- flatten

GITHUB_EVENTS = (
    "id string, type string, actor struct<id:long, login:string>, repo struct<name:string>, "
    "payload struct<action:string, commits:array<struct<sha:string, author:struct<name:string>>>>"
)


@pytest.fixture
def gh(spark):
    return spark.createDataFrame(
        [
            (
                "e1",
                "PushEvent",
                (7, "octo"),
                ("o/r",),
                ("push", [("a1", ("Ann",)), ("b2", ("Bo",))]),
            ),
            ("e2", "WatchEvent", (8, "cat"), ("o/s",), ("started", [])),
            ("e3", "ForkEvent", (9, "dog"), ("o/t",), None),
        ],
        GITHUB_EVENTS,
    )


def flat(ctx, gh, **kw):
    return apply_steps([m.Flatten(source="e", **kw)], {"e": gh}, ctx)["e"]


def test_flatten_github_events_explode(ctx, gh):
    out = flat(ctx, gh, arrays="explode")
    assert out.columns == [
        "id",
        "type",
        "actor_id",
        "actor_login",
        "repo_name",
        "payload_action",
        "payload_commits_sha",
        "payload_commits_author_name",
    ]
    assert sorted(tuple(r) for r in out.collect()) == [
        ("e1", "PushEvent", 7, "octo", "o/r", "push", "a1", "Ann"),
        ("e1", "PushEvent", 7, "octo", "o/r", "push", "b2", "Bo"),
        ("e2", "WatchEvent", 8, "cat", "o/s", "started", None, None),
        ("e3", "ForkEvent", 9, "dog", "o/t", None, None, None),
    ]


def test_flatten_arrays_first_count_json_and_separator(ctx, gh):
    first = flat(ctx, gh, arrays="first", separator=".")
    assert first.columns[-2:] == ["payload.commits.sha", "payload.commits.author.name"]
    assert {r["id"]: tuple(r)[-2:] for r in first.collect()} == {
        "e1": ("a1", "Ann"),
        "e2": (None, None),
        "e3": (None, None),
    }
    count = flat(ctx, gh, arrays="count")
    assert {r["id"]: r["payload_commits"] for r in count.collect()} == {
        "e1": 2,
        "e2": 0,
        "e3": None,
    }
    js = flat(ctx, gh)  # arrays=json is the default
    assert {r["id"]: r["payload_commits"] for r in js.collect()} == {
        "e1": '[{"sha":"a1","author":{"name":"Ann"}},{"sha":"b2","author":{"name":"Bo"}}]',
        "e2": "[]",
        "e3": None,
    }


def test_flatten_nested_arrays_and_name_clash(ctx, spark):
    df = spark.createDataFrame([(1, [[1, 2], [3]])], "id int, m array<array<int>>")
    out = apply_steps([m.Flatten(source="d", arrays="explode")], {"d": df}, ctx)["d"]
    assert sorted(tuple(r) for r in out.collect()) == [(1, 1), (1, 2), (1, 3)]
    clash = spark.createDataFrame([((1,), 2)], "a struct<b:int>, a_b int")
    with pytest.raises(TransformError, match="duplicate column\\(s\\) a_b"):
        apply_steps([m.Flatten(source="d")], {"d": clash}, ctx)
