"""JDBC endpoints of `database` sources and targets: dialect, credentials, connections.

One place knows what a JDBC URL means:
- `Dialect` of a URL (`jdbc:postgresql:`, `jdbc:mariadb:`, `jdbc:mysql:`): the JDBC driver
  class Spark loads, identifier quoting, typed and escaped SQL literals, and how Python opens
  the same database (psycopg for PostgreSQL, PyMySQL for MariaDB/MySQL) for the statements
  Spark cannot run (bounds, staging-table swaps, upserts).
- `Endpoint`: URL plus credentials resolved from `userSecretRef` (a secret holding
  `user:password`, or `user` alone). Its repr and every message built here name the secret,
  never its value; `scrub()` removes the password from driver errors before they are raised.

The URL itself must not carry credentials (`spec.validate.jdbc_url_problem` refuses `user=`,
`password=`, `sslpassword=`, `password1=`, `keyStorePassword=`, ... in it and `user:pass@`
authorities at load time and again here), so plans, logs and the UI can show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from datahub_assets.spec.validate import jdbc_name_problem, jdbc_url_problem, redact_jdbc_url
from datahub_resources import secrets

URL = re.compile(r"^jdbc:(?P<scheme>[a-z0-9]+):(?P<rest>//.*)$", re.IGNORECASE)
SPARK_UNSAFE = frozenset('"`')
"""Characters Spark's JDBC dialects before 4.1 (SPARK-52832) put between quotes without
doubling them: a name with one never reaches Spark's generated SQL (`spark_aliases`)."""
ALIAS_PREFIX = "_dh_c"


class JdbcError(ValueError):
    """A JDBC URL, credential or database statement problem (never carries a secret)."""


class DbCursor(Protocol):
    """The DB-API 2 cursor calls Data Hub makes (psycopg and PyMySQL cursors have them)."""

    def execute(self, query: str, params: Any = None, /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


class DbConnection(Protocol):
    """The DB-API 2 connection calls Data Hub makes (psycopg and PyMySQL connections)."""

    autocommit: Any
    """psycopg: a bool property; PyMySQL: a method, `autocommit(True)`."""

    def cursor(self) -> DbCursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    """postgresql | mariadb (MySQL URLs use the MariaDB dialect and driver)."""
    driver: str
    """JDBC driver class on the Spark server's classpath."""

    @property
    def label(self) -> str:
        """The database's name in messages."""
        return "PostgreSQL" if self.name == "postgresql" else "MariaDB/MySQL"

    def quote(self, identifier: str) -> str:
        """A quoted identifier; dotted names (`schema.table`) are quoted per part."""
        return ".".join(self.quote_name(part) for part in identifier.split("."))

    def quote_name(self, name: str) -> str:
        """One name quoted whole (a dot in it stays part of the name), the quote character
        doubled inside it."""
        q = '"' if self.name == "postgresql" else "`"
        return q + name.replace(q, q + q) + q

    def name_problem(self, name: str) -> str | None:
        """Why this database cannot hold `name` as a table or column name as written (None:
        it can); see `spec.validate.jdbc_name_problem`."""
        return jdbc_name_problem(name, self.name)

    def literal(self, value: Any) -> str:
        """`value` as a typed SQL literal of this dialect: a parameter value can only ever be
        one literal, never change the statement around it."""
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int):
            return str(int(value))
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise JdbcError(f"parameter value {value!r} has no SQL literal")
            return repr(float(value))
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise JdbcError(f"parameter value {value!r} has no SQL literal")
            return format(value, "f")
        if isinstance(value, datetime):
            text = value.isoformat(sep=" ", timespec="microseconds")
            if value.tzinfo is not None:
                # both dialects compare against the session's zone; Spark runs in UTC
                text = (
                    value.astimezone(UTC)
                    .replace(tzinfo=None)
                    .isoformat(sep=" ", timespec="microseconds")
                )
            return f"TIMESTAMP '{text}'"
        if isinstance(value, date):
            return f"DATE '{value.isoformat()}'"
        return self.string(str(value))

    def string(self, text: str) -> str:
        """A string literal: quotes doubled; MariaDB/MySQL also treat backslash as an escape
        character (unless NO_BACKSLASH_ESCAPES), so backslashes are doubled there. NUL bytes
        have no literal and are refused."""
        if "\x00" in text:
            raise JdbcError("a parameter value contains a NUL byte, which no SQL string can hold")
        body = text.replace("'", "''")
        if self.name != "postgresql":
            body = body.replace("\\", "\\\\")
            return f"'{body}'"
        # PostgreSQL: standard_conforming_strings (on by default) leaves backslashes literal;
        # E'' makes that independent of the server setting.
        return "E'" + body.replace("\\", "\\\\") + "'"


DIALECTS = {
    "postgresql": Dialect("postgresql", "org.postgresql.Driver"),
    "mariadb": Dialect("mariadb", "org.mariadb.jdbc.Driver"),
    "mysql": Dialect("mariadb", "org.mariadb.jdbc.Driver"),
}


