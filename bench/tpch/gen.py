"""Generate TPC-H CSV with tpchgen-cli and lay it out as the `tpch` app's landing zone.

    .venv/bin/python -m bench.tpch.gen [--scale 1] [--parts 4] [--force]

Writes bench/_work/tpch/sf<N>/<table>/<table>.<part>.csv (CSV with a header row, comma
delimited, strings quoted) and hard-links (else symlinks) each file into the platform's data layout:
bench/_work/tpch/data/tpch/landing/<table>/<table>.<part>.csv, i.e. DATAHUB_DATA_DIR =
bench/_work/tpch/data and the XML paths `landing/<table>/*.csv`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from bench.common import VENV_BIN, WORK

TABLES = ("orders", "lineitem", "customer", "nation")
TPCH_WORK = WORK / "tpch"
DATA_DIR = TPCH_WORK / "data"

# The TPC-H types the reference app's bronze layer casts to (pipelines_xml/tpch/bronze/*.xml),
# shared by the hand-written baselines (handwritten.py, handwritten_duckdb.py).
CASTS: dict[str, dict[str, str]] = {
    "orders": {
        "o_orderkey": "bigint",
        "o_custkey": "bigint",
        "o_totalprice": "decimal(15,2)",
        "o_orderdate": "date",
        "o_shippriority": "int",
    },
    "lineitem": {
        "l_orderkey": "bigint",
        "l_partkey": "bigint",
        "l_suppkey": "bigint",
        "l_linenumber": "int",
        "l_quantity": "decimal(15,2)",
        "l_extendedprice": "decimal(15,2)",
        "l_discount": "decimal(15,2)",
        "l_tax": "decimal(15,2)",
        "l_shipdate": "date",
        "l_commitdate": "date",
        "l_receiptdate": "date",
    },
    "customer": {"c_custkey": "bigint", "c_nationkey": "bigint", "c_acctbal": "decimal(15,2)"},
    "nation": {"n_nationkey": "bigint", "n_regionkey": "bigint"},
}


def raw_dir(scale: int) -> Path:
    return TPCH_WORK / f"sf{scale}"


def landing(table: str) -> Path:
    return DATA_DIR / "tpch" / "landing" / table


def _link(src: Path, dest: Path) -> None:
    """Hard link (survives the platform moving landing files away), else a symlink."""
    try:
        os.link(src, dest)
    except OSError:
        dest.symlink_to(src)


def generate(scale: int = 1, parts: int = 4, force: bool = False) -> dict:
    out = raw_dir(scale)
    marker = out / "_SUCCESS.json"
    took = 0.0
    if force or not marker.exists():
        out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        subprocess.run(
            [
                str(VENV_BIN / "tpchgen-cli"),
                "csv",
                "-s",
                str(scale),
                "-T",
                ",".join(TABLES),
                "--parts",
                str(parts),
                "-o",
                str(out),
                "--overwrite",
                "--no-progress",
                "-q",
            ],
            check=True,
        )
        took = round(time.perf_counter() - start, 2)
        marker.write_text(json.dumps({"scale": scale, "parts": parts, "gen_s": took}))
    files = {}
    for table in TABLES:
        dest = landing(table)
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.csv"):
            old.unlink()
        src_files = sorted((out / table).glob("*.csv"))
        for src in src_files:
            _link(src, dest / src.name)
        files[table] = {"files": len(src_files), "bytes": sum(f.stat().st_size for f in src_files)}
    return {
        "scale": scale,
        "dir": str(out),
        "data_dir": str(DATA_DIR),
        "gen_s": took,
        "tables": files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    print(json.dumps(generate(args.scale, args.parts, args.force), indent=2))


if __name__ == "__main__":
    main()
