"""Property test of issue #11: `datahub validate` is the truth.

Definitions are mutated from the example apps in pipelines_xml/ (pipelines, job pipelines,
app.yaml; XML and YAML): elements and keys dropped, duplicated and renamed, attributes and
values replaced with random text, numbers, cron-like strings, names of other datasets and
tables, unknown references; the text truncated or spliced. For each case the loader must either
accept the file, or report problems that each carry the file and a line (>= 1), never raise
anything else:

1. every case: the file alone (reader + the per-pipeline rules, schemaRef files included,
   against its own app folder: `PipelineCheck`, `read_job_text`, `read_app_yaml`);
2. a deterministic sample of the cases the first stage accepts: the whole app loaded with the
   mutated file in place (`load_project`: cross-file references, jobs, cycles);
3. a sample of the apps that load: the Dagster definitions built from them
   (`build_definitions`) and checked loadable (`dg.Definitions.validate_loadable`),
   which is where an invalid cron used to fail with no file:line.

The case count and the time taken are reported as a warning (visible in `pytest -q`).

A second test (issue #19 finding 5) reads hostile shapes under a deadline: alias bombs,
recursive aliases, DOCTYPEs and entities, deep nesting, huge values, `$ref` fan-out (the
shapes of tests/unit/test_loader_limits.py, spliced into the example files).
"""

from __future__ import annotations

import copy
import random
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, cast

import test_loader_limits as ltl
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from lxml import etree  # pyright: ignore[reportAttributeAccessIssue]  # compiled, no stubs

from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.jobs import read_job_text
from datahub_assets.spec.loader import LAYER_DIRS, load_project, read_pipeline_text
from datahub_assets.spec.models import AppConfig
from datahub_assets.spec.schema_files import SchemaFileError, parse_schema_text
from datahub_assets.spec.validate import PipelineCheck
from datahub_assets.spec.yaml_reader import read_app_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines_xml"
CASES = 10_000
ALL_HEALTH_CHECKS = cast("list[HealthCheck]", list(HealthCheck))  # an enum, seen as its meta
FULL_LOAD_EVERY = 15  # of the cases whose file alone is accepted
BUILD_EVERY = 10  # of the full loads that are accepted


def _corpus() -> list[tuple[str, str, str]]:
    """(app, path relative to the pipelines dir, text) of every example definition."""
    out = []
    for app_dir in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        for file in sorted(app_dir.rglob("*")):
            rel = file.relative_to(EXAMPLES).as_posix()
            folder = file.parent.name
            definition = folder in (*LAYER_DIRS, "jobs") or file.name == "app.yaml"
            if file.suffix in (".xml", ".yaml", ".yml") and definition:
                out.append((app_dir.name, rel, file.read_text("utf-8")))
    return out


CORPUS = _corpus()


def _xml_names() -> tuple[list[str], list[str], list[str]]:
    tags, attrs, values = set(), set(), set()
    for _, rel, text in CORPUS:
        if rel.endswith(".xml"):
            for el in etree.fromstring(text.encode()).iter():
                if isinstance(el.tag, str):
                    tags.add(el.tag)
                    attrs.update(el.attrib)
                    values.update(el.attrib.values())
    return sorted(tags), sorted(attrs), sorted(values)


