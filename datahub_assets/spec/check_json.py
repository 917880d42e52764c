"""Check models as JSON: how a Python asset's checks travel in its asset metadata
(`datahub/checks`) to the Iceberg IO manager, which reads them back."""

from __future__ import annotations

from pydantic import TypeAdapter

from datahub_assets.spec.models import Check

_CHECKS: TypeAdapter[list[Check]] = TypeAdapter(list[Check])


def to_json(checks: list[Check] | tuple[Check, ...]) -> str:
    """The checks as JSON (the `datahub/checks` metadata the IO manager reads back)."""
    return _CHECKS.dump_json(list(checks), by_alias=True, exclude_none=True).decode()


def from_json(text: str) -> list[Check]:
    return _CHECKS.validate_json(text)
