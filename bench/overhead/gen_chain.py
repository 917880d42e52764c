"""Generate the per-asset overhead chain: 20 tiny pipelines in one app, linked by table refs.

    .venv/bin/python -m bench.overhead.gen_chain [--length 20]

bench/_work/overhead/pipelines/chain/raw/ingest.xml reads a 10-row CSV
(bench/_work/overhead/data/chain/landing/items/items.csv) into raw.items; bronze/step01.xml
reads raw.items, ... bronze/stepNN.xml reads bronze.step<NN-1>; each step derives one column
and overwrites its table. No watch, no schedule, no checks: the run measures the platform's
fixed cost per asset (step process, Spark Connect session, Iceberg commit, bookkeeping).
"""

from __future__ import annotations

import argparse
import json
import shutil

from bench.common import WORK

OVERHEAD_WORK = WORK / "overhead"
PIPELINES = OVERHEAD_WORK / "pipelines"
DATA = OVERHEAD_WORK / "data"
HOME = OVERHEAD_WORK / "home"
APP = "chain"

RAW = """<pipeline id="ingest_items" version="1.0.0" layer="raw">
  <metadata><owner>bench</owner><description>10-row chain seed</description></metadata>
  <sources>
    <csv id="items" path="landing/items/*.csv" header="true"/>
  </sources>
  <targets>
    <table table="items" source="items" mode="overwrite"/>
  </targets>
</pipeline>
"""

STEP = """<pipeline id="step{i:02d}" version="1.0.0" layer="bronze">
  <metadata><owner>bench</owner><description>Chain step {i}</description></metadata>
  <sources>
    <table id="prev" ref="{ref}"/>
  </sources>
  <transformations>
    <derive source="prev" column="{col}" expr="{expr}"/>
  </transformations>
  <targets>
    <table table="step{i:02d}" source="prev" mode="overwrite"/>
  </targets>
</pipeline>
"""


def generate(length: int = 20) -> dict:
    if PIPELINES.exists():
        shutil.rmtree(PIPELINES)
    app = PIPELINES / APP
    (app / "raw").mkdir(parents=True)
    (app / "bronze").mkdir(parents=True)
    (app / "raw" / "ingest_items.xml").write_text(RAW)
    for i in range(1, length):
        ref = "raw.items" if i == 1 else f"bronze.step{i - 1:02d}"
        expr = "cast(id as int) * 2" if i == 1 else f"s{i - 1:02d} + 1"
        (app / "bronze" / f"step{i:02d}.xml").write_text(
            STEP.format(i=i, ref=ref, col=f"s{i:02d}", expr=expr)
        )
    landing = DATA / APP / "landing" / "items"
    if landing.exists():
        shutil.rmtree(landing)
    landing.mkdir(parents=True)
    rows = ["id,name,amount"] + [f"{k},item{k},{k * 1.5}" for k in range(1, 11)]
    (landing / "items.csv").write_text("\n".join(rows) + "\n")
    return {
        "pipelines_dir": str(PIPELINES),
        "data_dir": str(DATA),
        "home": str(HOME),
        "assets": length,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=20)
    print(json.dumps(generate(parser.parse_args().length)))


if __name__ == "__main__":
    main()