TAGS, ATTRS, REFS = _xml_names()
POOL = [
    "", " ", "0", "-1", "1", "2147483648", "1e400", "NaN", "true", "false", "yes", "no", "null",
    "~", "x", "a,b", "a:b", "a=b", "a:b,,c:", ":", "=", "*", ",", "99 99 99 99 99", "0 2 * * *",
    "@daily", "@every", "0 0 30 2 *", "*/0 * * * *", "0 2 * * * *", "PT2H", "P", "P1D", "raw",
    "bronze", "silver", "gold", "service", "staging", "raw.t", "customer.raw.customer_snapshot",
    "unknown.raw.nothing", "a.b.c.d", "schemas/customer_staging.avsc", "schemas/missing.avsc",
    "lookups/country_dim.csv", "s3://bucket/x.json", "/nonexistent/x.avsc", "../../x",
    "decimal(12,2)", "x:decimal(40,2)", "x:int", "x:array<int", "a:b:c", "map<string,int>",
    "append", "overwrite", "merge", "quarantine", "drop", "fail", "iceberg", "parquet", "latest",
    "jdbc:postgresql://h/db", "jdbc:oracle://h", "SELECT :runDate", ":watermark", "{}", "[]",
    '{"a": 1}', "<x/>", "&", "é", "ß", "\t", "\n", "count:*:n", "sum:*", "fn:a:b",
]  # fmt: skip
CRON_PARTS = ["*", "0", "59", "60", "99", "*/5", "*/0", "1-5", "5-1", "MON", "L", "?", "1#2", "-1"]

values = st.one_of(
    st.sampled_from(POOL + REFS),
    st.text(max_size=8),
    st.integers(-(10**12), 10**12).map(str),
    st.lists(st.sampled_from(CRON_PARTS), min_size=1, max_size=7).map(" ".join),
)
OPS = ("drop", "duplicate", "rename", "drop_attr", "rename_attr", "set", "add_attr", "text")
TEXT_OPS = ("truncate", "splice")
# a case: which file, one mutation drawn by hypothesis (shrinks to the smallest breaking
# one), and a seed for up to two more mutations and a text cut/splice. Hypothesis' per-draw
# cost dominates the test's time, so the extra mutations come from the seed.
cases = st.tuples(
    st.integers(0, len(CORPUS) - 1),
    st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 16), st.integers(0, 1 << 16), values),
    st.integers(0, (1 << 32) - 1),
)


def _extra(seed: int) -> tuple[list, list]:
    """Up to two more mutations and at most one text operation, from `seed` (0: none)."""
    if not seed:
        return [], []
    rng = random.Random(seed)

    def value() -> str:
        if rng.random() < 0.8:
            return rng.choice(POOL + REFS)
        return " ".join(rng.choice(CRON_PARTS) for _ in range(rng.randint(1, 7)))

    more = [
        (rng.choice(OPS), rng.randrange(1 << 16), rng.randrange(1 << 16), value())
        for _ in range(rng.randint(0, 2))
    ]
    raw = [(rng.choice(TEXT_OPS), rng.randrange(1 << 20), value())] if rng.random() < 0.2 else []
    return more, raw


# ----------------------------------------------------------------------- mutations


def _mutate_xml(text: str, steps: list) -> str:
    root = etree.fromstring(text.encode("utf-8"))
    for op, a, b, value in steps:
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        el = elements[a % len(elements)]
        names = sorted(el.attrib)
        try:
            if op == "drop" and el is not root:
                el.getparent().remove(el)
            elif op == "duplicate" and el is not root:
                el.addnext(copy.deepcopy(el))
            elif op == "rename":
                el.tag = TAGS[b % len(TAGS)] if b % 4 else (value or "x")
            elif op == "drop_attr" and names:
                del el.attrib[names[b % len(names)]]
            elif op == "rename_attr" and names:
                old = names[b % len(names)]
                el.attrib[ATTRS[b % len(ATTRS)]] = el.attrib.pop(old)
            elif op == "set" and names:
                el.attrib[names[b % len(names)]] = value
            elif op == "add_attr":
                el.attrib[ATTRS[b % len(ATTRS)]] = value
            elif op == "text":
                el.text = value
        except ValueError:  # lxml refuses a name or a control character: no mutation
            continue
    return etree.tostring(root, encoding="unicode")


def _slots(node: object, path: tuple = ()) -> list[tuple]:
    """Every (container path, key) of a loaded YAML document."""
    out: list[tuple] = []
    if isinstance(node, dict):
        for key, val in node.items():
            out.append((path, key))
            out += _slots(val, (*path, key))
    elif isinstance(node, list):
        for i, val in enumerate(node):
            out.append((path, i))
            out += _slots(val, (*path, i))
    return out


