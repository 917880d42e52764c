"""File-level validation: every rule accepts a good file and rejects a bad one on purpose, with
real files in tmp_path read through a tiny local FileStore."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql.types import LongType, StringType, StructField, StructType

from datahub_assets.ingest import validate
from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.validate import (
    SCAN_BYTES,
    Rejection,
    Verified,
    reason_document,
    sidecar_digest,
    validate_file,
)
from datahub_assets.spec.models import CsvSource, JsonSource, ParquetSource, Watch


class LocalStore:
    """The FileStore calls validate uses, on local disk; counts bytes handed out."""

    def __init__(self) -> None:
        self.bytes_read = 0

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        with Path(path).open("rb") as f:
            data = f.read() if limit is None else f.read(limit)
        self.bytes_read += len(data)
        return data

    def open(self, path: str) -> BinaryIO:
        return Path(path).open("rb")

    def exists(self, path: str) -> bool:
        return Path(path).is_file()

    def stat(self, path: str) -> FileInfo | None:
        if not Path(path).is_file():
            return None
        st = Path(path).stat()
        return FileInfo(path, st.st_size, st.st_mtime)


class BrokenStore(LocalStore):
    """A store whose streams fail mid-read, like a dropped S3 connection."""

    def open(self, path: str) -> BinaryIO:
        class Failing(io.FileIO):
            def read(self, *_args: object) -> bytes:
                raise ConnectionError("connection reset")

        return Failing(path)  # type: ignore[return-value]


CUSTOMERS = StructType(
    [
        StructField("id", LongType()),
        StructField("name", StringType()),
        StructField("email", StringType()),
    ]
)
CSV = CsvSource(id="customers", path="landing/*.csv")
JSONL = JsonSource(id="events", path="landing/*.json")
JSON_DOC = JsonSource(id="events", path="landing/*.json", multiline=True)
PARQUET = ParquetSource(id="orders", path="landing/*.parquet")


def write(path: Path, content: str | bytes) -> FileInfo:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return LocalStore().stat(str(path))  # type: ignore[return-value]


def check(info: FileInfo, source, expected: StructType | None = None) -> Rejection | Verified:
    return validate_file(LocalStore(), info, source, expected)


def rejected(result: Rejection | Verified, rule: str, *words: str) -> Rejection:
    assert isinstance(result, Rejection), f"expected a {rule} rejection, got {result}"
    assert result.rule == rule, result
    for word in words:
        assert word in result.message, (word, result.message)
    return result


def write_parquet(path: Path, table: pa.Table) -> FileInfo:
    pq.write_table(table, path)
    return LocalStore().stat(str(path))  # type: ignore[return-value]


# ---------------------------------------------------------------------------- empty


@pytest.mark.parametrize(
    "content", [b"", b"   \n\t\r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n", " \n".encode("utf-16")]
)
def test_empty_and_whitespace_only_files_are_rejected(tmp_path: Path, content: bytes) -> None:
    info = write(tmp_path / "a.csv", content)
    rejected(check(info, CSV), "empty", str(tmp_path / "a.csv"))


def test_empty_applies_to_every_format(tmp_path: Path) -> None:
    rejected(check(write(tmp_path / "a.json", "\n\n"), JSONL), "empty")
    rejected(check(write(tmp_path / "a.parquet", b""), PARQUET), "empty", "0 bytes")


def test_a_file_with_data_is_not_empty(tmp_path: Path) -> None:
    assert check(write(tmp_path / "a.csv", "\ufeff\nid\n1\n"), CSV) == Verified(header=("id",))


# ------------------------------------------------------------------------ too_large


def test_too_large_names_both_sizes(tmp_path: Path) -> None:
    source = CsvSource(id="c", path="*.csv", watch=Watch(max_size_bytes=10))
    info = write(tmp_path / "a.csv", "id,name\n1,alice\n")
    rejected(check(info, source), "too_large", f"{info.size} bytes", "limit of 10 bytes")
    at_limit = CsvSource(id="c", path="*.csv", watch=Watch(max_size_bytes=info.size))
    assert isinstance(check(info, at_limit), Verified)
    assert isinstance(check(info, CsvSource(id="c", path="*.csv", watch=Watch())), Verified)


def test_empty_is_checked_before_too_large(tmp_path: Path) -> None:
    source = CsvSource(id="c", path="*.csv", watch=Watch(max_size_bytes=1))
    rejected(check(write(tmp_path / "a.csv", "   \n"), source), "empty")


# ------------------------------------------------------------------------- checksum

CSV_TEXT = "id,name,email\n1,alice,a@x.org\n2,bob,b@x.org\n"
JSONL_TEXT = '{"id": 1, "name": "alice"}\n{"id": 2, "name": "bob"}\n'


def _parquet_bytes(tmp_path: Path) -> bytes:
    write_parquet(tmp_path / "tmp.parquet", pa.table({"id": [1, 2], "name": ["a", "b"]}))
    return (tmp_path / "tmp.parquet").read_bytes()


FORMATS = {
    "csv": (CSV, lambda _: CSV_TEXT.encode()),
    "json": (JSONL, lambda _: JSONL_TEXT.encode()),
    "parquet": (PARQUET, _parquet_bytes),
}


def _sidecar_lines(digest: str, name: str, algorithm: str) -> list[str]:
    tag = "SHA256" if algorithm == "sha256" else "MD5"
    return [
        digest,
        f"{digest}  {name}\n",
        f"{digest.upper()} *{name}\n",
        f"{tag} ({name}) = {digest}\n",
        f"\\{digest}  {name}\n",
    ]


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_matching_sidecar_is_verified(tmp_path: Path, kind: str, algorithm: str) -> None:
    source, make = FORMATS[kind]
    data = make(tmp_path)
    info = write(tmp_path / f"drop.{kind}", data)
    digest = hashlib.new(algorithm, data).hexdigest()
    for line in _sidecar_lines(digest, f"drop.{kind}", algorithm):
        write(tmp_path / f"drop.{kind}.{algorithm}", line)
        result = check(info, source)
        assert isinstance(result, Verified), (line, result)
        assert result.checksum == f"{algorithm}:{digest}"


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_mismatching_sidecar_is_rejected(tmp_path: Path, kind: str, algorithm: str) -> None:
    source, make = FORMATS[kind]
    data = make(tmp_path)
    info = write(tmp_path / f"drop.{kind}", data)
    wrong = hashlib.new(algorithm, data + b"x").hexdigest()
    write(tmp_path / f"drop.{kind}.{algorithm}", f"{wrong}  drop.{kind}\n")
    actual = hashlib.new(algorithm, data).hexdigest()
    rejected(check(info, source), "checksum", algorithm, actual, f"says {wrong}")


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_malformed_sidecar_is_rejected(tmp_path: Path, kind: str, algorithm: str) -> None:
    source, make = FORMATS[kind]
    info = write(tmp_path / f"drop.{kind}", make(tmp_path))
    for content in [
        b"",
        b"not-a-digest  drop\n",
        b"abc123\n",
        b"\xff\xfe\x00garbage",
        b"SHA1 (drop) = da39a3ee5e6b4b0d3255bfef95601890afd80709\n",
    ]:
        write(tmp_path / f"drop.{kind}.{algorithm}", content)
        rejected(check(info, source), "checksum", "malformed", f"drop.{kind}.{algorithm}")


def test_both_sidecars_must_match_and_sha256_is_reported(tmp_path: Path) -> None:
    data = CSV_TEXT.encode()
    info = write(tmp_path / "a.csv", data)
    write(tmp_path / "a.csv.sha256", hashlib.sha256(data).hexdigest())
    write(tmp_path / "a.csv.md5", hashlib.md5(data).hexdigest())
    assert check(info, CSV) == Verified(
        f"sha256:{hashlib.sha256(data).hexdigest()}", ("id", "name", "email")
    )
    write(tmp_path / "a.csv.md5", hashlib.md5(b"other").hexdigest())
    rejected(check(info, CSV), "checksum", "md5")


def test_sidecar_digest_rejects_the_wrong_length_and_algorithm() -> None:
    sha = "a" * 64
    assert sidecar_digest(f"SHA2-256(f.csv)= {sha.upper()}\n", "sha256") == sha
    with pytest.raises(ValueError, match="not a md5 hex digest"):
        sidecar_digest(sha, "md5")
    with pytest.raises(ValueError, match="SHA256 digest, not md5"):
        sidecar_digest(f"SHA256 (f) = {sha}", "md5")


def test_checksum_streams_the_file(tmp_path: Path) -> None:
    data = ("id,name,email\n" + "1,alice,a@x.org\n" * 40_000).encode()  # ~640 KB
    info = write(tmp_path / "big.csv", data)
    write(tmp_path / "big.csv.sha256", hashlib.sha256(data).hexdigest())
    store = LocalStore()
    assert isinstance(validate_file(store, info, CSV, CUSTOMERS), Verified)
    assert store.bytes_read <= SCAN_BYTES + 8 * 1024  # read_bytes only saw the prefix


# ------------------------------------------------------------------------------ CSV


def test_csv_header_is_returned_and_bom_stripped(tmp_path: Path) -> None:
    info = write(tmp_path / "a.csv", b"\xef\xbb\xbf" + CSV_TEXT.encode())
    assert check(info, CSV, CUSTOMERS) == Verified(None, ("id", "name", "email"))


def test_csv_schema_columns_match_case_insensitively(tmp_path: Path) -> None:
    info = write(tmp_path / "a.csv", "ID,Name,EMAIL,extra\n1,a,b,c\n")
    assert isinstance(check(info, CSV, CUSTOMERS), Verified)


def test_csv_missing_schema_column_is_a_schema_rejection(tmp_path: Path) -> None:
    info = write(tmp_path / "a.csv", "id,name\n1,alice\n")
    rejected(check(info, CSV, CUSTOMERS), "schema", "'email'", "'id', 'name'", "schemaRef")


def test_csv_wrong_field_count_names_the_line(tmp_path: Path) -> None:
    # one malformed record is the run's business (onInvalid), not a reason to reject the file
    info = write(tmp_path / "a.csv", 'id,name,email\n1,a,b\n\n2,"x, y",c\n3,b\n4,c,d\n')
    assert isinstance(check(info, CSV), Verified)
    info = write(tmp_path / "b.csv", "id,name,email\n3,b\n4;c;d\n")
    rejected(check(info, CSV), "unreadable", "line 2 has 2", "the header (3")


def test_csv_quoted_newlines_and_escaped_quotes_keep_the_count(tmp_path: Path) -> None:
    text = 'id,name,email\n1,"multi\nline",x\n2,"say \\"hi\\"",y\n3,"a ""b""",z\n'
    assert isinstance(check(write(tmp_path / "a.csv", text), CSV), Verified)
    info = write(tmp_path / "b.csv", text + "4,only\n")
    assert isinstance(check(info, CSV), Verified)  # the short record: onInvalid in the run
    info = write(tmp_path / "c.csv", "id,name,email\n4,only\n")
    rejected(check(info, CSV), "unreadable", "line 2 has 2")


