"""Validate benchmark XML against the typed model without the platform's reader.

A minimal XML -> dict mapping (attributes as camelCase fields, child elements by tag) fed to
`datahub_assets.spec.models.Pipeline`. It catches typos in the bench apps early; the
platform's own reader (XSD, line numbers) is the authority.

    .venv/bin/python -m bench.spec_check DIR...
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from datahub_assets.spec.models import Pipeline

TARGET_ALIASES = {"hive": "table", "iceberg": "table"}


def _element(el: ET.Element, kind: str | None = None) -> dict:
    data: dict = dict(el.attrib)
    if kind:
        data["kind"] = kind
    for child in el:
        if child.tag in ("watch", "incremental"):
            data[child.tag] = dict(child.attrib)
        elif child.tag == "sql":
            data["sql"] = (child.text or "").strip()
        elif child.tag == "table":
            data["tableName"] = child.get("name")
    if el.tag == "sql" and kind == "sql":
        data["query"] = (el.text or "").strip()
    if kind == "table" and "name" in data and "table" not in data and el.tag != "table":
        data["table"] = data.pop("name")
    return data


def to_dict(root: ET.Element) -> dict:
    out: dict = dict(root.attrib)
    meta = root.find("metadata")
    if meta is not None:
        md: dict = {}
        for child in meta:
            if child.tag == "tags":
                md["tags"] = {t.get("key"): t.get("value") for t in child}
            else:
                md[child.tag] = (child.text or "").strip()
        out["metadata"] = md
    out["sources"] = [_element(s, s.tag) for s in root.findall("sources/*")]
    out["transformations"] = [_element(s, s.tag) for s in root.findall("transformations/*")]
    out["targets"] = [
        _element(t, TARGET_ALIASES.get(t.tag, t.tag)) for t in root.findall("targets/*")
    ]
    out["checks"] = [_element(c, c.tag) for c in root.findall("checks/*")]
    return out


def validate(paths: list[Path]) -> list[str]:
    errors = []
    for path in paths:
        try:
            Pipeline.model_validate(to_dict(ET.parse(path).getroot()))
        except Exception as exc:  # noqa: BLE001 - report every file
            errors.append(f"{path}: {exc}")
    return errors


def main() -> None:
    files = [f for d in sys.argv[1:] for f in sorted(Path(d).rglob("*.xml"))]
    errors = validate(files)
    for e in errors:
        print(e)
    print(f"{len(files)} files, {len(errors)} invalid")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
