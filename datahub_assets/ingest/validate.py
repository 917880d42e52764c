"""File-level validation of a landed file, before any row is ingested.

`validate_file` applies the rules below in order and stops at the first that fails, returning a
`Rejection(rule, message)`; a file that passes returns `Verified` with what validation learned
(the checked sidecar checksum, the CSV header). The caller moves a rejected file to
`rejected/<date>/` next to a `<file>.reason.json` built by `reason_document`.

    symlink     the file, or its checksum sidecar, is a symbolic link (or lies below a linked
                folder under the watched path): landing never follows links (`ingest.store`)
    empty       size 0, or nothing but whitespace and byte-order marks (first 8 KiB decide)
    too_large   above `<watch maxSizeBytes>`
    checksum    a `<file>.sha256` / `<file>.md5` sidecar exists and does not match the file's
                digest, or cannot be parsed (formats: `<hex>`, `<hex>  name`, `<hex> *name`,
                BSD `SHA256 (name) = <hex>`)
    unreadable  the file is not what its source kind says (bad CSV header, no record of the
                scanned window with the header's field count, no JSON object in the window's
                lines, no Parquet footer, undecodable text). A single malformed record is not a
                file problem: the run splits it off and applies onInvalid (execute/malformed)
    schema      the file lacks columns of the declared schema (schemaRef)

I/O is bounded: only the checksum streams the whole file (in chunks, via `store.open`). CSV and
JSON-lines checks read a 64 KiB prefix (grown only while the first record is incomplete, up to
16 MiB); a multiline JSON document is parsed fully only below 16 MiB; Parquet reads the footer.
Errors of the store itself (network, permissions) propagate: they say nothing about the file,
and the next sensor tick retries, whereas a rejection is final for that file version.

CSV parsing mirrors Spark's defaults where Python's csv module allows: quote `"`, escape `\\`,
blank lines skipped. A multi-character delimiter (which Spark accepts) splits lines verbatim,
without quote handling. Column names compare case-insensitively, as Spark and Iceberg do.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from pyspark.sql.types import StructType

from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.store import LinkRefused
from datahub_assets.spec.models import CsvSource, JsonSource, ParquetSource

if TYPE_CHECKING:
    from datahub_assets.ingest.store import FileStore

RULES: tuple[str, ...] = ("symlink", "empty", "too_large", "checksum", "unreadable", "schema")

EMPTY_PROBE_BYTES = 8 * 1024
SCAN_BYTES = 64 * 1024
MAX_FIRST_RECORD_BYTES = 16 * 1024 * 1024
MAX_FULL_JSON_BYTES = 16 * 1024 * 1024
HASH_CHUNK_BYTES = 1024 * 1024
SIDECAR_MAX_BYTES = 4 * 1024

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HEX_LENGTH = {"sha256": 64, "md5": 32}
_BSD_TAGS = {"sha256": {"SHA256", "SHA-256", "SHA2-256"}, "md5": {"MD5"}}
_BSD_LINE = re.compile(r"^(?P<tag>[A-Za-z0-9-]+)\s*\((?P<name>.*)\)\s*=\s*(?P<digest>\S+)\s*$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")


@dataclass(frozen=True)
class Rejection:
    """Why a file is rejected: `rule` is one of RULES; `message` says what to fix."""

    rule: str
    message: str


@dataclass(frozen=True)
class Verified:
    """A file that passed: `checksum` is the verified sidecar digest (`sha256:<hex>` or
    `md5:<hex>`, None without a sidecar); `header` the CSV header columns (None otherwise)."""

    checksum: str | None = None
    header: tuple[str, ...] | None = None


FileSource = CsvSource | JsonSource | ParquetSource


def validate_file(
    store: FileStore, info: FileInfo, source: FileSource, expected: StructType | None = None
) -> Rejection | Verified:
    """Check `info` (a file of `source`) against the rules of this module, in order.

    `expected` is the declared schema (the source's schemaRef), if any. Raises only what the
    store raises (the file could not be read at all); every problem of the file is a Rejection,
    a symbolic link found at any step (the file swapped for one since it was listed) too.
    """
    if info.link:
        return Rejection("symlink", str(LinkRefused.of(info.path)))
    try:
        return _validate(store, info, source, expected)
    except LinkRefused as exc:
        return Rejection("symlink", str(exc))


def _validate(
    store: FileStore, info: FileInfo, source: FileSource, expected: StructType | None
) -> Rejection | Verified:
    problem = _check_empty(store, info) or _check_size(info, source)
    if problem:
        return problem
    checksum = _check_sidecars(store, info)
    if isinstance(checksum, Rejection):
        return checksum
    if isinstance(source, CsvSource):
        result = _check_csv(store, info, source, expected)
    elif isinstance(source, JsonSource):
        result = _check_json(store, info, source, expected)
    elif isinstance(source, ParquetSource):
        result = _check_parquet(store, info, expected)
    else:
        raise TypeError(
            f"validate_file: {type(source).__name__} is not a file source "
            "(expected a csv, json or parquet source)"
        )
    if isinstance(result, Rejection):
        return result
    return Verified(checksum=checksum, header=result)


def reason_document(
    rejection: Rejection, info: FileInfo, run_id: str | None, source_id: str, pipeline: str
) -> dict[str, Any]:
    """The `<file>.reason.json` of a rejected file; `pipeline` is `<app>.<pipeline>`."""
    return {
        "rule": rejection.rule,
        "message": rejection.message,
        "file": info.path,
        "size": info.size,
        "modified": datetime.fromtimestamp(info.modified, UTC).isoformat(),
        "etag": info.etag,
        "source": f"{pipeline}/{source_id}",
        "run_id": run_id,
        "rejected_at": datetime.now(UTC).isoformat(),
    }


# ------------------------------------------------------------------------- size rules


def _strip_bom(data: bytes) -> tuple[bytes, str | None]:
    """(data without a leading byte-order mark, the codec it implies or None)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :], codec
    return data, None