def test_csv_options_delimiter_quote_escape_and_encoding(tmp_path: Path) -> None:
    source = CsvSource(
        id="c", path="*.csv", delimiter=";", quote="'", escape="'", encoding="ISO-8859-1"
    )
    info = write(tmp_path / "a.csv", "id;name;email\n1;'Ren\xe9e; jr';x\n".encode("latin-1"))
    assert check(info, source, CUSTOMERS) == Verified(None, ("id", "name", "email"))
    tabs = CsvSource(id="c", path="*.csv", delimiter="\\t")
    assert isinstance(check(write(tmp_path / "t.csv", "id\tname\n1\ta\n"), tabs), Verified)


def test_csv_multi_character_delimiter_splits_lines(tmp_path: Path) -> None:
    source = CsvSource(id="c", path="*.csv", delimiter="||")
    info = write(tmp_path / "a.csv", "id||name||email\n1||a,b||c\n")
    assert check(info, source, CUSTOMERS) == Verified(None, ("id", "name", "email"))
    bad = write(tmp_path / "b.csv", "id||name||email\n2||x\n")
    rejected(check(bad, source), "unreadable", "line 2 has 2")


def test_csv_that_does_not_decode_is_unreadable(tmp_path: Path) -> None:
    info = write(tmp_path / "a.csv", "id,name\n1,Ren\xe9e\n".encode("latin-1"))
    rejected(check(info, CSV), "unreadable", "not valid utf-8", "encoding")