def _typed(value: str, b: int) -> object:
    kinds = [value, None, [value], {value or "k": value}, b, b % 2 == 0]
    return kinds[b % len(kinds)]


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the mutator only
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_PARSED: dict[str, Any] = {}


def _mutate_yaml(text: str, steps: list) -> str:
    if text not in _PARSED:
        _PARSED[text] = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    doc = copy.deepcopy(_PARSED[text])
    for op, a, b, value in steps:
        slots = _slots(doc)
        if not slots:
            break
        path, key = slots[a % len(slots)]
        parent = doc
        for part in path:
            parent = parent[part]
        if op in ("drop", "drop_attr"):
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op in ("rename", "rename_attr") and isinstance(parent, dict):
            new = ATTRS[b % len(ATTRS)] if b % 4 else value
            parent[new] = parent.pop(key)
        elif op == "add_attr" and isinstance(parent, dict):
            parent[ATTRS[b % len(ATTRS)]] = _typed(value, b)
        else:  # set, text, and what does not apply to the container
            parent[key] = _typed(value, b)
    return yaml.dump(doc, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True)


def _mutate(rel: str, text: str, steps: list, raw: list) -> str:
    out = _mutate_xml(text, steps) if rel.endswith(".xml") else _mutate_yaml(text, steps)
    for op, at, value in raw:
        cut = at % (len(out) + 1)
        out = out[:cut] if op == "truncate" else out[:cut] + value + out[cut:]
    return out


# ------------------------------------------------------------------------ checking


def _located(errors: list, where: str, file: str | None = None) -> None:
    """Every error names a file (`file` when given) and a line, and says something."""
    assert errors, f"{where}: SpecErrors without an error"
    for err in errors:
        assert err.line >= 1, f"{where}: error without a line: {err}"
        assert err.file == (file or err.file), f"{where}: error in another file: {err}"
        assert err.file, f"{where}: error without a file: {err}"
        assert err.message.strip(), f"{where}: error without a message: {err}"


_APP_CONFIG: dict[str, AppConfig] = {}


def _file_alone(app: str, rel: str, text: str) -> bool:
    """Stage 1: True when the file alone is accepted; located errors otherwise."""
    folder = rel.split("/")[-2]
    try:
        if rel.endswith(("app.yaml", "app.yml")):
            read_app_yaml(text, rel)
            return True
        if folder == "jobs":
            read_job_text(text, rel)
            return True
        pipeline = read_pipeline_text(text, rel)
    except SpecErrors as exc:
        _located(exc.errors, rel, file=rel)
        return False
    check = PipelineCheck(pipeline, rel)
    config = _APP_CONFIG.get(app, AppConfig())
    check.run(folder, config, frozenset(), app_dir=EXAMPLES / app)
    check.resolve_targets(app)
    if check.errors:
        _located(check.errors, rel, file=rel)
        return False
    return True


def _whole_app(root: Path, rel: str) -> bool:
    """Stage 2: the app loaded with the mutated file in place."""
    try:
        load_project(root)
    except SpecErrors as exc:
        _located(exc.errors, rel)
        return False
    return True


def _build(root: Path) -> None:
    """Stage 3: Dagster definitions of an accepted app build and are loadable."""
    import dagster as dg

    from datahub_assets.orchestration.project import build_definitions

    dg.Definitions.validate_loadable(build_definitions(root))