def _check_empty(store: FileStore, info: FileInfo) -> Rejection | None:
    if info.size == 0:
        return Rejection("empty", f"{info.path} is empty (0 bytes); drop a file with data")
    if info.size > EMPTY_PROBE_BYTES:
        return None
    body, codec = _strip_bom(store.read_bytes(info.path, limit=EMPTY_PROBE_BYTES))
    if codec and codec != "utf-8":
        body = body.replace(b"\x00", b"")
    if body.strip():
        return None
    return Rejection(
        "empty",
        f"{info.path} holds only whitespace ({info.size} bytes) and no data; drop a file with data",
    )


def _check_size(info: FileInfo, source: FileSource) -> Rejection | None:
    limit = source.watch.max_size_bytes if source.watch else None
    if limit is None or info.size <= limit:
        return None
    return Rejection(
        "too_large",
        f"{info.path} is {info.size} bytes, above the limit of {limit} "
        "bytes (watch maxSizeBytes); split the file or raise the limit",
    )


# ------------------------------------------------------------------------ checksums


def sidecar_digest(text: str, algorithm: str) -> str:
    """The lower-case hex digest in the first line of a `sha256`/`md5` sidecar file.

    Raises ValueError naming the problem when the line is not a digest of that algorithm.
    """
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        raise ValueError("it is empty")
    first = lines[0]
    bsd = _BSD_LINE.match(first)
    if bsd:
        if bsd["tag"].upper() not in _BSD_TAGS[algorithm]:
            raise ValueError(f"it holds a {bsd['tag']} digest, not {algorithm}")
        digest = bsd["digest"]
    else:
        digest = first.split()[0].removeprefix("\\")  # GNU escapes odd names with a leading \
    if not _HEX.match(digest) or len(digest) != _HEX_LENGTH[algorithm]:
        raise ValueError(
            f"its first token {digest[:80]!r} is not a {algorithm} hex digest "
            f"({_HEX_LENGTH[algorithm]} hex characters)"
        )
    return digest.lower()


