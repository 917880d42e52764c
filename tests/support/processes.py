"""Processes the tests start in their own process group (`start_new_session=True`): a
server, `dg dev`, nginx. `stop_group` ends the group: SIGTERM, then SIGKILL after `grace`
seconds."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen, grace: float = 30) -> None:
    """End `proc`'s process group if it still runs: SIGTERM, then SIGKILL after `grace` s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