def test_loader_accepts_or_locates_every_mutated_definition(tmp_path):
    for app, rel, text in CORPUS:
        if rel.endswith("app.yaml"):
            _APP_CONFIG[app] = read_app_yaml(text, rel)
    apps = {app for app, _, _ in CORPUS}
    for app in apps:  # one root per app: references between pipelines stay within an app
        shutil.copytree(EXAMPLES / app, tmp_path / app / app)
    counts: Counter[str] = Counter()
    started, cpu = time.perf_counter(), time.process_time()

    @settings(
        max_examples=CASES,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=ALL_HEALTH_CHECKS,
    )
    @given(case=cases)
    def check(case):
        index, first, seed = case
        more, raw = _extra(seed)
        steps = [first, *more]
        app, rel, text = CORPUS[index]
        mutated = _mutate(rel, text, steps, raw)
        counts["cases"] += 1
        if not _file_alone(app, rel, mutated):
            return
        counts["file accepted"] += 1
        if counts["file accepted"] % FULL_LOAD_EVERY:
            return
        root = tmp_path / app
        path = root / rel
        try:
            path.write_text(mutated, encoding="utf-8")
            counts["app loads"] += 1
            if not _whole_app(root, rel):
                return
            counts["app accepted"] += 1
            if counts["app accepted"] % BUILD_EVERY == 1:
                counts["definitions built"] += 1
                _build(root)
        finally:
            path.write_text(text, encoding="utf-8")

    check()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert counts["cases"] >= CASES
    assert counts["file accepted"] > CASES // 20, counts  # the mutations are not all fatal
    assert counts["definitions built"] >= 10, counts
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    report = f"validate fuzz: {summary} in {seconds:.0f} s ({cpu:.0f} s CPU)"
    # a builtin category: pytest-xdist's controller re-imports a warning's class by module
    # name, which a test module is not (a class defined here crashed the worker)
    warnings.warn(UserWarning(report), stacklevel=1)


# ------------------------------------------------- hostile shapes (issue #19 finding 5)

HOSTILE_CASES = 250
HOSTILE_LOAD_EVERY = 12  # of each kind's cases: loaded with its app (`load_project`) too
HOSTILE_SECONDS = 3.0  # per case; each is read in milliseconds once the loader is bounded


def _corpus_of(kind: str) -> list[int]:
    """Indexes of the corpus files of one kind: xml, yaml (pipelines and jobs), app."""

    def of(rel: str) -> str:
        if rel.endswith("app.yaml"):
            return "app"
        return "xml" if rel.endswith(".xml") else "yaml"

    return [i for i, (_, rel, _) in enumerate(CORPUS) if of(rel) == kind]


XML_FILES, YAML_FILES = _corpus_of("xml"), _corpus_of("yaml")
HOSTILE_KINDS = (
    "alias bomb", "recursive alias", "yaml nesting", "doctype", "huge attribute",
    "xml nesting", "huge yaml value", "$ref fan-out", "avro fan-out",
)  # fmt: skip
hostile_cases = st.tuples(  # the kind: each in turn (the test's case count), not drawn
    st.integers(0, 1 << 16),  # which file / element / attribute
    st.integers(1, 13),  # levels
    st.integers(1, 12),  # width
    st.integers(0, 1_300_000),  # size: some over MAX_DEFINITION_BYTES (1 MiB)
)


def _alias_text(pick: int, levels: int, width: int) -> tuple[str, str]:
    """(file, text) with an alias bomb where each kind of file reads values."""
    builders = [
        ("p/raw/bomb.yaml", ltl.yaml_pipeline_with_bomb),
        ("p/app.yaml", ltl.app_yaml_with_bomb),
        ("p/jobs/bomb.yaml", ltl.job_yaml_with_bomb),
    ]
    file, build = builders[pick % len(builders)]
    return file, build(levels, width)


def _recursive_alias(pick: int, levels: int) -> str:
    """A corpus YAML file with a self-referencing anchor spliced in at a line start."""
    _, rel, text = CORPUS[YAML_FILES[pick % len(YAML_FILES)]]
    lines = text.splitlines()
    at = 1 + pick % max(1, len(lines) - 1)
    shapes = ["x: &r [*r]", "x: &r {a: *r}", "x: &r\n  - [*r]", "x: &r {a: [{b: *r}]}"]
    return "\n".join([*lines[:at], shapes[levels % len(shapes)], *lines[at:]]) + "\n"