def _check_sidecars(store: FileStore, info: FileInfo) -> str | Rejection | None:
    """Verify every `<path>.sha256` / `<path>.md5` sidecar in one pass over the file.

    Returns the verified `algorithm:hex` (sha256 preferred), None without sidecars.
    """
    wanted: dict[str, str] = {}
    for algorithm in ("sha256", "md5"):
        sidecar = f"{info.path}.{algorithm}"
        if not store.exists(sidecar):
            continue
        try:
            raw = store.read_bytes(sidecar, limit=SIDECAR_MAX_BYTES)
        except LinkRefused:
            return Rejection(
                "symlink",
                f"checksum sidecar {sidecar} is a symbolic link; links in landing are not "
                "followed: put the sidecar file itself next to the file",
            )
        try:
            wanted[algorithm] = sidecar_digest(raw.decode("utf-8"), algorithm)
        except (UnicodeDecodeError, ValueError) as exc:
            why = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
            return Rejection(
                "checksum",
                f"checksum sidecar {sidecar} is malformed: {why}; "
                f"write `<hex digest>  <file name>` into it",
            )
    if not wanted:
        return None
    actual = _digests(store, info.path, list(wanted))
    for algorithm, digest in wanted.items():
        if actual[algorithm] != digest:
            return Rejection(
                "checksum",
                f"{info.path} has {algorithm} {actual[algorithm]} but "
                f"its sidecar {info.path}.{algorithm} says {digest}; "
                "the file is corrupt or incomplete, drop it again",
            )
    first = next(iter(wanted))
    return f"{first}:{wanted[first]}"


def _digests(store: FileStore, path: str, algorithms: list[str]) -> dict[str, str]:
    """Hex digests of the file, streamed in chunks (never whole in memory)."""
    hashers = {a: hashlib.new(a, usedforsecurity=False) for a in algorithms}
    with store.open(path) as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


# -------------------------------------------------------------------------- reading


def _prefix(store: FileStore, info: FileInfo, done: Callable[[bytes], bool]) -> bytes:
    """The first SCAN_BYTES of the file, grown (x4) while `done(data)` is false and the file
    goes on, up to MAX_FIRST_RECORD_BYTES."""
    limit = SCAN_BYTES
    while True:
        data = store.read_bytes(info.path, limit=limit)
        if len(data) < limit or done(data) or limit >= MAX_FIRST_RECORD_BYTES:
            return data
        limit *= 4


def _decode(data: bytes, encoding: str, final: bool) -> str:
    """Text of `data`; a multi-byte character cut at the end is dropped unless `final`.
    Raises UnicodeDecodeError / LookupError."""
    text = codecs.getincrementaldecoder(encoding)(errors="strict").decode(data, final=final)
    return text.removeprefix("\ufeff")


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _missing(expected: StructType, found: list[str]) -> list[str]:
    have = {name.lower() for name in found}
    return [f.name for f in expected.fields if f.name.lower() not in have]


# ------------------------------------------------------------------------------ CSV


def _spark_char(value: str) -> str:
    r"""Spark's spelling of a delimiter (`\t`, `\u0001`) as the character itself."""
    if value == "\\t":
        return "\t"
    if re.fullmatch(r"\\u[0-9a-fA-F]{4}", value):
        return chr(int(value[2:], 16))
    return value


def _csv_rows(text: str, source: CsvSource) -> tuple[list[tuple[int, list[str]]], str | None]:
    """(starting line number, fields) of every record of `text`, skipping blank lines, and
    the csv module's error (with its line) if it stopped early."""
    delimiter = _spark_char(source.delimiter)
    rows: list[tuple[int, list[str]]] = []
    if len(delimiter) != 1:
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append((number, line.split(delimiter)))
        return rows, None
    quote = '"' if source.quote is None else source.quote
    escape = "\\" if source.escape is None else source.escape
    options: dict[str, Any] = {"delimiter": delimiter, "doublequote": True, "strict": False}
    if quote in ("", "\u0000"):
        options.update(quoting=csv.QUOTE_NONE, quotechar=None)
    else:
        options["quotechar"] = quote
    options["escapechar"] = escape if escape and escape != quote else None
    reader = csv.reader(io.StringIO(text, newline=""), **options)
    start = 1
    try:
        for fields in reader:
            if len(fields) > 1 or (fields and fields[0].strip()):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        return rows, f"line {start}: {exc}"
    return rows, None


