"""Issue #19 finding 5: small hostile definition files neither hang nor crash the loader.

Each shape is read under a deadline (`bounded`: a timer that interrupts a hang; the
exception it raises is a BaseException, so no catch-all in the loader can swallow it) and
must end in located SpecErrors (file, line, what to do):

- YAML aliases of lists/mappings (alias bombs: 10x per level; `&r [*r]` recursion; merge
  keys), deep nesting, oversized files; YAML dates and other non-JSON values in a Mongo
  `filter` (they used to raise TypeError/ValueError);
- XML DOCTYPEs (internal entities, external entities: still no XXE, billion laughs),
  deep element nesting, huge attribute values (the message quotes a shortened value),
  oversized files;
- JSON Schema `$ref` fan-out and Avro named-type fan-out in schemaRef files;
- `load_project`, `datahub validate` and `build_definitions`: one such file is that file's
  located error among the other files' errors, never the whole project's crash; an
  unexpected exception while reading one file is turned into that file's located error.

The builders of the shapes are shared with the fuzz test (tests/unit/test_validate_fuzz.py).
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from spec_helpers import find_error, write

from datahub_assets import cli
from datahub_assets.orchestration.project import build_definitions  # Dagster imported at collection
from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.jobs import read_job_text
from datahub_assets.spec.loader import load_project, read_pipeline_text
from datahub_assets.spec.schema_files import SchemaFileError, parse_schema_text
from datahub_assets.spec.yaml_reader import read_app_yaml

DEADLINE = 10.0  # seconds; every shape is read in milliseconds once bounded


class Hung(BaseException):
    """Raised by `bounded` when a read takes longer than its deadline (a BaseException:
    the loader's per-file guard catches Exception and must not hide a hang)."""


@contextlib.contextmanager
def bounded(seconds: float = DEADLINE) -> Iterator[None]:
    """Interrupt the block after `seconds` (SIGALRM: pytest runs tests in the main thread)."""

    def expire(_signum, _frame):
        raise Hung(f"still running after {seconds:.0f} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def errors_of(read: Callable[[str, str], object], text: str, file: str) -> list[SpecError]:
    """The located errors `read(text, file)` raises, within the deadline."""
    with bounded(), pytest.raises(SpecErrors) as info:
        read(text, file)
    return info.value.errors


# --------------------------------------------------------------------- shape builders

HEAD = "pipeline: {id: p, version: 1, layer: raw}"
SOURCES = "sources:\n  - parquet: {id: a, path: in/a}\ntargets:\n  - table: {table: t}\n"


def alias_bomb(levels: int = 9, width: int = 10, indent: str = "    ") -> list[str]:
    """Lines `x0: &a0 [...]`, `x<i>: &a<i> [*a<i-1>, ...]`: `width ** levels` scalars once
    expanded, a few hundred bytes as written. The first alias is on the second line."""
    lines = [f"{indent}x0: &a0 [" + ",".join(["v"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{indent}x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return lines


def yaml_pipeline_with_bomb(levels: int = 9, width: int = 10) -> str:
    """A YAML pipeline whose metadata tags hold an alias bomb (tags are read as values)."""
    lines = [HEAD, "metadata:", "  tags:", *alias_bomb(levels, width)]
    return "\n".join(lines) + "\n" + SOURCES


def app_yaml_with_bomb(levels: int = 9, width: int = 10) -> str:
    return "\n".join(["owner: team", "tags:", *alias_bomb(levels, width, "  ")]) + "\n"


def job_yaml_with_bomb(levels: int = 9, width: int = 10) -> str:
    lines = ["jobPipeline: {id: j, version: 1}", "parameters:", "  - name: x"]
    lines += ["    default:", *alias_bomb(levels, width, "      ")]
    return "\n".join(lines) + "\n"


def nested_yaml(depth: int) -> str:
    """A pipeline whose metadata description is a list nested `depth` deep."""
    return f"{HEAD}\nmetadata:\n  description: {'[' * depth}{']' * depth}\n{SOURCES}"


def xml_pipeline(body: str = "", prolog: str = "", attrs: str = "") -> str:
    """An XML pipeline; `body` goes into <metadata><description>, `prolog` before the root."""
    return (
        f'<?xml version="1.0"?>\n{prolog}'
        f'<pipeline id="p" version="1" layer="raw"{attrs}>\n'
        f"  <metadata><description>{body}</description></metadata>\n"
        '  <sources><parquet id="a" path="in/a"/></sources>\n'
        '  <targets><table table="t"/></targets>\n'
        "</pipeline>\n"
    )


DOCTYPES = {
    "internal entity": ('<!DOCTYPE pipeline [<!ENTITY e "x">]>\n', "&e;"),
    "external entity": ('<!DOCTYPE pipeline [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n', "&e;"),
    "billion laughs": (
        '<!DOCTYPE pipeline [<!ENTITY a0 "aaaaaaaaaa">'
        + "".join(f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10))
        + "]>\n",
        "&a9;",
    ),
    "external DTD": ('<!DOCTYPE pipeline SYSTEM "http://127.0.0.1:9/p.dtd">\n', ""),
    "entity in attribute": ('<!DOCTYPE pipeline [<!ENTITY e "raw">]>\n', ""),
}


def nested_xml(depth: int) -> str:
    return xml_pipeline(body="<b>" * depth + "</b>" * depth)


def ref_fanout(depth: int = 12, width: int = 10) -> str:
    """A JSON Schema of a few KB whose `$ref`s expand to `width ** depth` types."""
    defs: dict = {"d0": {"type": "string"}}
    for i in range(1, depth):
        props = {f"p{j}": {"$ref": f"#/definitions/d{i - 1}"} for j in range(width)}
        defs[f"d{i}"] = {"type": "object", "properties": props}
    top = {"x": {"$ref": f"#/definitions/d{depth - 1}"}}
    return json.dumps({"type": "object", "definitions": defs, "properties": top})


def avro_fanout(depth: int = 12, width: int = 10) -> str:
    """An Avro record whose named types are used `width` times at each of `depth` levels."""
    inner: object = {"type": "record", "name": "T0", "fields": [{"name": "s", "type": "string"}]}
    for i in range(1, depth):
        fields = [{"name": f"f{j}", "type": inner if j == 0 else f"T{i - 1}"} for j in range(width)]
        inner = {"type": "record", "name": f"T{i}", "fields": fields}
    return json.dumps({"type": "record", "name": "Top", "fields": [{"name": "x", "type": inner}]})


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# ------------------------------------------------------------------------------ YAML


@pytest.mark.parametrize(
    ("read", "file", "text"),
    [
        (read_pipeline_text, "a/raw/p.yaml", yaml_pipeline_with_bomb()),
        (read_app_yaml, "a/app.yaml", app_yaml_with_bomb()),
        (read_job_text, "a/jobs/j.yaml", job_yaml_with_bomb()),
    ],
    ids=["pipeline", "app.yaml", "job"],
)
def test_yaml_alias_bomb_is_refused_at_the_alias(read, file, text):
    # before: the 600-byte pipeline ran for a minute and ended in MemoryError (2 GiB cap)
    assert len(text) < 700
    started = time.perf_counter()
    errors = errors_of(read, text, file)
    assert time.perf_counter() - started < 2
    find_error(errors, file, line_of(text, "*a0"), "alias *a0", "list or mapping", "write")


@pytest.mark.parametrize(
    ("text", "alias"),
    [
        (f"{HEAD}\nsources: &r [*r]\n", "*r"),
        ("pipeline: &r {id: p, version: 1, layer: raw, x: *r}\n", "*r"),
        (f"{HEAD}\nmetadata:\n  tags: &t\n    a: b\n    c: [*t]\n{SOURCES}", "*t"),
    ],
    ids=["sequence", "mapping", "nested"],
)
def test_yaml_recursive_alias_is_refused_at_the_alias(text, alias):
    # before: RecursionError (mapping), or a wrong "each entry must be a map" (sequence)
    errors = errors_of(read_pipeline_text, text, "a/raw/p.yaml")
    find_error(errors, "a/raw/p.yaml", line_of(text, f"{alias}"), f"alias {alias}")


def test_yaml_merge_key_is_refused_with_what_to_do():
    text = (
        f"{HEAD}\nsources:\n  - parquet: &base {{id: a, path: in/a}}\n"
        "  - parquet:\n      <<: *base\n      id: b\ntargets:\n  - table: {table: t}\n"
    )
    errors = errors_of(read_pipeline_text, text, "a/raw/p.yaml")
    find_error(errors, "a/raw/p.yaml", 5, "alias *base", "write the list or mapping out")


def test_yaml_alias_of_a_single_value_still_works():
    text = f"{HEAD}\nmetadata:\n  owner: &team sales\n  tags: {{team: *team}}\n{SOURCES}"
    pipeline = read_pipeline_text(text, "a/raw/p.yaml")
    assert pipeline.metadata.owner == "sales"
    assert pipeline.metadata.tags == {"team": "sales"}


@pytest.mark.parametrize("depth", [200, 5000])
def test_yaml_deep_nesting_is_refused_with_its_line(depth):
    # before: RecursionError (5000 levels)
    text = nested_yaml(depth)
    errors = errors_of(read_pipeline_text, text, "a/raw/p.yaml")
    find_error(errors, "a/raw/p.yaml", 3, "nested deeper than")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{a: 2020-01-01}", "2020-01-01"),  # before: TypeError (date is not JSON)
        ("{a: 2020-13-01}", "month must be in 1..12"),  # before: ValueError
        ("{a: !!binary aGVsbG8=}", "bytes"),  # before: TypeError
        ("{? [a]: 1}", "unhashable key"),  # before: ConstructorError
        ("{a: !!int x}", "invalid literal"),  # before: ValueError
    ],
)
def test_yaml_mongo_filter_that_is_not_json_is_located(value, fragment):
    text = (
        f"{HEAD}\nsources:\n  - mongo: {{id: m, uriSecretRef: X, database: d, collection: c,\n"
        f"      filter: {value}}}\ntargets:\n  - table: {{table: t}}\n"
    )
    errors = errors_of(read_pipeline_text, text, "a/raw/p.yaml")
    find_error(errors, "a/raw/p.yaml", 4, "filter", fragment, "quote")


# ------------------------------------------------------------------------------- XML


@pytest.mark.parametrize("shape", list(DOCTYPES))
def test_xml_doctype_is_refused_at_its_line(shape):
    # before: internal/external entity -> lxml XMLSchemaValidateError "Internal error in XML
    # Schema validation"; billion laughs -> "amplification factor exceeded"; external DTD
    # and an entity used in an attribute were accepted
    prolog, body = DOCTYPES[shape]
    attrs = ' owner="&e;"' if shape == "entity in attribute" else ""
    text = xml_pipeline(body, prolog, attrs)
    errors = errors_of(read_pipeline_text, text, "a/raw/p.xml")
    err = find_error(errors, "a/raw/p.xml", 2, "<!DOCTYPE", "not allowed", "remove")
    assert "root:" not in str(errors)  # no XXE: /etc/passwd is never read
    assert len(errors) == 1, errors
    assert err.column == 1


def test_xml_doctype_is_refused_in_job_pipelines():
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE jobPipeline [<!ENTITY e "x">]>\n'
        '<jobPipeline id="j"><description>&e;</description>'
        '<pipelines><pipelineRef id="a"/></pipelines></jobPipeline>\n'
    )
    errors = errors_of(read_job_text, text, "a/jobs/j.xml")
    find_error(errors, "a/jobs/j.xml", 2, "<!DOCTYPE", "not allowed")


@pytest.mark.parametrize("depth", [100, 3000])
def test_xml_deep_nesting_is_refused_with_its_line(depth):
    errors = errors_of(read_pipeline_text, nested_xml(depth), "a/raw/p.xml")
    assert all(e.file == "a/raw/p.xml" and e.line == 3 for e in errors), errors
    assert any("nested deeper than" in e.message for e in errors), errors


@pytest.mark.parametrize("attr", ["id", "layer", "owner"])
def test_xml_huge_attribute_value_is_located_and_quoted_short(attr):
    # before: the message quoted the whole 800 KB value
    attrs = {"id": "p", "version": "1", "layer": "raw", attr: "é" * 400_000}
    head = " ".join(f'{k}="{v}"' for k, v in attrs.items())
    text = f'<pipeline {head}>\n<sources><parquet id="a" path="in/a"/></sources>\n</pipeline>\n'
    started = time.perf_counter()
    errors = errors_of(read_pipeline_text, text, "a/raw/p.xml")
    assert time.perf_counter() - started < 5
    assert all(e.line == 1 for e in errors if attr in e.message), errors
    assert max(len(e.message) for e in errors) < 1000, [len(e.message) for e in errors]


@pytest.mark.parametrize(
    ("read", "file", "text"),
    [
        (read_pipeline_text, "a/raw/p.xml", xml_pipeline("x" * (2 << 20))),
        (read_pipeline_text, "a/raw/p.yaml", f"{HEAD}\n# {'x' * (2 << 20)}\n{SOURCES}"),
        (read_app_yaml, "a/app.yaml", f"owner: {'x' * (2 << 20)}\n"),
    ],
    ids=["xml", "yaml", "app.yaml"],
)
def test_oversized_definition_is_refused(read, file, text):
    from datahub_assets.spec.limits import MAX_DEFINITION_BYTES

    assert len(text.encode()) > MAX_DEFINITION_BYTES
    find_error(errors_of(read, text, file), file, 1, "bytes", "at most", "split")


# ------------------------------------------------------------------------ schema files


@pytest.mark.parametrize(
    ("name", "text"),
    [("s.json", ref_fanout()), ("s.avsc", avro_fanout())],
    ids=["json $ref", "avro named types"],
)
def test_schema_fanout_is_refused(name, text):
    # before: the JSON Schema ran 40 s into SystemError (2 GiB cap); the Avro one was
    # accepted (shared types) and expanded at run time, where Spark types are built
    assert len(text) < 12_000
    with bounded(), pytest.raises(SchemaFileError) as info:
        parse_schema_text(text, name)
    assert name in str(info.value)
    assert "expands to more than" in str(info.value)


RECURSIVE_JSON = {
    "type": "object",
    "definitions": {"n": {"type": "object", "properties": {"next": {"$ref": "#/definitions/n"}}}},
    "properties": {"head": {"$ref": "#/definitions/n"}},
}


def deep_avro(depth: int) -> str:
    """Avro records nested `depth` deep (as text: json.dumps itself recurses)."""
    text = '{"type": "record", "name": "L0", "fields": [{"name": "s", "type": "string"}]}'
    for i in range(1, depth):
        text = f'{{"type": "record", "name": "L{i}", "fields": [{{"name": "x", "type": {text}}}]}}'
    return text


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("r.json", json.dumps(RECURSIVE_JSON)),
        ("d.avsc", deep_avro(100)),
        ("d.avsc", deep_avro(5000)),
    ],
    ids=["recursive $ref", "avro 100 levels", "avro 5000 levels"],
)
def test_schema_nesting_is_bounded(name, text):
    with bounded(), pytest.raises(SchemaFileError) as info:
        parse_schema_text(text, name)
    assert "nested" in str(info.value), info.value