def _nested_yaml(levels: int, width: int, size: int) -> str:
    depth = (levels * width * 7 + size) % 3000 + 1
    if width % 2:  # flow style
        return ltl.nested_yaml(depth)
    block = "".join("  " * i + "- \n" for i in range(depth))
    return f"{ltl.HEAD}\nmetadata:\n  description:\n{block}"


def _xml_tree(pick: int) -> tuple[str, Any]:
    _, rel, text = CORPUS[XML_FILES[pick % len(XML_FILES)]]
    return rel, etree.fromstring(text.encode("utf-8"))


def _doctype(pick: int, levels: int) -> tuple[str, str]:
    """A corpus XML file with a DOCTYPE (of the shapes in test_loader_limits) and an
    entity reference in an element's text or an attribute."""
    rel, root = _xml_tree(pick)
    prolog, ref = list(ltl.DOCTYPES.values())[levels % len(ltl.DOCTYPES)]
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    el = elements[pick % len(elements)]
    marker = "ENTITYREF"
    if levels % 2 and el.attrib:
        el.attrib[sorted(el.attrib)[0]] = marker
    else:
        el.text = marker
    body = etree.tostring(root, encoding="unicode").replace(marker, ref or "&e;")
    decl = '<?xml version="1.0" encoding="UTF-8"?>\n' if pick % 3 else ""
    return rel, f"{decl}<!-- a comment -->\n{prolog}{body}\n"