@dataclass(frozen=True)
class Endpoint:
    """A JDBC URL with its resolved credentials."""

    url: str
    dialect: Dialect
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    secret_ref: str | None = None

    @property
    def host(self) -> str:
        return _split(self.url).hostname or "localhost"

    @property
    def port(self) -> int:
        return _split(self.url).port or (5432 if self.dialect.name == "postgresql" else 3306)

    @property
    def database(self) -> str:
        return unquote(_split(self.url).path.lstrip("/")) or (
            "postgres" if self.dialect.name == "postgresql" else ""
        )

    @property
    def url_params(self) -> dict[str, str]:
        return dict(parse_qsl(_split(self.url).query))

    @property
    def spark_url(self) -> str:
        """The URL handed to Spark. Spark picks its SQL dialect (identifier quoting, type
        mapping) by URL prefix and knows MariaDB only as `jdbc:mysql:`, so MariaDB URLs are
        given in that form; `permitMysqlScheme` lets MariaDB Connector/J 3 accept it (2.x
        accepts it as is). Multi-statement queries stay off (see `spark_options`)."""
        if self.dialect.name == "postgresql":
            return self.url
        rest = self.url.split(":", 2)[2]
        sep = "&" if "?" in rest else "?"
        return f"jdbc:mysql:{rest}{sep}permitMysqlScheme"

    def spark_options(self, multi_statements: bool = False) -> dict[str, str]:
        """Options of Spark's JDBC data source (credentials included: never log these).
        `multi_statements`: MariaDB/MySQL connections also run several `;`-separated
        statements in one call (`allowMultiQueries`), which only a source's two-statement
        `sessionInitStatement` needs: everywhere else a statement is one statement, whatever
        text ends up in it. (PostgreSQL's driver always runs several.)"""
        url = self.spark_url
        if multi_statements and self.dialect.name != "postgresql":
            url += "&allowMultiQueries=true"
        opts = {"url": url, "driver": self.dialect.driver}
        if self.user is not None:
            opts["user"] = self.user
        if self.password is not None:
            opts["password"] = self.password
        return opts

    def connect(self, autocommit: bool = False) -> DbConnection:
        """A Python DB-API connection to the same database."""
        try:
            if self.dialect.name == "postgresql":
                import psycopg

                # cast: psycopg types execute() as taking literal or composed SQL only; the
                # statements here are built at run time from quoted identifiers
                return cast(
                    DbConnection,
                    psycopg.connect(
                        host=self.host,
                        port=self.port,
                        dbname=self.database,
                        user=self.user,
                        password=self.password,
                        autocommit=autocommit,
                        connect_timeout=30,
                    ),
                )
            import pymysql

            return pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user or "root",
                password=self.password or "",
                database=self.database or None,
                autocommit=autocommit,
                connect_timeout=30,
                charset="utf8mb4",
            )
        except Exception as exc:
            raise JdbcError(f"cannot connect to {self.url}: {self.scrub(str(exc))}") from None

    def autocommit_on(self, conn: DbConnection) -> None:
        """Switch `conn` to autocommit (a property in psycopg, a method in PyMySQL)."""
        if self.dialect.name == "postgresql":
            conn.autocommit = True
        else:
            conn.autocommit(True)

    def scrub(self, text: str) -> str:
        """`text` with the password (and its URL-encoded form) replaced by `***`."""
        if self.password:
            for form in {self.password, quote(self.password, safe="")}:
                text = text.replace(form, "***")
        return text


def spark_safe(name: str) -> bool:
    """Whether every Spark version quotes `name` correctly in the SQL it generates."""
    return not SPARK_UNSAFE.intersection(name)


def spark_aliases(names: list[str]) -> dict[str, str]:
    """{name: alias} for the names Spark must not quote itself (`spark_safe`): each gets the
    plain alias `_dh_c<position>` (made unique against the other names, case-insensitively).
    Readers and writers give Spark the aliases and put the names back in SQL they quote."""
    taken = {n.lower() for n in names}
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        if spark_safe(name):
            continue
        alias = f"{ALIAS_PREFIX}{i}"
        while alias.lower() in taken:
            alias += "_"
        taken.add(alias.lower())
        out[name] = alias
    return out


def _split(url: str):
    m = URL.match(url.strip())
    if not m:
        raise JdbcError(f"{url!r} is not a JDBC URL")
    return urlsplit("x:" + m["rest"])


def dialect_of(url: str) -> Dialect:
    problem = jdbc_url_problem(url)
    m = URL.match(url.strip())
    if problem or m is None:
        raise JdbcError(f"jdbcUrl {redact_jdbc_url(url)!r} {problem or 'is not a JDBC URL'}")
    return DIALECTS[m["scheme"].lower()]


def endpoint(url: str, user_secret_ref: str | None, app: str | None = None) -> Endpoint:
    """The endpoint of `url` with the credentials of secret `user_secret_ref`
    (`user:password`; a value without a colon is a user with no password), a secret of app
    `app`'s scope."""
    dialect = dialect_of(url)
    user = password = None
    if user_secret_ref:
        value = secrets.resolve(user_secret_ref, app)
        user, sep, rest = value.partition(":")
        password = rest if sep else None
    return Endpoint(
        url=url.strip(),
        dialect=dialect,
        user=user or None,
        password=password,
        secret_ref=user_secret_ref,
    )


def endpoint_for(spec, node) -> Endpoint:
    """The endpoint a `database` source or target of `spec` connects to."""
    conn = spec.endpoint(node)
    if not conn.jdbc_url:
        raise JdbcError(f"<database> {getattr(node, 'id', None) or ''} has no jdbcUrl")
    return endpoint(conn.jdbc_url, conn.user_secret_ref, spec.app)