def test_csv_without_header_compares_with_the_first_line(tmp_path: Path) -> None:
    source = CsvSource(id="c", path="*.csv", header=False)
    assert check(write(tmp_path / "a.csv", "1,a\n2,b\n"), source) == Verified(None, None)
    assert check(write(tmp_path / "b.csv", "1,a\n2,b,c\n"), source) == Verified(None, None)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("id,,email", ["blank column names", "position 2"]),
        ("id, ,email,", ["position 2, 4"]),
        ("id,name,ID", ["repeats", "'ID'"]),
    ],
)
def test_csv_blank_or_duplicate_header_is_unreadable(
    tmp_path: Path, header: str, words: list[str]
) -> None:
    info = write(tmp_path / "a.csv", f"{header}\n1,2,3{',' * header.endswith(',')}\n")
    rejected(check(info, CSV), "unreadable", *words)


def test_csv_scan_ignores_the_record_cut_by_the_limit(tmp_path: Path) -> None:
    row = "1,alice,a@x.org\n"
    count = SCAN_BYTES // len(row) + 10
    data = "id,name,email\n" + row * count
    info = write(tmp_path / "a.csv", data)
    cut_at = SCAN_BYTES - len(data[:SCAN_BYTES].rsplit("\n", 1)[0]) - 1
    assert 0 < cut_at < len(row)  # the limit falls inside a record
    assert isinstance(check(info, CSV, CUSTOMERS), Verified)
    bad = "id,name,email\n" + "9,short\n" * count
    rejected(check(write(tmp_path / "b.csv", bad), CSV), "unreadable", "has 2")
    late = data + "9,short\n"  # beyond the scanned prefix: left to Spark
    assert isinstance(check(write(tmp_path / "c.csv", late), CSV), Verified)


