"""Limits on what the loader reads (issue #19 finding 5): a small hostile file must not hang
or crash it. Each is far above what a real definition needs (the largest example pipeline
is 5 KB, nested 6 levels deep; a schemaRef of 10,000 columns is well under 1 MB), so only
generated or hostile files reach them; each refusal is a located SpecError that says which
limit and what to do.

Also refused whatever their size: YAML aliases of a list or mapping (`*name` where `&name`
anchors a collection: alias bombs, recursion, merge keys `<<: *base`), and XML DOCTYPEs
(DTDs, entity declarations and references). XML is parsed with entities unresolved, no
network and lxml's `huge_tree` off (its own caps: 10 MB per text node, 256 levels).
"""

from __future__ import annotations

MAX_DEFINITION_BYTES = 1 << 20
"""A pipeline, job pipeline or app.yaml file: at most 1 MiB (200 times the largest example;
PyYAML reads some 100 KB/s of dense YAML, so this also bounds the time one file takes)."""

MAX_SCHEMA_FILE_BYTES = 16 << 20
"""A schemaRef file (.avsc, .json): at most 16 MiB."""

MAX_NESTING = 64
"""YAML lists/mappings inside each other, XML elements inside each other, and JSON Schema
types inside each other (`$ref` chains included): at most 64 levels."""

MAX_SCHEMA_TYPES = 200_000
"""Types of one schemaRef file once every `$ref` (JSON Schema) and named-type reference
(Avro) is expanded where it is used: at most 200,000 (columns, struct fields, array and map
elements together)."""


def size_problem(
    size: int,
    limit: int = MAX_DEFINITION_BYTES,
    what: str = "definition files",
    todo: str = "split it into smaller files",
) -> str | None:
    """Why a file of `size` bytes is refused (None: it is not)."""
    if size <= limit:
        return None
    return (
        f"the file is {size:,} bytes; {what} may be at most {limit:,} bytes "
        f"({limit >> 20} MiB): {todo}"
    )