def test_schema_with_shared_definitions_within_the_limit_still_loads():
    columns = parse_schema_text(ref_fanout(depth=3, width=10), "s.json")
    (x,) = columns
    assert [len(x.type.fields), len(x.type.fields[0].type.fields)] == [10, 10]


def test_oversized_schema_file_is_refused_through_the_pipeline(tmp_path):
    from datahub_assets.spec.limits import MAX_SCHEMA_FILE_BYTES

    text = xml_pipeline().replace('path="in/a"/>', 'path="in/a" schemaRef="schemas/s.json"/>')
    root = write(tmp_path / "p", {"a/raw/p.xml": text})
    (root / "a/schemas").mkdir()
    big = '{"type": "object", "properties": {}, "x": "' + "x" * MAX_SCHEMA_FILE_BYTES + '"}'
    (root / "a/schemas/s.json").write_text(big)
    with bounded(), pytest.raises(SpecErrors) as info:
        load_project(root, default_engine="spark")
    find_error(info.value.errors, "a/raw/p.xml", 4, 'schemaRef="schemas/s.json"', "at most")


# ---------------------------------------------------- the project: one file, its errors

GOOD_XML = xml_pipeline().replace('<table table="t"/>', '<table table="good"/>')
BAD_RULE = xml_pipeline().replace('layer="raw"', 'layer="nope"')


