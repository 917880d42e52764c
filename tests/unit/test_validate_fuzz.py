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
"""

from __future__ import annotations

import copy
import random
import shutil
import time
import warnings
from collections import Counter
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.jobs import read_job_text
from datahub_assets.spec.loader import LAYER_DIRS, load_project, read_pipeline_text
from datahub_assets.spec.models import AppConfig
from datahub_assets.spec.validate import PipelineCheck
from datahub_assets.spec.yaml_reader import read_app_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines_xml"
CASES = 10_000
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
_PARSED: dict[str, object] = {}


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

    from datahub_assets.build.project import build_definitions

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
        suppress_health_check=list(HealthCheck),
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