# ----------------------------------------------------------------------------- JSON


def test_json_lines_first_object_passes(tmp_path: Path) -> None:
    info = write(tmp_path / "a.json", "\n  \n" + JSONL_TEXT)
    assert check(info, JSONL, CUSTOMERS) == Verified(None, None)


def test_json_line_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    info = write(tmp_path / "a.json", '\n\n{"id": 1, name}\n{"id": 2}\n')
    assert isinstance(check(info, JSONL), Verified)  # a later object: the run's onInvalid
    info = write(tmp_path / "b.json", '\n\n{"id": 1, name}\n[2]\n')
    rejected(check(info, JSONL), "unreadable", "line 3 is not valid JSON", "column")


@pytest.mark.parametrize(
    ("line", "kind"), [("[1, 2]", "an array"), ("42", "a number"), ('"text"', "a string")]
)
def test_json_line_that_is_not_an_object_is_unreadable(
    tmp_path: Path, line: str, kind: str
) -> None:
    info = write(tmp_path / "a.json", f"{line}\n")
    rejected(check(info, JSONL), "unreadable", f"line 1 holds {kind}")


def test_json_lines_without_any_schema_field_is_a_schema_rejection(tmp_path: Path) -> None:
    info = write(tmp_path / "a.json", '{"user": 1, "what": "x"}\n')
    rejected(check(info, JSONL, CUSTOMERS), "schema", "'id', 'name', 'email'", "'user'")
    partial = write(tmp_path / "b.json", '{"ID": 1}\n')
    assert isinstance(check(partial, JSONL, CUSTOMERS), Verified)


def test_json_lines_with_a_bom(tmp_path: Path) -> None:
    info = write(tmp_path / "a.json", b"\xef\xbb\xbf" + JSONL_TEXT.encode())
    assert isinstance(check(info, JSONL, CUSTOMERS), Verified)


def test_json_lines_first_record_longer_than_the_scan(tmp_path: Path) -> None:
    big = json.dumps({"id": 1, "name": "x" * (SCAN_BYTES * 2)})
    assert isinstance(
        check(write(tmp_path / "a.json", big + "\n" + big + "\n"), JSONL, CUSTOMERS), Verified
    )
    rejected(
        check(write(tmp_path / "b.json", big[:-1] + "\n" + big + "\n"), JSONL),
        "unreadable",
        "line 1 is not valid JSON",
    )