def hostile_project(root: Path) -> Path:
    """App `bad`: one hostile file of each kind; app `good`: a valid pipeline and one with
    an ordinary error; app `schemas`: a schemaRef with `$ref` fan-out."""
    fanout = xml_pipeline().replace('path="in/a"/>', 'path="in/a" schemaRef="schemas/s.json"/>')
    write(
        root,
        {
            "bad/app.yaml": app_yaml_with_bomb(),
            "bad/raw/bomb.yaml": yaml_pipeline_with_bomb(),
            "bad/raw/deep.yaml": nested_yaml(5000),
            "bad/raw/recursive.yaml": "pipeline: &r {id: p, version: 1, layer: raw, x: *r}\n",
            "bad/raw/entity.xml": xml_pipeline(*reversed(DOCTYPES["internal entity"])),
            "bad/jobs/j.yaml": job_yaml_with_bomb(),
            "good/raw/ok.xml": GOOD_XML,
            "good/raw/wrong.xml": BAD_RULE,
            "schemas/raw/p.xml": fanout,
            "schemas/schemas/s.json": ref_fanout(),
        },
    )
    with (root / "bad/raw/huge.xml").open("wb") as handle:  # sparse: 64 MiB, nothing written
        handle.truncate(64 << 20)
    return root


EXPECTED = [  # (file, line, fragment): every hostile file's own error, and the ordinary one
    ("bad/app.yaml", 4, "alias *a0"),
    ("bad/raw/bomb.yaml", 5, "alias *a0"),
    ("bad/raw/deep.yaml", 3, "nested deeper than"),
    ("bad/raw/recursive.yaml", 1, "alias *r"),
    ("bad/raw/entity.xml", 2, "<!DOCTYPE"),
    ("bad/raw/huge.xml", 1, "67,108,864 bytes"),
    ("bad/jobs/j.yaml", 6, "alias *a0"),
    ("good/raw/wrong.xml", 2, 'layer="nope"'),
    ("schemas/raw/p.xml", 4, "more than"),
]


