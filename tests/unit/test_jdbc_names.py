"""JDBC names (#19 findings 1 and 2): names a database cannot hold as written are refused,
names Spark cannot quote get plain aliases, and no connection Spark opens runs several
statements in one call unless a source's session init needs it."""

from __future__ import annotations

import pytest

from datahub_assets.execute import jdbc
from datahub_assets.execute.jdbc import DIALECTS, spark_aliases, spark_safe


def test_no_url_given_to_spark_allows_multi_statement_queries():
    """A statement is one statement on MariaDB, except a source's two-statement init."""
    ep = jdbc.endpoint("jdbc:mariadb://db:3306/x", None)
    assert "allowMultiQueries" not in ep.spark_url
    assert "allowMultiQueries" not in ep.spark_options()["url"]
    assert ep.spark_options(multi_statements=True)["url"].endswith("&allowMultiQueries=true")
    pg = jdbc.endpoint("jdbc:postgresql://db/x", None)
    assert pg.spark_options(multi_statements=True)["url"] == "jdbc:postgresql://db/x"


PG, MARIA = DIALECTS["postgresql"], DIALECTS["mariadb"]


@pytest.mark.parametrize(
    ("name", "pg", "maria"),
    [
        ("orders", None, None),
        ('x" text); DROP TABLE keep; --', None, None),  # quoting makes it a name
        ("a" * 63, None, None),
        ("a" * 64, "64 bytes", None),
        ("é" * 31 + "x", None, None),  # 63 bytes
        ("é" * 32, "64 bytes", None),
        ("é" * 64, "128 bytes", None),
        ("é" * 65, "130 bytes", "65 characters"),
        ("", "empty", "empty"),
        ("a\x00", "NUL", "NUL"),
        ("trailing ", None, "ends with a space"),
        ("😀", None, "Basic Multilingual Plane"),
    ],
)
def test_name_problem(name, pg, maria):
    for dialect, want in ((PG, pg), (MARIA, maria)):
        got = dialect.name_problem(name)
        assert (got is None) == (want is None), (dialect.name, got)
        if want:
            assert want in got


def test_quote_name_doubles_the_quote_and_keeps_dots():
    assert PG.quote_name('a"b.c') == '"a""b.c"'
    assert MARIA.quote_name("a`b.c") == "`a``b.c`"
    assert PG.quote("s.t") == '"s"."t"'


def test_spark_aliases_only_for_names_spark_cannot_quote():
    names = ["id", 'a"b', "c`d", "dot.ted", "_dh_c1", "ü"]
    aliases = spark_aliases(names)
    assert aliases == {'a"b': "_dh_c1_", "c`d": "_dh_c2"}
    assert all(spark_safe(a) for a in aliases.values())
    assert spark_aliases(["id", "name"]) == {}
