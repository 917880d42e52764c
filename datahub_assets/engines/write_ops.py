"""The `Engine` operations that write, store or build columns differently per engine.

Declared here, implemented by each engine in its package's `write.py`
(`engines/spark/write.py` `SparkWriteOps`, `engines/duckdb/write.py` `DuckDBWriteOps`):

- table storage (`iceberg/`): the Parquet data files of a table read with its read schema
  (`read_data_files`), a frame written as staged Parquet files, one partition value per file
  (`write_staged_parquet`), a frame with its input order as a column (`with_row_order`), a
  column failing the query (`error_column`);
- CSV exports (`execute/writers/csv_export.py`): `write_csv_folder`, `write_csv_remote`;
- columns (through `engines.columns`, the functions pipeline code calls): `broadcast`,
  `explode_outer`, `row_order_id`, `try_cast`, `cast`, `element_count`, `aggregate_result`,
  `map_entries`, `to_json`, `expr`, `array_field`;
- steps: a select list (`select_exprs`), the `sql` step's query (`sql_query`), the mask
  step's AES tokens and ciphertexts (`mask_token`, `mask_encrypt`) and its key relation
  (`key_relation`); the rows of a check's sample (`collect_dicts`).

Operations handed a frame or a session act on it (`engines.frames.write_ops_of` picks the
engine that made it); the others build columns of the running engine (`engines.api.current`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TOKEN_PREFIX = "tok_"
"""The prefix of the mask step's tokens."""
MASK_IV_BYTES = 12
"""The AES-GCM nonce length of the mask step (Spark's default for GCM)."""


class WriteOps:
    """Writing, storage and column operations of an engine (declared here, implemented per
    engine; the module docstring lists them)."""

    # --- table storage ------------------------------------------------------------------------

    def read_data_files(
        self, session: Any, paths: Sequence[str], schema: Any, file_column: str | None = None
    ) -> DataFrame:
        """A frame over the Parquet `paths` with `schema` (columns matched by name, a column
        no file has is null, narrower types read widened); no paths: no rows. `file_column`:
        add each row's file path as that column."""
        raise NotImplementedError

    def write_staged_parquet(
        self, df: DataFrame, folder: str, partition_by: Sequence[str], part_column: str
    ) -> None:
        """The rows of `df` as Parquet files under the new `folder`; `partition_by`: the
        table's partition columns, hashed into `part_column` folders (one value per file)."""
        raise NotImplementedError

    def with_row_order(self, df: DataFrame, column: str) -> DataFrame:
        """`df` plus `column`, a number increasing with the rows' order in `df` (for
        last-wins deduplication)."""
        raise NotImplementedError

    def error_column(self, message: str) -> Column:
        """A column failing the query with `message`, for a `when(...)` branch."""
        raise NotImplementedError

    # --- CSV exports --------------------------------------------------------------------------

    def write_csv_folder(
        self,
        df: DataFrame,
        folder: str,
        partition_by: Sequence[str],
        header: bool,
        delimiter: str,
        compression: str,
    ) -> None:
        """The rows of `df` as CSV files in the new local `folder`, as Spark writes them."""
        raise NotImplementedError

    def write_csv_remote(
        self,
        df: DataFrame,
        path: str,
        mode: str,
        partition_by: Sequence[str],
        header: bool,
        delimiter: str,
        compression: str,
    ) -> None:
        """The rows of `df` as CSV files below the remote folder `path` (s3://) with Spark's
        save `mode` (overwrite, append, error, ignore)."""
        raise NotImplementedError

    # --- columns (engines.columns) ------------------------------------------------------------

    def broadcast(self, df: DataFrame) -> DataFrame:
        """`df` marked as small enough to send whole to every join task."""
        raise NotImplementedError

    def explode_outer(self, col: Column) -> Column:
        """One row per element; a null or empty array gives one row with null."""
        raise NotImplementedError

    def row_order_id(self) -> Column:
        """An id increasing with the rows' incoming order."""
        raise NotImplementedError

    def try_cast(self, col: Column, dtype: Any, source: Any) -> Column:
        """`col` (of type `source`) as `dtype`, null when it does not convert."""
        raise NotImplementedError

    def cast(self, col: Column, to: str, source: Any) -> Column:
        """`col` (of type `source`) cast to the type text `to`, with Spark's result."""
        raise NotImplementedError

    def element_count(self, col: Column, dtype: Any) -> Column:
        """The number of elements of an array / entries of a map column of type `dtype`."""
        raise NotImplementedError

    def aggregate_result(self, fn: str, out: Column, dtype: Any) -> Column:
        """`out`, the aggregate `fn` of a column of type `dtype`, with Spark's result type."""
        raise NotImplementedError

    def map_entries(self, col: Column) -> Column:
        """The map's entries as an array of (key, value) structs."""
        raise NotImplementedError

    def to_json(self, col: Column, dtype: Any) -> Column:
        """Spark's `to_json` text of a struct/array/map column of type `dtype`."""
        raise NotImplementedError

    def expr(self, text: str, df: Any) -> Column:
        """The Spark SQL expression `text` as a column, with Spark's result types (`df`: the
        frame it runs on, None when not known)."""
        raise NotImplementedError

    def array_field(self, col: Column, name: str) -> Column:
        """The field `name` of each struct of an array column, as an array."""
        raise NotImplementedError

    # --- steps --------------------------------------------------------------------------------

    def select_exprs(self, df: DataFrame, exprs: Sequence[str]) -> DataFrame:
        """`df.selectExpr(*exprs)` with Spark's meaning (`s.*` of a struct is its fields)."""
        raise NotImplementedError

    def sql_query(self, session: Any, query: str, datasets: Mapping[str, DataFrame]) -> DataFrame:
        """The Spark SQL `query` over `datasets`, each visible as a table named by its key."""
        raise NotImplementedError

    def mask_token(self, key: Column, value: Column) -> Column:
        """`tok_` + base64(iv || AES-256-GCM ciphertext || tag) of the string `value` under
        the binary `key`, iv = sha256(key || value)[:12] (equal values, equal tokens)."""
        raise NotImplementedError

    def mask_encrypt(self, key: Column, value: Column) -> Column:
        """base64(iv || AES-256-GCM ciphertext || tag) of `value`, with a random iv."""
        raise NotImplementedError

    def key_relation(
        self, session: Any, salt_column: str, salt: str, key_column: str, key: bytes
    ) -> DataFrame:
        """A one-row relation (`salt_column` string, `key_column` binary) holding the mask
        step's key material, which never appears in a query's or a plan's text."""
        raise NotImplementedError

    def collect_dicts(self, df: DataFrame) -> list[dict[str, Any]]:
        """The rows of the (small) frame `df` as dicts, decimals as `Decimal`."""
        raise NotImplementedError
