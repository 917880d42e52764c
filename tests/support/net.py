"""Network helpers of the tests: a free loopback port (the local servers' own helper)."""

from __future__ import annotations

from datahub_assets.demo.local_servers import free_port

__all__ = ["free_port"]
