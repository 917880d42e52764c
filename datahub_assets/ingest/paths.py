"""Glob matching of watched paths, and where landed files go once handled. Pure: no I/O.

Paths are absolute local paths (`/data/in/a.csv`) or URIs (`s3://bucket/in/a.csv`,
`file:///data/in/a.csv`), always with `/` separators. The *anchor* of a path is its part that
a glob can never reach above: `/` for a local path, `s3://bucket/` (scheme and bucket or host)
for a URI. Wildcards in the anchor (a bucket name) are not supported.

Glob semantics (`glob_regex`) follow Python's `glob.glob(recursive=True)`: `*` and `?` never
cross `/`, `[...]` is a character class (`[!...]` negated; a `[` without its `]` is literal),
`**` as a whole path segment matches zero or more directories, and a wildcard segment does not
match names starting with `.` unless the segment itself starts with `.`. The *static prefix*
(`static_prefix`) is the directory part before the first wildcard: the only place a listing
has to look.

A drop listing (`Glob.lists`) also skips what is not a landed file: names of `is_ignored_name`
(temp files, `_SUCCESS` markers, checksum sidecars, reasons), directories with such names below
the static prefix (`_temporary/`, `.staging/`) unless the pattern names them literally, and
the processed/rejected folders of the pattern (`is_lifecycle_path`).

Where a handled file goes (`destination`), for the folder `processed` or `rejected` and the day
of the run:

* If the pattern has a path segment exactly `landing` (below the anchor; the last one if there
  are several), `root` is everything before that segment and `rel` is the file's path after
  `landing/`; the file goes to `<root><folder>/<yyyy-mm-dd>/<rel>`:
  `/data/shop/landing/orders/*.csv`: `/data/shop/landing/orders/a.csv` goes to
  `/data/shop/processed/2026-11-22/orders/a.csv`. `landing` may follow wildcards
  (`s3://b/*/landing/*.csv`): the root is then taken from each file's own path.
* Otherwise `root` is the parent of the static prefix (never above the anchor) and `rel` the
  file's path below `root`: `/mnt/drop/*.csv`: `/mnt/drop/a.csv` goes to
  `/mnt/processed/2026-11-22/drop/a.csv`; `s3://b/in/*.csv`: `s3://b/processed/2026-11-22/in/a.csv`;
  `s3://b/*.csv`: `s3://b/processed/2026-11-22/a.csv`.

`rel` keeps the file's subfolders, so files of the same name in different folders never
collide. A file whose name is already taken there (the same name dropped again the same day)
gets another one (`renamed`: `a.csv` → `a.<token>.csv`); nothing in processed/ or rejected/ is
ever replaced. A path lies in a lifecycle folder when it is under `<root>processed/<yyyy-mm-dd>/` or
`<root>rejected/<yyyy-mm-dd>/`: a recursive pattern (`s3://b/**/*.csv`) whose root is inside
the watched tree never lists moved files again.
"""

from __future__ import annotations

import datetime
import functools
import re
from dataclasses import dataclass

LANDING = "landing"
FOLDERS = ("processed", "rejected")

IGNORED_PREFIXES = (".", "_")
IGNORED_SUFFIXES = (
    ".tmp",
    ".part",
    ".crdownload",
    ".filepart",
    ".copying",
    ".sha256",
    ".md5",
    ".reason.json",
)
SIDECAR_SUFFIXES = (".sha256", ".md5")
# compression suffixes kept together with the format's (`a.csv.gz` -> `a.<token>.csv.gz`)
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".snappy", ".deflate", ".zip")

_MAGIC = re.compile(r"[*?\[]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DAY = r"\d{4}-\d{2}-\d{2}/"

# one path segment not starting with "." (Python's glob skips hidden names for wildcards)
_ONE_SEGMENT = r"[^/.][^/]*"
_ANY_SEGMENTS = rf"(?:{_ONE_SEGMENT}/)*"


def has_magic(text: str) -> bool:
    """Whether `text` contains a glob wildcard (`*`, `?` or `[`)."""
    return _MAGIC.search(text) is not None


def is_ignored_name(name: str) -> bool:
    """Names a drop listing skips: hidden or underscore names (temp files, Spark/Hadoop markers
    such as `_SUCCESS`), partial downloads/uploads, checksum sidecars and rejection reasons."""
    return name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES)


