"""The base of every definition element: `Node` (frozen, unknown attributes rejected, camelCase
aliases), the source location `Loc` it carries, and the comma-separated list type `CommaList`.

Both model modules build on it: `spec/models.py` (pipelines, app.yaml, the project) and
`spec/job_models.py` (job pipelines, notifications), which `models` imports; this module imports
neither. It imports neither dagster nor pyspark.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel


def _split_commas(value: Any) -> Any:
    """`"a, b,c"` -> ("a", "b", "c"); lists from YAML pass through."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value)
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_split_commas)]


class Loc(BaseModel):
    """Where an element starts in its definition file."""

    model_config = ConfigDict(frozen=True)
    file: str = Field(description="Definition file, relative to the pipelines dir.")
    line: int = Field(default=0, description="Line where the element starts (1-based).")
    column: int = Field(default=0, description="Column where the element starts (1-based).")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Node(BaseModel):
    """Base of every element: frozen, unknown attributes rejected, camelCase aliases."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
    )
    loc: Loc | None = Field(default=None, exclude=True, description="Source location.")
