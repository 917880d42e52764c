"""`mask`: hash, redact, tokenize or encrypt sensitive columns.

Every masked column is cast to string first and nulls stay null. Key material:
- hash: sha2(salt || value, 256) hex, the salt being the step's secret (`secretRef`, else
  the install's mask key, see `ExecContext.mask_key`);
- tokenize / encrypt: AES-256-GCM with key = sha256(secret), computed in the driver and sent
  to Spark as a binary literal. tokenize derives the 12-byte IV from
  sha256(key || value) (SIV-like), so equal values give equal tokens (joinable, groupable):
  `tok_` + base64(iv || ciphertext || tag). encrypt uses a random IV (Spark's default):
  base64(iv || ciphertext || tag), different on each run.
Both are reversible with the key: `detokenize` / `decrypt_value` here, or Spark's
`aes_decrypt(unbase64(...), key, 'GCM')`.

No secret is logged or put in an error. Spark prints plans in its error messages, so the key
material is never a literal in a plan: it travels as the data of a one-row relation that is
broadcast and cross-joined onto the dataset (plans show only its column names), used by the
masking expressions, then dropped. No extra pass over the data is needed. Spark error text
quoted by `apply_steps` is also cut to its first line and scrubbed of the key material.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyspark.sql import Column, DataFrame

from datahub_assets.engines.api import F, current
from datahub_assets.engines.write_ops import MASK_IV_BYTES, TOKEN_PREFIX
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    mark_sensitive,
    register,
    require_columns,
)
from datahub_assets.spec.models import Mask

REDACTED = "***"


def derive_key(secret: str | bytes) -> bytes:
    """The 32-byte AES key for a mask secret: sha256(secret)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(raw).digest()


def _open(blob: bytes, secret: str | bytes) -> str:
    iv, sealed = blob[:MASK_IV_BYTES], blob[MASK_IV_BYTES:]
    return AESGCM(derive_key(secret)).decrypt(iv, sealed, None).decode()


def detokenize(token: str, key: str | bytes) -> str:
    """The value behind a `tok_...` token, given the mask secret it was made with."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError(f"not a token (expected prefix {TOKEN_PREFIX!r})")
    return _open(base64.b64decode(token[len(TOKEN_PREFIX) :]), key)


def decrypt_value(ciphertext_b64: str, key: str | bytes) -> str:
    """The value behind an `encrypt` output, given the mask secret it was made with."""
    return _open(base64.b64decode(ciphertext_b64), key)


_SALT = "__datahub_mask_salt"
_KEY = "__datahub_mask_key"


def _hash(value: Column) -> Column:
    return F.sha2(F.concat(F.col(_SALT), value), 256)


def _redact(value: Column, keep_last: int) -> Column:
    if keep_last == 0:
        return F.when(value.isNotNull(), F.lit(REDACTED))
    # Never reveal a whole value: values no longer than keepLast become '***' only.
    tail = F.when(F.length(value) > keep_last, F.substring(value, -keep_last, keep_last))
    return F.when(value.isNotNull(), F.concat(F.lit(REDACTED), F.coalesce(tail, F.lit(""))))


def _tokenize(value: Column) -> Column:
    return current().mask_token(F.col(_KEY), value)


def _encrypt(value: Column) -> Column:
    return current().mask_encrypt(F.col(_KEY), value)


def _keys_relation(ctx: ExecContext, secret: str, key: bytes) -> DataFrame:
    """The one-row (salt, key) relation (a broadcast frame on Spark; on DuckDB a table of the
    run's database filled through query parameters, so the key material is never in a
    query's text)."""
    return current().key_relation(ctx.spark, _SALT, secret, _KEY, key)


@register("mask")
def mask(step: Mask, datasets: dict[str, DataFrame], ctx: ExecContext) -> DataFrame:
    """Replace each of `columns` by its masked string (see the module docstring)."""
    df = dataset(datasets, step.source, step.kind)
    if not step.columns:
        raise TransformError(f"mask: no columns given for dataset {step.source!r}")
    require_columns(df, step.columns, step.kind, step.source)
    secret = "" if step.strategy == "redact" else ctx.mask_key(step.secret_ref)
    key = derive_key(secret)
    if secret:
        mark_sensitive(secret, key.hex().upper(), key.hex())
    columns = {c: F.col(f"`{c}`").cast("string") for c in step.columns}
    if step.strategy == "redact":
        return df.withColumns({c: _redact(v, step.keep_last) for c, v in columns.items()})
    fn = {"hash": _hash, "tokenize": _tokenize, "encrypt": _encrypt}[step.strategy]
    with_keys = df.crossJoin(_keys_relation(ctx, secret, key))
    return with_keys.withColumns({c: fn(v) for c, v in columns.items()}).drop(_SALT, _KEY)