def _huge_attribute(pick: int, size: int) -> tuple[str, str]:
    rel, root = _xml_tree(pick)
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    el = elements[(pick // 7) % len(elements)]
    names = sorted(el.attrib) or ATTRS
    el.attrib[names[pick % len(names)]] = "\u00e9x"[pick % 2] * size
    return rel, etree.tostring(root, encoding="unicode")


def _nested_xml(pick: int, levels: int, width: int) -> tuple[str, str]:
    rel, root = _xml_tree(pick)
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    el = elements[pick % len(elements)]
    depth = (levels * width * 13 + pick) % 600 + 1
    inner = el
    for _ in range(depth):
        inner = etree.SubElement(inner, TAGS[pick % len(TAGS)])
    return rel, etree.tostring(root, encoding="unicode")


def _huge_yaml_value(pick: int, size: int) -> tuple[str, str]:
    _, rel, text = CORPUS[YAML_FILES[pick % len(YAML_FILES)]]
    return rel, _mutate_yaml(text, [("set", pick, pick, "x" * size)])


def _hostile_text(kind: str, case: tuple) -> tuple[str, str]:
    """(file relative to the pipelines dir, text) of one hostile case."""
    pick, levels, width, size = case
    if kind == "alias bomb":
        return _alias_text(pick, levels, width)
    if kind == "recursive alias":
        return CORPUS[YAML_FILES[pick % len(YAML_FILES)]][1], _recursive_alias(pick, levels)
    if kind == "yaml nesting":
        return "p/raw/nested.yaml", _nested_yaml(levels, width, size)
    if kind == "doctype":
        return _doctype(pick, levels)
    if kind == "huge attribute":
        return _huge_attribute(pick, size)
    if kind == "xml nesting":
        return _nested_xml(pick, levels, width)
    if kind == "huge yaml value":
        return _huge_yaml_value(pick, size)
    if kind == "$ref fan-out":
        return "p/schemas/fan.json", ltl.ref_fanout(levels, width)
    return "p/schemas/fan.avsc", ltl.avro_fanout(levels, width)


def _read_alone(rel: str, text: str) -> None:
    """The reader of `rel`'s kind; accepted, or errors located in `rel` (a schema file's
    error names it: the pipeline's schemaRef line carries it)."""
    schema = rel.endswith((".json", ".avsc"))
    found: list[SpecError] = []
    try:
        if schema:
            parse_schema_text(text, rel)
        elif rel.endswith(("app.yaml", "app.yml")):
            read_app_yaml(text, rel)
        elif rel.split("/")[-2] == "jobs":
            read_job_text(text, rel)
        else:
            read_pipeline_text(text, rel)
    except SchemaFileError as exc:
        found = [SpecError(rel, 1, 1, str(exc))]
    except SpecErrors as exc:
        found = exc.errors
    if not found:
        return
    _located(found, rel, file=rel)
    if schema:
        assert found[0].message.startswith(f"{rel}: "), found[0].message[:200]
    if not rel.endswith(".yaml"):  # huge values are quoted cut short
        assert max(len(e.message) for e in found) < 2000, found[0].message[:200]


def _hostile_load(tmp_path: Path, rel: str, text: str) -> None:
    """The app of `rel` (an example app, else an empty one) loaded with the hostile file
    in place: every error located (a schema file's, at the schemaRef naming it)."""
    app = rel.split("/")[0]
    root = tmp_path / "hostile"
    shutil.rmtree(root, ignore_errors=True)
    if (EXAMPLES / app).is_dir():
        shutil.copytree(EXAMPLES / app, root / app)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if rel.endswith((".json", ".avsc")):
        ref = f"schemas/{path.name}"
        pipeline = (
            f'<pipeline id="fan" layer="raw">\n<sources>\n'
            f'<parquet id="a" path="in/a" schemaRef="{ref}"/>\n</sources>\n'
            '<targets><table table="fan"/></targets>\n</pipeline>\n'
        )
        (root / app / "raw").mkdir(parents=True, exist_ok=True)
        (root / app / "raw" / "fan.xml").write_text(pipeline, encoding="utf-8")
    try:
        load_project(root, default_engine="spark")
    except SpecErrors as exc:
        _located(exc.errors, rel)


def _bounded_read(kind: str, rel: str, text: str, read: Any) -> None:
    """`read(rel, text)` within HOSTILE_SECONDS; a hang is this case's failure."""
    try:
        with ltl.bounded(HOSTILE_SECONDS):
            read(rel, text)
    except ltl.Hung as exc:  # a BaseException: hypothesis would stop without the case
        raise AssertionError(f"{kind} in {rel} ({len(text):,} chars): {exc}") from None


def _hostile_run(kind: str, seen: list[tuple]) -> Any:
    """The property for one kind of shape; the cases it ran are appended to `seen`."""

    @settings(
        max_examples=HOSTILE_CASES // len(HOSTILE_KINDS),
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=ALL_HEALTH_CHECKS,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a hang costs seconds a try
    )
    @given(case=hostile_cases)
    def check(case):
        seen.append(case)
        _bounded_read(kind, *_hostile_text(kind, case), _read_alone)

    return check


def test_loader_bounds_hostile_definitions(tmp_path):
    """Issue #19 finding 5, so it cannot regress: alias bombs and recursive aliases, deep
    YAML and XML nesting, DOCTYPEs with entities (in text and attributes), huge attribute
    and YAML values (some over the file-size limit), `$ref` and Avro named-type fan-out;
    each read alone within HOSTILE_SECONDS ends accepted or in located errors, and every
    HOSTILE_LOAD_EVERY-th case of each kind loaded with its app (`load_project`) does too."""
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    for kind in HOSTILE_KINDS:
        seen: list[tuple] = []
        _hostile_run(kind, seen)()
        counts[kind] = len(seen)
        for case in seen[HOSTILE_LOAD_EVERY - 1 :: HOSTILE_LOAD_EVERY]:
            counts[f"{kind} loaded"] += 1
            rel, text = _hostile_text(kind, case)
            _bounded_read(kind, rel, text, lambda r, t: _hostile_load(tmp_path, r, t))
    seconds = time.perf_counter() - started
    assert all(counts[k] >= HOSTILE_CASES // len(HOSTILE_KINDS) for k in HOSTILE_KINDS), counts
    assert all(counts[f"{k} loaded"] >= 2 for k in HOSTILE_KINDS), counts
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    warnings.warn(UserWarning(f"hostile fuzz: {summary} in {seconds:.0f} s"), stacklevel=1)