@pytest.mark.parametrize(
    "doc",
    [
        {"id": 1, "name": "a"},
        [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        [],
    ],
)
def test_multiline_document_passes(tmp_path: Path, doc: object) -> None:
    info = write(tmp_path / "a.json", "\n " + json.dumps(doc, indent=2))
    assert check(info, JSON_DOC, CUSTOMERS) == Verified(None, None)


def test_multiline_document_problems(tmp_path: Path) -> None:
    rejected(
        check(write(tmp_path / "a.json", "  id: 1\n"), JSON_DOC),
        "unreadable",
        "does not start with '{' or '['",
        "found 'i'",
    )
    rejected(
        check(write(tmp_path / "b.json", '{\n  "id": 1,\n  "name": \n}'), JSON_DOC),
        "unreadable",
        "not a valid JSON document",
        "line 4",
    )
    rejected(
        check(write(tmp_path / "c.json", '[{"id": 1}, 2]'), JSON_DOC),
        "unreadable",
        "element 1",
        "a number",
    )
    rejected(
        check(write(tmp_path / "d.json", '[{"other": 1}]'), JSON_DOC, CUSTOMERS),
        "schema",
        "'other'",
    )
    rejected(check(write(tmp_path / "e.json", JSONL_TEXT), JSON_DOC), "unreadable", "Extra data")


def test_large_multiline_document_only_checks_its_first_character(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validate, "MAX_FULL_JSON_BYTES", 100)
    doc = json.dumps([{"id": i, "name": "x" * 20} for i in range(20)])
    truncated = write(tmp_path / "a.json", doc[:-1])  # invalid, but too large to be parsed
    assert isinstance(check(truncated, JSON_DOC), Verified)
    rejected(
        check(write(tmp_path / "b.json", "\n\n  x" + doc), JSON_DOC), "unreadable", "found 'x'"
    )


# -------------------------------------------------------------------------- Parquet


def test_parquet_with_the_declared_columns_passes(tmp_path: Path) -> None:
    table = pa.table({"ID": [1], "name": ["a"], "email": ["x"], "extra": [True]})
    info = write_parquet(tmp_path / "a.parquet", table)
    assert check(info, PARQUET, CUSTOMERS) == Verified(None, None)


def test_parquet_missing_a_column_is_a_schema_rejection(tmp_path: Path) -> None:
    info = write_parquet(tmp_path / "a.parquet", pa.table({"id": [1], "name": ["a"]}))
    rejected(check(info, PARQUET, CUSTOMERS), "schema", "'email'", "'id', 'name'")


@pytest.mark.parametrize("damage", ["not parquet", "bad footer", "truncated"])
def test_corrupt_parquet_is_unreadable(tmp_path: Path, damage: str) -> None:
    data = _parquet_bytes(tmp_path)
    broken = {
        "not parquet": b"id,name\n1,a\n",
        "bad footer": data[:-40] + b"\x07" * 32 + data[-8:],
        "truncated": data[: len(data) // 2],
    }[damage]
    info = write(tmp_path / "a.parquet", broken)
    rejected(check(info, PARQUET), "unreadable", "not a readable Parquet file")


def test_store_failures_propagate_instead_of_rejecting(tmp_path: Path) -> None:
    info = write_parquet(tmp_path / "a.parquet", pa.table({"id": [1]}))
    with pytest.raises(ConnectionError, match="connection reset"):
        validate_file(BrokenStore(), info, PARQUET, None)


# --------------------------------------------------------------------------- reason


def test_reason_document() -> None:
    info = FileInfo("s3://bucket/landing/a.csv", 12, 1_700_000_000.5, etag="abc")
    doc = reason_document(
        Rejection("schema", "missing email"), info, "run-1", "customers", "sales.customer_ingest"
    )
    assert doc["rule"] == "schema"
    assert doc["message"] == "missing email"
    assert doc["file"] == info.path
    assert doc["size"] == 12
    assert doc["etag"] == "abc"
    assert doc["modified"] == "2023-11-14T22:13:20.500000+00:00"
    assert doc["source"] == "sales.customer_ingest/customers"
    assert doc["run_id"] == "run-1"
    assert datetime.fromisoformat(doc["rejected_at"]).utcoffset().total_seconds() == 0
    json.dumps(doc)  # serialisable as written to <file>.reason.json
