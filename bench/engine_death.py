"""Time from a Spark Connect server's death to the step's failure (and to its retried
success), and from SIGTERM to the end of a run, on private servers (never the shared one).

    .venv/bin/python -m bench.engine_death [--phases write,read,check] [--terminate]

Reuses the fault-injection harness of tests/integration/test_engine_death.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.integration import test_engine_death as harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phases", default="write,read,check")
    parser.add_argument("--terminate", action="store_true")
    args = parser.parse_args()
    rows = []
    for phase in [p for p in args.phases.split(",") if p]:
        with tempfile.TemporaryDirectory(prefix="datahub-death-") as root:
            env = harness.Env(Path(root))
            try:
                r = harness.kill_during(env, phase, delay=1.5 if phase == "write" else 0.0)
            finally:
                env.cleanup()
            time.sleep(0.5)
            left = env.leftovers()
        rows.append(
            (
                f"kill -9 during {phase}",
                r["to_failure_s"],
                r["to_done_s"],
                "retried, succeeded" if r["success"] else "failed",
                len(left),
            )
        )
    if args.terminate:
        with tempfile.TemporaryDirectory(prefix="datahub-term-") as root:
            env = harness.Env(Path(root))
            try:
                t = harness.terminate_during_write(env)
            finally:
                env.cleanup()
            time.sleep(0.5)
            left = env.leftovers()
        rows.append(
            (
                "SIGTERM during write",
                None,
                t["exit_s"],
                f"exit {t['returncode']}, table unchanged={t['unchanged']}",
                len(left),
            )
        )
    print("| case | death -> step failed (s) | -> done (s) | outcome | processes left |")
    print("|---|---|---|---|---|")
    for case, fail, done, outcome, left in rows:
        print(
            f"| {case} | {'' if fail is None else f'{fail:.1f}'} | {done:.1f} | {outcome} "
            f"| {left} |"
        )


if __name__ == "__main__":
    main()
