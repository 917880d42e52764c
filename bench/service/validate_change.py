"""Benchmark 1: a change to one pipeline in a 2,000-pipeline project, validated as the whole
project would load with it (Registry.validate) and opened as a change (Registry.create_change),
against a bare `datahub validate` of the same tree, in the same run.

    .venv/bin/python -m bench.service.validate_change [--n 2000] [--repeat 20]

Each round, in this order: `load_project(tree)` in this process (the validator alone),
`Registry.validate(app, files)`, `Registry.create_change(db, app, title, files, author)` (a
new state-DB row each time) and the CLI `datahub validate` (wall time of the process: Python
start-up and imports included). The change rewrites `bronze/conform_t005.xml` of app
`load_a010` (a different description and one more derive each round, so nothing can be
answered from a cache of the previous round). One warm-up round first, reported apart.
Targets (issue #21): p95 ≤ 3 s and ≤ 1.5 × the bare validate.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from bench.common import machine, now, revision, timed_run, write_json
from bench.service.harness import DATAHUB, Project, add_user, project, summary

APP = "load_a010"  # of the 40 apps of 2,000 pipelines; a smaller --n uses its last app
FILE = "bronze/conform_t005.xml"
TARGET_S = 3.0
TARGET_RATIO = 1.5


def app_of(p: Project) -> str:
    return APP if (p.pipelines / APP).is_dir() else sorted(p.manifest_apps())[-1]


def changed_file(p: Project, app: str, i: int) -> list[dict]:
    """The one-file change of round `i`: the pipeline with a new description and a derive."""
    text = (p.pipelines / app / FILE).read_text()
    text = text.replace("<description>", f"<description>round {i}: ", 1)
    derive = f'    <derive source="src" column="bench_round_{i}" expr="amount * {i + 1}"/>\n'
    text = text.replace("  </transformations>", derive + "  </transformations>", 1)
    return [{"path": FILE, "content": text}]


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(n: int, repeat: int) -> dict:
    p = project(f"validate_{n}", n)
    os.environ.update(p.env())  # load_project and the settings read the environment
    app = app_of(p)
    add_user(p, "bench_editor", {app: "editor"})

    from datahub_assets.service.registry.changes import Registry
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import State, migrate
    from datahub_assets.spec.loader import load_project

    settings = ServiceSettings.from_env()
    migrate(settings.state_uri)
    state = State(settings.state_uri)
    start = time.perf_counter()
    registry = Registry(settings)
    registry_init_s = time.perf_counter() - start

    def round_(i: int) -> dict:
        files = changed_file(p, app, i)
        t_load, _ = _timed(lambda: load_project(p.pipelines))
        t_validate, validation = _timed(lambda: registry.validate(app, files))
        with state.session() as db:
            t_change, change = _timed(
                lambda: registry.create_change(db, app, f"bench round {i}", files, "bench_editor")
            )
            status = getattr(change, "status", None)
        cli = timed_run([str(DATAHUB), "validate"], env=p.env(), timeout=900)
        return {
            "load_project_s": t_load,
            "validate_s": t_validate,
            "create_change_s": t_change,
            "cli_validate_s": cli.wall_s,
            "cli_ok": cli.returncode == 0,
            "validation_ok": bool(validation.get("ok")) if isinstance(validation, dict) else None,
            "change_status": status,
        }

    warmup = round_(0)
    rounds = [round_(i) for i in range(1, repeat + 1)]
    stats = {
        key: summary([r[key] for r in rounds])
        for key in ("load_project_s", "validate_s", "create_change_s", "cli_validate_s")
    }
    worst = max(stats["validate_s"]["p95"], stats["create_change_s"]["p95"])
    return {
        "n": n,
        "app": app,
        "file": FILE,
        "manifest": p.manifest,
        "registry_init_s": round(registry_init_s, 3),
        "warmup": warmup,
        "rounds": rounds,
        "stats": stats,
        "all_valid": all(r["validation_ok"] for r in rounds),
        "all_open": all(r["change_status"] == "open" for r in rounds),
        "cli_all_ok": all(r["cli_ok"] for r in rounds),
        "ratio_p95_vs_load_project": round(worst / stats["load_project_s"]["p95"], 3),
        "ratio_p95_vs_cli": round(worst / stats["cli_validate_s"]["p95"], 3),
        "ratio_p50_vs_load_project": round(
            stats["create_change_s"]["p50"] / stats["load_project_s"]["p50"], 3
        ),
        "target_s": TARGET_S,
        "target_ratio": TARGET_RATIO,
        "met_seconds": worst <= TARGET_S,
        "met_ratio_vs_cli": worst / stats["cli_validate_s"]["p95"] <= TARGET_RATIO,
        "met_ratio_vs_load_project": worst / stats["load_project_s"]["p95"] <= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    before = machine()
    result: dict = {"benchmark": "service_validate_change", "time": now(), "revision": revision()}
    result |= measure(args.n, args.repeat)
    result["machine"] = {**before, "loadavg_after": machine()["loadavg"]}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps({k: v for k, v in main().items() if k != "rounds"}, indent=2, default=str))
