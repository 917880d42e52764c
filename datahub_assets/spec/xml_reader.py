"""Read an XML data pipeline (contract section 4): XSD first, then the typed model.

Readers take text, not paths, so callers (the loader, tests) decide where text comes from.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from lxml import etree  # pyright: ignore[reportAttributeAccessIssue]  # compiled, no stubs
from pydantic import ValidationError

from datahub_assets.spec.errors import LocMap, SpecError, SpecErrors, Where, from_validation_error
from datahub_assets.spec.limits import MAX_NESTING, size_problem
from datahub_assets.spec.models import Pipeline

XSD_PATH = Path(__file__).with_name("pipeline.xsd")
_XS = "{http://www.w3.org/2001/XMLSchema}"
TARGET_ALIASES = {"hive": "table", "iceberg": "table"}
_TYPE_HELP = {
    "boolean": "true or false",
    "integer": "a whole number",
    "decimal": "a number",
    "positiveInteger": "a whole number of at least 1",
    "nonNegativeInteger": "a whole number of at least 0",
}

Decls = dict[tuple[str | None, str], tuple[tuple[str, ...], tuple[str, ...]]]


@functools.cache
def xml_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


@functools.cache
def xsd_declarations(xsd: Path = XSD_PATH) -> Decls:
    """(parent element, element) -> (attribute names, child element names), read from the XSD
    (`pipeline.xsd` unless another is given: `job.xsd` for job pipelines)."""
    root = etree.parse(str(xsd)).getroot()
    types = {ct.get("name"): ct for ct in root.findall(f"{_XS}complexType")}
    groups = {g.get("name"): g for g in root.findall(f"{_XS}attributeGroup")}
    out: Decls = {}

    def attrs(ct: Any) -> tuple[str, ...]:
        names: list[str] = []
        for holder in [ct, *ct.findall(f"{_XS}simpleContent/{_XS}extension")]:
            for node in holder:
                if node.tag == f"{_XS}attribute":
                    names.append(node.get("name"))
                elif node.tag == f"{_XS}attributeGroup":
                    names += [a.get("name") for a in groups[node.get("ref")]]
        return tuple(names)

    def walk(parent: str | None, element: Any) -> None:
        name = element.get("name")
        ct = element.find(f"{_XS}complexType")
        ct = ct if ct is not None else types.get(element.get("type"))
        if ct is None:
            out[(parent, name)] = ((), ())
            return
        kids = [
            e
            for g in ("all", "choice", "sequence")
            for e in ct.iter(f"{_XS}{g}")
            for e in e.findall(f"{_XS}element")
        ]
        # only this type's own content model, not nested inline elements' models
        kids = [e for e in kids if _owner(e) is ct]
        out[(parent, name)] = (attrs(ct), tuple(e.get("name") for e in kids))
        for kid in kids:
            walk(name, kid)

    walk(None, root.find(f"{_XS}element"))
    return out


def _owner(element: Any) -> Any:
    node = element.getparent()
    while node.tag != f"{_XS}complexType":
        node = node.getparent()
    return node


def _column(lines: list[str], line: int, needle: str) -> int:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    found = text.find(needle)
    return found + 1 if found >= 0 else 1


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


_ERR = re.compile(r"^Element '([^']+)'(?:, attribute '([^']+)')?: (.*)$", re.S)


def _tag_of(node: Any) -> str | None:
    return _local(node.tag) if node is not None else None


def _short(value: str, keep: int = 200) -> str:
    """`value` for an error message: a huge one cut, with its length."""
    return value if len(value) <= keep else f"{value[:keep]}... ({len(value):,} characters)"


def _rewrite(el: str, attr: str | None, body: str, node: Any, xsd: Path = XSD_PATH) -> str | None:
    parent = _tag_of(node.getparent()) if node is not None else None
    decls = xsd_declarations(xsd)
    attrs = decls.get((parent, el), ((), ()))[0]
    what = f'{attr}="{{v}}"' if attr else f'<{el}> text "{{v}}"'
    on = f" on <{el}>" if attr else ""
    if "is not a valid value of the local atomic type" in body:
        return None  # always follows a facet error that says more
    if m := re.search(
        r"\[facet 'enumeration'\] The value '(.*)' is not an element of the set"
        r" \{(.*)\}",
        body,
        re.S,
    ):
        allowed = ", ".join(re.findall(r"'([^']*)'", m.group(2)))
        return f"{what.format(v=_short(m.group(1)))} is not allowed{on}; allowed: {allowed}"
    if m := re.search(r"\[facet 'pattern'\] The value '(.*)' is not accepted", body, re.S):
        return (
            f"{what.format(v=_short(m.group(1)))}{on} is not a valid name; allowed: letters, "
            "digits and _, not starting with a digit"
        )
    if "[facet 'minLength']" in body:
        return f"{attr}{on} must not be empty" if attr else f"<{el}> must not be empty"
    if m := re.search(r"'(.*)' is not a valid value of the atomic type 'xs:(\w+)'", body, re.S):
        help_ = _TYPE_HELP.get(m.group(2), m.group(2))
        return f"{what.format(v=_short(m.group(1)))}{on} is not valid; allowed: {help_}"
    if m := re.search(r"The attribute '(.*)' is not allowed", body):
        return f'unknown attribute "{m.group(1)}" on <{el}>; allowed: {", ".join(attrs)}'
    if m := re.search(r"The attribute '(.*)' is required but missing", body):
        return f'<{el}> is missing required attribute "{m.group(1)}"'
    if "This element is not expected" in body:
        grand = _tag_of(node.getparent().getparent()) if parent and node is not None else None
        siblings = decls.get((grand, parent), ((), ()))[1] if parent else ()
        if el in siblings:
            return f"<{el}> may appear only once in <{parent}>"
        return f"unknown element <{el}> in <{parent}>; allowed: {', '.join(siblings) or 'none'}"
    if "Missing child element" in body:
        wanted = re.findall(r"\( (.*) \)", body)
        return f"<{el}> is missing a required element: {wanted[0] if wanted else body}"
    if "No matching global declaration" in body:
        roots = sorted(name for parent, name in decls if parent is None)
        return f"the root element must be <{', '.join(roots)}>, found <{el}>"
    if "Character content" in body:
        return f"<{el}> must not contain text"
    return f"<{el}>: {_short(body.strip(), 500)}"


def _xsd_errors(
    root: Any, schema: etree.XMLSchema, file: str, lines: list[str], xsd: Path = XSD_PATH
) -> list[SpecError]:
    by_line: dict[tuple[int, str], Any] = {}
    for node in root.iter():
        if isinstance(node.tag, str):
            by_line.setdefault((node.sourceline, _local(node.tag)), node)
    out = []
    for entry in schema.error_log:
        m = _ERR.match(entry.message)
        if not m:
            message = _short(entry.message, 500)
            out.append(SpecError(file, entry.line or 1, entry.column or 1, message))
            continue
        el, attr, body = m.group(1), m.group(2), m.group(3)
        message = _rewrite(el, attr, body, by_line.get((entry.line, el)), xsd)
        if message is None:
            continue
        col = _column(lines, entry.line, f"{attr}=" if attr else f"<{el}")
        out.append(SpecError(file, entry.line, col, message))
    return out


class _Converter:
    """Element tree -> plain dicts (alias keys, `kind` = element name) plus a LocMap."""

    def __init__(self, file: str, lines: list[str]) -> None:
        self.file, self.lines = file, lines
        self.locs: LocMap = {}

    def node(self, el: Any, path: tuple[str | int, ...], kind: str | None = None) -> dict:
        tag = _local(el.tag)
        line = el.sourceline or 0
        col = _column(self.lines, line, f"<{tag}")
        self.locs[path] = Where(line, col, tag)
        data: dict[str, Any] = {"loc": {"file": self.file, "line": line, "column": col}}
        if kind:
            data["kind"] = kind
        data.update(el.attrib)
        return data

    def pipeline(self, root: Any) -> dict:
        data = self.node(root, ())
        for section in _children(root):
            name = _local(section.tag)
            if name == "metadata":
                data["metadata"] = self.metadata(section)
            else:
                convert = getattr(self, name.rstrip("s") if name != "checks" else "check")
                data[name] = [convert(el, (name, i)) for i, el in enumerate(_children(section))]
        return data

    def metadata(self, el: Any) -> dict:
        data = self.node(el, ("metadata",))
        for child in _children(el):
            name = _local(child.tag)
            if name == "tags":
                data["tags"] = {t.get("key"): t.get("value") for t in _children(child)}
            else:
                data[name] = _text(child)
        return data

    def source(self, el: Any, path: tuple[str | int, ...]) -> dict:
        data = self.node(el, path, _local(el.tag))
        for child in _children(el):
            name = _local(child.tag)
            if name in ("incremental", "watch"):
                data[name] = self.node(child, (*path, name))
            elif name == "table":
                data["tableName"] = child.get("name")
            else:  # schemaRef, sql, filter, projection
                data[name] = _text(child)
        return data

    def transformation(self, el: Any, path: tuple[str | int, ...]) -> dict:
        data = self.node(el, path, _local(el.tag))
        if data["kind"] == "sql":
            data["query"] = _text(el)
        return data

    def target(self, el: Any, path: tuple[str | int, ...]) -> dict:
        tag = _local(el.tag)
        data = self.node(el, path, TARGET_ALIASES.get(tag, tag))
        if data["kind"] == "table" and "name" in data and "table" not in data:
            data["table"] = data.pop("name")
        for child in _children(el):
            if _local(child.tag) == "columns":  # table target: column descriptions
                data["columns"] = [
                    self.node(c, (*path, "columns", i)) for i, c in enumerate(_children(child))
                ]
            else:  # database target: <table name=.../>
                data["tableName"] = child.get("name")
        return data

    def check(self, el: Any, path: tuple[str | int, ...]) -> dict:
        return self.node(el, path, _local(el.tag))


def _children(el: Any) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str)]


def _text(el: Any) -> str:
    return (el.text or "").strip()


# the XML prolog up to a DOCTYPE: declaration, then white space, comments and processing
# instructions (each alternative starts differently and stops at its first end: linear)
_DOCTYPE = re.compile(
    r"\A\ufeff?(?:<\?xml(?:(?!\?>).)*\?>)?(?:\s|<!--(?:(?!-->).)*-->|<\?(?:(?!\?>).)*\?>)*"
    r"<!DOCTYPE",
    re.S,
)
_NO_DTD = (
    "<!DOCTYPE is not allowed in a definition (no DTDs, entity declarations or entity "
    "references): remove it and write the values out"
)


def _doctype_error(text: str, file: str) -> SpecError | None:
    """A DOCTYPE in the prolog, refused before parsing (finding 5: entities stay unread)."""
    m = _DOCTYPE.match(text)
    if m is None:
        return None
    at = m.end() - len("<!DOCTYPE")
    line = text.count("\n", 0, at) + 1
    return SpecError(file, line, at - (text.rfind("\n", 0, at) + 1) + 1, _NO_DTD)


def _too_deep(what: str) -> str:
    return (
        f"{what} is nested deeper than {MAX_NESTING} levels (elements inside each other); "
        "a definition needs a handful: flatten it"
    )


def _structure_errors(root: Any, file: str) -> list[SpecError]:
    """What the parser let through but a definition never has: a DTD or entity nodes (not
    resolved: kept as nodes), or elements nested deeper than MAX_NESTING."""
    if root.getroottree().docinfo.doctype:
        return [SpecError(file, 1, 1, _NO_DTD)]
    for node in root.iter(etree.Entity):
        line = node.sourceline or 1
        return [SpecError(file, line, 1, f"entity reference {node.text}: {_NO_DTD}")]
    depth = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_NESTING:
            return [SpecError(file, el.sourceline or 1, 1, _too_deep(f"<{_local(el.tag)}>"))]
    return []


def parse_checked(
    text: str, file: str, schema: etree.XMLSchema, xsd: Path = XSD_PATH
) -> tuple[Any, list[str]]:
    """(root element, lines) of a well-formed document valid against `schema` (from `xsd`);
    SpecErrors with file:line:col otherwise. Pipelines and job pipelines share it.

    Limits (spec/limits.py): the file's size, no DOCTYPE, entities never resolved, no
    network, lxml's caps on text size and depth (`huge_tree` off), MAX_NESTING levels."""
    data = text.encode("utf-8", "surrogatepass")
    refused = size_problem(len(data))
    if refused:
        raise SpecErrors([SpecError(file, 1, 1, refused)])
    doctype = _doctype_error(text, file)
    if doctype:
        raise SpecErrors([doctype])
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (0, 0)
        if "Excessive depth" in exc.msg:  # libxml2's own cap (256), hint for lxml users
            raise SpecErrors([SpecError(file, line, col, _too_deep("an element"))]) from None
        raise SpecErrors([SpecError(file, line, col, f"not well-formed XML: {exc.msg}")]) from None
    structure = _structure_errors(root, file)
    if structure:
        raise SpecErrors(structure)
    lines = text.splitlines()
    if not schema.validate(root):
        raise SpecErrors(_xsd_errors(root, schema, file, lines, xsd))
    return root, lines


def read_pipeline_xml(text: str, file: str) -> Pipeline:
    """Parse and validate one XML pipeline; raises SpecErrors with every problem found."""
    root, lines = parse_checked(text, file, xml_schema())
    converter = _Converter(file, lines)
    data = converter.pipeline(root)
    try:
        return Pipeline.model_validate(data)
    except ValidationError as exc:
        errors = from_validation_error(exc, data, converter.locs, file, "xml")
        raise SpecErrors(errors) from None