def test_load_project_reports_each_hostile_file_with_the_others(tmp_path):
    # before: the first hostile file aborted the load (MemoryError, RecursionError,
    # XMLSchemaValidateError) and no other file's error was reported
    root = hostile_project(tmp_path / "p")
    with bounded(30), pytest.raises(SpecErrors) as info:
        load_project(root, default_engine="spark")
    for file, line, fragment in EXPECTED:
        find_error(info.value.errors, file, line, fragment)
    assert not [e for e in info.value.errors if e.file == "good/raw/ok.xml"]


def test_datahub_validate_lists_every_file_error(tmp_path, monkeypatch, capsys):
    root = hostile_project(tmp_path / "p")
    monkeypatch.setenv("DATAHUB_PIPELINES_DIR", str(root))
    monkeypatch.setenv("DATAHUB_HOME", str(tmp_path / "home"))
    with bounded(30):
        assert cli.main(["validate"]) == 1
    err = capsys.readouterr().err
    for file, line, fragment in EXPECTED:
        assert any(
            row.strip().startswith(f"{file}:{line}:") and fragment in row
            for row in err.splitlines()
        ), (file, line, fragment, err)
    assert "Traceback" not in err


def test_definitions_build_fails_with_the_located_errors_not_a_crash(tmp_path):
    # per-app isolation is issue #25: here the code location fails as for any spec error
    root = hostile_project(tmp_path / "p")
    with bounded(30), pytest.raises(SpecErrors) as info:
        build_definitions(root)
    for file, line, fragment in EXPECTED:
        find_error(info.value.errors, file, line, fragment)