def sidecars(path: str) -> list[str]:
    """The checksum files that may accompany `path` (and move with it)."""
    return [path + suffix for suffix in SIDECAR_SUFFIXES]


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching exactly the full paths the glob `pattern` matches (use `.match` or
    `.fullmatch`; it is anchored at both ends)."""
    return compiled(pattern).regex


def static_prefix(pattern: str) -> str:
    """The wildcard-free directory prefix of `pattern` (ends with `/`); the directory of the file
    for a pattern without wildcards."""
    return compiled(pattern).prefix


def destination(path: str, pattern: str, folder: str, day: datetime.date) -> str:
    """Where `path`, a file of `pattern`, goes when moved to `folder` ("processed" or
    "rejected") on `day` (see the module docstring)."""
    if folder not in FOLDERS:
        raise ValueError(f"folder must be one of {', '.join(FOLDERS)}, not {folder!r}")
    glob = compiled(pattern)
    match = glob.root.match(path)
    if match is None:
        raise ValueError(f"{path} is not a file of the watched path {pattern}")
    return f"{match['root']}{folder}/{day.strftime('%Y-%m-%d')}/{path[match.end() :]}"


def renamed(path: str, token: str) -> str:
    """`path` with `.<token>` before its extension, for a file whose name is taken in a
    processed/ or rejected/ folder: `x/a.csv` → `x/a.<token>.csv`, `a.csv.gz` →
    `a.<token>.csv.gz`, `README` → `README.<token>`."""
    head, slash, name = path.rpartition("/")
    stem, ext = _split_extension(name)
    return f"{head}{slash}{stem}.{token}{ext}"


def _split_extension(name: str) -> tuple[str, str]:
    """(stem, extension) of a file name; a compression suffix keeps the one before it."""
    dot = name.rfind(".")
    if dot <= 0:
        return name, ""
    if name[dot:].lower() in COMPRESSION_SUFFIXES:
        inner = name.rfind(".", 0, dot)
        if inner > 0:
            dot = inner
    return name[:dot], name[dot:]


def is_lifecycle_path(path: str, pattern: str) -> bool:
    """Whether `path` lies in the processed/ or rejected/ folder `destination` uses for
    `pattern`."""
    return compiled(pattern).lifecycle.match(path) is not None


@dataclass(frozen=True)
class Glob:
    """A parsed watched path. `levels` has one regex per path segment below the static prefix
    (the last one for file names), or is None when the pattern has `**` (any depth)."""

    pattern: str
    regex: re.Pattern[str]
    prefix: str
    levels: tuple[re.Pattern[str], ...] | None
    literals: frozenset[str]
    root: re.Pattern[str]
    lifecycle: re.Pattern[str]

    @property
    def is_literal(self) -> bool:
        """A pattern without wildcards: one file."""
        return not has_magic(self.pattern[len(self.prefix) :])

    def enters(self, dirname: str) -> bool:
        """Whether a listing looks into a directory of this name below the static prefix."""
        return not is_ignored_name(dirname) or dirname in self.literals

    def lists(self, path: str) -> bool:
        """Whether a drop listing of this pattern returns the file `path`."""
        if not self.regex.match(path):
            return False
        *dirs, name = path[len(self.prefix) :].split("/")
        if is_ignored_name(name) or not all(self.enters(d) for d in dirs):
            return False
        return self.lifecycle.match(path) is None


@functools.lru_cache(maxsize=256)
def compiled(pattern: str) -> Glob:
    """`pattern` parsed once (cached): raises ValueError for a relative path, a wildcard in
    the anchor or a pattern naming no file."""
    parts = pattern.split("/")
    anchor = _anchor_length(pattern)
    if len(parts) <= anchor or not parts[-1]:
        raise ValueError(
            f"watched path {pattern!r} names no file (add a file name or glob, such as '*.csv')"
        )
    if any(has_magic(p) for p in parts[:anchor]):
        raise ValueError(
            f"watched path {pattern!r}: wildcards are not supported in the bucket or host name"
        )
    first_magic = next((i for i, p in enumerate(parts) if has_magic(p)), len(parts) - 1)
    prefix = "/".join(parts[:first_magic]) + "/"
    below = parts[first_magic:]
    levels = (
        None if "**" in below else tuple(re.compile(_translate([p], final=True)) for p in below)
    )
    landing = [i for i in range(anchor, len(parts) - 1) if parts[i] == LANDING]
    if landing:
        root = _translate(parts[: landing[-1]], final=False)
        strip = re.escape(LANDING + "/")
    else:
        root = re.escape("/".join(parts[: max(first_magic - 1, anchor)]) + "/")
        strip = ""
    folders = "|".join(FOLDERS)
    return Glob(
        pattern=pattern,
        regex=re.compile(_translate(parts, final=True)),
        prefix=prefix,
        levels=levels,
        literals=frozenset(p for p in below if not has_magic(p)),
        root=re.compile(f"(?s)(?P<root>{root}){strip}"),
        lifecycle=re.compile(f"(?s)(?P<root>{root})(?:{folders})/{_DAY}"),
    )


def _anchor_length(pattern: str) -> int:
    """How many `/`-separated parts form the anchor: 3 for `scheme://host`, 1 for `/`."""
    if _SCHEME.match(pattern):
        return 3
    if pattern.startswith("/"):
        return 1
    raise ValueError(
        f"watched path {pattern!r} must be absolute: a local path starting "
        f"with '/' or a URI such as s3://bucket/landing/*.csv"
    )


def _translate(parts: list[str], final: bool) -> str:
    """Regex for the path segments `parts`; each is followed by `/` unless `final` (then the
    last one is the file name and the regex ends there)."""
    out: list[str] = []
    last = len(parts) - 1
    for i, part in enumerate(parts):
        is_last = final and i == last
        if part == "**":
            if is_last:
                out.append(f"{_ANY_SEGMENTS}(?:{_ONE_SEGMENT})?")
            elif i == last or parts[i + 1] != "**":
                out.append(_ANY_SEGMENTS)
            continue
        if has_magic(part) and not part.startswith("."):
            out.append(r"(?!\.)")
        out.append(_translate_segment(part))
        if not is_last:
            out.append("/")
    regex = "".join(out)
    return f"(?s:{regex})\\Z" if final else regex


def _translate_segment(segment: str) -> str:
    out: list[str] = []
    i, n = 0, len(segment)
    while i < n:
        char = segment[i]
        i += 1
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(segment, i)
            if end is None:
                out.append(re.escape(char))
            else:
                out.append(_translate_class(segment[i:end]))
                i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(segment: str, start: int) -> int | None:
    """Index of the `]` closing the class opened just before `start` (a `]` right after `[`
    or `[!` is a member), or None when unclosed."""
    j = start
    if j < len(segment) and segment[j] == "!":
        j += 1
    if j < len(segment) and segment[j] == "]":
        j += 1
    j = segment.find("]", j)
    return None if j < 0 else j


def _translate_class(body: str) -> str:
    negate = body.startswith("!")
    if negate:
        body = body[1:]
    members: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            low, high = body[k], body[k + 2]
            if low <= high:  # a reversed range matches nothing, as in fnmatch
                members.append(f"{_class_char(low)}-{_class_char(high)}")
            k += 3
        else:
            members.append(_class_char(body[k]))
            k += 1
    if not members:
        return "[^/]" if negate else "(?!)"
    return f"[^/{''.join(members)}]" if negate else f"[{''.join(members)}]"


def _class_char(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char
