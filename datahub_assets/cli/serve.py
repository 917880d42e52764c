"""`datahub serve [--host 127.0.0.1] [--port 8080]`: the front door under uvicorn.

Before it listens it upgrades the state database (Alembic) and makes DATAHUB_PIPELINES_DIR a
git work tree (the registry does, on first start). Behind a reverse proxy on the same host,
uvicorn takes the client address from X-Forwarded-For (FORWARDED_ALLOW_IPS, default
127.0.0.1)."""

from __future__ import annotations

import argparse
import sys

from datahub_resources.settings import Settings


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="the service: API (OpenAPI at /docs) and portal pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info")


def run(args: argparse.Namespace, _settings: Settings) -> int:
    import uvicorn

    from datahub_assets.service.app import create_app
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import migrate

    service = ServiceSettings.from_env()
    migrate(service.state_uri)
    app = create_app(service)
    if app.state.registry is None:
        sys.stderr.write("warning: no registry: pipelines and changes are not served\n")
    sys.stderr.write(
        f"datahub serve: http://{args.host}:{args.port} (OpenAPI at /docs), state "
        f"{_safe_uri(service.state_uri)}, pipelines {service.pipelines_dir}\n"
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False)
    return 0


def _safe_uri(uri: str) -> str:
    """The URI without its password (printed)."""
    from sqlalchemy.engine import make_url

    return make_url(uri).render_as_string(hide_password=True)