def _check_csv(
    store: FileStore, info: FileInfo, source: CsvSource, expected: StructType | None
) -> tuple[str, ...] | None | Rejection:
    """The header (None without header=true), or why the file cannot be read as CSV."""
    encoding = source.encoding or "utf-8"
    data = _prefix(store, info, lambda d: b"\n" in d.lstrip())
    cut = len(data) < info.size
    try:
        text = _decode(data, encoding, final=not cut)
    except LookupError:
        return Rejection(
            "unreadable",
            f"encoding {encoding!r} of source {source.id!r} is not "
            "known; fix the encoding attribute (e.g. UTF-8)",
        )
    except UnicodeDecodeError as exc:
        return Rejection(
            "unreadable",
            f"{info.path} is not valid {encoding} text (byte "
            f"{exc.start}: {exc.reason}); re-export it as {encoding} "
            "or set the source's encoding",
        )
    rows, error = _csv_rows(text, source)
    if cut and rows:
        rows.pop()  # the last record may be cut by the scan limit
        error = None
    if error:
        return Rejection("unreadable", f"{info.path} is not readable as CSV: {error}")
    if not rows:
        if cut:  # one record longer than the scan window: nothing to compare
            return None
        return Rejection("unreadable", f"{info.path} has no CSV record; drop a file with data")
    first_line, first = rows[0]
    header: tuple[str, ...] | None = None
    if source.header:
        header = tuple(first)
        problem = _check_header(info, header)
        if problem:
            return problem
        if expected is not None:
            missing = _missing(expected, first)
            if missing:
                return Rejection(
                    "schema",
                    f"{info.path}: column(s) {_names(missing)} of the "
                    f"declared schema are missing from the header, which "
                    f"has {_names(first)}; fix the file or the schemaRef",
                )
    data = rows[1:] if source.header else rows
    if (
        data
        and not any(len(fields) == len(first) for _, fields in data)
        and not _any_line_fits(text, source, len(first), skip=1 if source.header else 0)
    ):
        # not one record of the window fits: the file is not in this shape (a single
        # malformed record is not a file problem: the run handles it per onInvalid)
        line, fields = data[0]
        what = "the header" if source.header else f"line {first_line}"
        return Rejection(
            "unreadable",
            f"{info.path}: no record in the first "
            f"{SCAN_BYTES // 1024} KiB has the field count of {what} "
            f"({len(first)}; line {line} has {len(fields)}); check "
            f"the delimiter {source.delimiter!r} and quoting",
        )
    return header


def _any_line_fits(text: str, source: CsvSource, count: int, skip: int) -> bool:
    """Does any single line have `count` fields? Spark reads CSV line by line (multiLine off),
    so an unclosed quote spoils one line there, while the csv module runs on to the next
    quote."""
    lines = text.splitlines()[skip:]
    if lines and not text.endswith(("\n", "\r")):
        lines.pop()  # may be cut by the scan window
    for line in lines:
        parsed, _ = _csv_rows(line, source)
        if parsed and len(parsed[0][1]) == count:
            return True
    return False


def _check_header(info: FileInfo, header: tuple[str, ...]) -> Rejection | None:
    blank = [str(i) for i, name in enumerate(header, 1) if not name.strip()]
    if blank:
        return Rejection(
            "unreadable",
            f"{info.path}: the CSV header has blank column names (at "
            f"position {', '.join(blank)}); name every column",
        )
    seen: dict[str, str] = {}
    duplicates = []
    for name in header:
        if name.lower() in seen:
            duplicates.append(name)
        seen.setdefault(name.lower(), name)
    if duplicates:
        return Rejection(
            "unreadable",
            f"{info.path}: the CSV header repeats column(s) "
            f"{_names(duplicates)} (names compare case-insensitively)"
            "; give every column a unique name",
        )
    return None


# ----------------------------------------------------------------------------- JSON


def _json_text(data: bytes, final: bool) -> str:
    """JSON text as Spark reads it: UTF-8 unless a byte-order mark says UTF-16/32."""
    body, codec = _strip_bom(data)
    return _decode(body, codec or "utf-8", final)


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


def _check_json(
    store: FileStore, info: FileInfo, source: JsonSource, expected: StructType | None
) -> Rejection | None:
    try:
        if source.multiline:
            return _check_json_document(store, info, expected)
        return _check_json_lines(store, info, expected)
    except UnicodeDecodeError as exc:
        return Rejection(
            "unreadable",
            f"{info.path} is not valid UTF-8 text (byte {exc.start}: "
            f"{exc.reason}); write JSON as UTF-8",
        )


def _first_line_done(data: bytes) -> bool:
    body = data.lstrip()
    return b"\n" in body and bool(body.split(b"\n", 1)[0].strip())


