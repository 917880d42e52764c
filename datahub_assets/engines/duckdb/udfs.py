"""The Python functions the DuckDB engine registers on a run's connection, and calls to them.

- `TOKENIZE_FN` / `ENCRYPT_FN`: the mask step's AES-256-GCM (`cryptography`), byte-identical
  to Spark's `aes_encrypt(..., 'GCM', 'DEFAULT', iv)` for tokens (`token_of`, `encrypted_of`).
- `SPARK_JSON_FN`: DuckDB's `to_json` text re-written as Spark's (`engines.duckdb.spark_json`).
- `SCALAR_UDFS`: what the Spark-SQL translation (`engines.duckdb.spark_sql`) calls for Spark
  functions DuckDB lacks or computes otherwise (sha224/384/512, crc32, base64 of text, Java's
  text of a double).

Registering costs ~25 ms a connection, so `ensure_functions` registers only the functions a
query calls (`udfs_in`), once per connection.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Collection
from typing import Any

from datahub_assets.engines.api import current
from datahub_assets.engines.duckdb.spark_json import java_double, spark_json_texts
from datahub_assets.engines.write_ops import MASK_IV_BYTES, TOKEN_PREFIX

TOKENIZE_FN = "__datahub_aes_gcm_token"
ENCRYPT_FN = "__datahub_aes_gcm_encrypt"
SPARK_JSON_FN = "__datahub_spark_json"


def call(name: str, *args: Any) -> Any:
    """A sqlframe column calling the DuckDB function `name` (a registered one included)."""
    from sqlframe.base.column import Column as SqlframeColumn

    return SqlframeColumn.invoke_anonymous_function(None, name, *args)


# --- AES-256-GCM as Spark's aes_encrypt (mask tokenize / encrypt) --------------------------


def _seal(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return iv + AESGCM(key).encrypt(iv, data, None)


def token_of(key: bytes, value: str) -> str:
    """`tok_` + base64(iv || ciphertext || tag), iv = sha256(key || value)[:12]."""
    data = value.encode()
    iv = hashlib.sha256(key + data).digest()[:MASK_IV_BYTES]
    return TOKEN_PREFIX + base64.b64encode(_seal(key, iv, data)).decode()


def encrypted_of(key: bytes, value: str) -> str:
    """base64(iv || ciphertext || tag) with a random iv."""
    return base64.b64encode(_seal(key, os.urandom(MASK_IV_BYTES), value.encode())).decode()


def _arrow_udf(fn: Callable[[bytes, str], str]) -> Callable[[Any, Any], Any]:
    def run(keys: Any, values: Any) -> Any:
        import pyarrow as pa

        out = [
            None if k is None or v is None else fn(k, v)
            for k, v in zip(keys.to_pylist(), values.to_pylist(), strict=True)
        ]
        return pa.array(out, pa.string())

    return run


# --- scalar functions of the Spark-SQL translation -------------------------------------------


def _text_udf(fn: Callable[[Any], Any], out_type: str) -> Callable[[Any], Any]:
    def run(values: Any) -> Any:
        import pyarrow as pa

        return pa.array(
            [None if v is None else fn(v) for v in values.to_pylist()],
            pa.string() if out_type == "VARCHAR" else pa.int64(),
        )

    return run


def _hex_digest(name: str) -> Callable[[str], str]:
    return lambda v: hashlib.new(name, v.encode()).hexdigest()


def _crc32(value: str) -> int:
    import zlib

    return zlib.crc32(value.encode())


SCALAR_UDFS: dict[str, tuple[Callable[[Any], Any], str, str]] = {
    "__datahub_sha224": (_hex_digest("sha224"), "VARCHAR", "VARCHAR"),
    "__datahub_sha384": (_hex_digest("sha384"), "VARCHAR", "VARCHAR"),
    "__datahub_sha512": (_hex_digest("sha512"), "VARCHAR", "VARCHAR"),
    "__datahub_crc32": (_crc32, "VARCHAR", "BIGINT"),
    "__datahub_base64": (lambda v: base64.b64encode(v.encode()).decode(), "VARCHAR", "VARCHAR"),
    "__datahub_double_text": (lambda v: java_double(float(v)).strip('"'), "DOUBLE", "VARCHAR"),
}


# --- registration ------------------------------------------------------------------------------


def udfs_in(tree: Any) -> set[str]:
    """The names of this module's Python functions a rewritten sqlglot tree calls."""
    from sqlglot import exp

    return {
        str(node.this)
        for node in tree.find_all(exp.Anonymous)
        if str(node.this).startswith("__datahub_")
    }


def ensure_functions(conn: Any = None, names: Collection[str] | None = None) -> None:
    """Register the Python functions on the run's DuckDB connection (once per connection):
    `names` only (None: all of them). Registering costs ~25 ms a connection, so the
    rewrites ask only for the functions a query calls (`udfs_in`)."""
    from duckdb import sqltypes

    if names is not None and not names:
        return
    conn = conn if conn is not None else current().connection
    known = {
        r[0]
        for r in conn.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE '__datahub_%'"
        ).fetchall()
    }
    specs = [
        (TOKENIZE_FN, _arrow_udf(token_of), False),
        (ENCRYPT_FN, _arrow_udf(encrypted_of), True),
    ]
    wanted = set(names) if names is not None else None

    def missing(name: str) -> bool:
        return name not in known and (wanted is None or name in wanted)

    for name, fn, side_effects in specs:
        if missing(name):
            conn.create_function(
                name,
                fn,
                [sqltypes.BLOB, sqltypes.VARCHAR],
                sqltypes.VARCHAR,
                type="arrow",
                null_handling="special",
                side_effects=side_effects,
            )
    for name, (fn, arg, out) in SCALAR_UDFS.items():
        if missing(name):
            conn.create_function(
                name,
                _text_udf(fn, out),
                [getattr(sqltypes, arg)],
                getattr(sqltypes, out),
                type="arrow",
                null_handling="special",
            )
    if missing(SPARK_JSON_FN):
        conn.create_function(
            SPARK_JSON_FN,
            spark_json_texts,
            [sqltypes.VARCHAR, sqltypes.VARCHAR],
            sqltypes.VARCHAR,
            type="arrow",
            null_handling="special",
        )