def test_an_unexpected_exception_in_one_file_is_that_files_located_error(tmp_path, monkeypatch):
    """The per-file guard: a bug (here a reader that raises) in reading one file becomes
    that file's error, with the exception named and what to do, and the other files are
    still read and checked."""
    from datahub_assets.spec import loader

    real = loader.read_pipeline_text

    def flaky(text: str, file: str):
        if file.endswith("boom.xml"):
            raise KeyError("surprise")
        return real(text, file)

    monkeypatch.setattr(loader, "read_pipeline_text", flaky)
    root = write(
        tmp_path / "p",
        {"good/raw/boom.xml": GOOD_XML, "good/raw/ok.xml": GOOD_XML, "good/raw/w.xml": BAD_RULE},
    )
    with pytest.raises(SpecErrors) as info:
        load_project(root, default_engine="spark")
    err = find_error(info.value.errors, "good/raw/boom.xml", 1, "KeyError", "surprise")
    assert "report" in err.message
    find_error(info.value.errors, "good/raw/w.xml", 2, 'layer="nope"')


def test_deep_app_yaml_beside_python_assets_is_that_files_error(tmp_path):
    """Python asset discovery reads app.yaml's owner itself: a hostile app.yaml there is the
    spec loader's located error, not a RecursionError out of discovery."""
    depth = 5000
    root = write(
        tmp_path / "p",
        {
            "shop/app.yaml": f"owner: {'[' * depth}{']' * depth}\n",
            "shop/python/assets.py": "X = 1\n",
            "shop/raw/p.yaml": f"{HEAD}\n{SOURCES}",
        },
    )
    with bounded(30), pytest.raises(SpecErrors) as info:
        load_project(root, default_engine="spark")
    find_error(info.value.errors, "shop/app.yaml", 1, "nested deeper than")


def test_a_huge_invalid_value_is_quoted_short():
    value = "x" * 100_000
    text = f"pipeline: {{id: p, version: 1, layer: raw, engine: {value}}}\n{SOURCES}"
    errors = errors_of(read_pipeline_text, text, "a/raw/p.yaml")
    assert all(len(e.message) < 1000 for e in errors), [len(e.message) for e in errors]
    assert any("100,000 characters" in e.message for e in errors), errors