def _check_json_lines(
    store: FileStore, info: FileInfo, expected: StructType | None
) -> Rejection | None:
    data = _prefix(store, info, _first_line_done)
    cut = len(data) < info.size
    lines = _json_text(data, final=not cut).split("\n")
    complete = [
        (n, line)
        for n, line in enumerate(lines, 1)
        if line.strip() and not (cut and n == len(lines))
    ]
    if not complete:
        return None  # the first record goes past MAX_FIRST_RECORD_BYTES: left to Spark
    first_problem = None
    for number, line in complete:  # the first object decides; malformed lines before it are
        try:  # records for the run's onInvalid, not a file problem
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            first_problem = first_problem or Rejection(
                "unreadable",
                f"{info.path}: line {number} is not valid JSON ({exc.msg} at "
                f"column {exc.colno}) and no line of the first "
                f"{SCAN_BYTES // 1024} KiB is a JSON object; JSON lines files "
                'need one JSON object per line (multiline="true" reads one '
                "document)",
            )
            continue
        if not isinstance(record, dict):
            first_problem = first_problem or Rejection(
                "unreadable",
                f"{info.path}: line {number} holds {_kind(record)}, not a JSON "
                "object, and no line of the first "
                f"{SCAN_BYTES // 1024} KiB is one; JSON lines files need one "
                "object per line",
            )
            continue
        return _check_json_fields(info, record, expected, f"line {number}")
    return first_problem


def _check_json_fields(
    info: FileInfo, record: dict, expected: StructType | None, where: str
) -> Rejection | None:
    if expected is None or not expected.fields:
        return None
    if len(_missing(expected, list(record))) < len(expected.fields):
        return None
    return Rejection(
        "schema",
        f"{info.path}: the object on {where} has none of the fields of "
        f"the declared schema ({_names(expected.fieldNames())}); it has "
        f"{_names(list(record))}; fix the file or the schemaRef",
    )


def _check_json_document(
    store: FileStore, info: FileInfo, expected: StructType | None
) -> Rejection | None:
    if info.size >= MAX_FULL_JSON_BYTES:
        data = _prefix(store, info, lambda d: bool(d.strip()))
        text = _json_text(data, final=False).lstrip()
        if text and text[0] not in "{[":
            return _not_a_document(info, text[0])
        return None
    text = _json_text(store.read_bytes(info.path, limit=MAX_FULL_JSON_BYTES), final=True)
    start = text.lstrip()[:1]
    if start not in ("{", "["):
        return _not_a_document(info, start)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(
            "unreadable",
            f"{info.path} is not a valid JSON document: {exc.msg} at "
            f"line {exc.lineno} column {exc.colno}",
        )
    records = doc if isinstance(doc, list) else [doc]
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            return Rejection(
                "unreadable",
                f"{info.path}: element {i} of the top-level array "
                f"is {_kind(record)}, not a JSON object; every "
                "record must be an object",
            )
    if not records:
        return None
    return _check_json_fields(info, records[0], expected, "the first record")


def _not_a_document(info: FileInfo, start: str) -> Rejection:
    return Rejection(
        "unreadable",
        f"{info.path} does not start with '{{' or '[' (found "
        f"{start!r}); a multiline JSON source needs one JSON object "
        "or an array of objects",
    )


# -------------------------------------------------------------------------- Parquet


class _Guarded:
    """A file proxy remembering whether the store itself failed, so such errors propagate
    while pyarrow's own errors (bad magic, bad footer) become `unreadable`."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.failure: BaseException | None = None

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._f, name)(*args)
        except Exception as exc:
            self.failure = exc
            raise

    def read(self, *args: Any) -> bytes:
        return self._call("read", *args)

    def seek(self, *args: Any) -> int:
        return self._call("seek", *args)

    def tell(self) -> int:
        return self._call("tell")

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._f.closed

    def close(self) -> None:
        self._f.close()


def _check_parquet(
    store: FileStore, info: FileInfo, expected: StructType | None
) -> Rejection | None:
    import pyarrow.parquet as pq

    with store.open(info.path) as f:
        guarded = _Guarded(f)
        try:
            names = pq.ParquetFile(guarded).schema_arrow.names
        except Exception as exc:
            if guarded.failure is not None:
                raise guarded.failure from None
            return Rejection(
                "unreadable",
                f"{info.path} is not a readable Parquet file "
                f"({str(exc).strip()[:300]}); re-export it",
            )
    if expected is not None:
        missing = _missing(expected, names)
        if missing:
            return Rejection(
                "schema",
                f"{info.path}: column(s) {_names(missing)} of the "
                f"declared schema are missing from the Parquet file, "
                f"which has {_names(names)}; fix the file or the "
                "schemaRef",
            )
    return None
