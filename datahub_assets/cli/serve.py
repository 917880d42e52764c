"""`datahub serve [--host 127.0.0.1] [--port 8080] [--workers N]`: the front door under uvicorn.

Before it listens it upgrades the state database (Alembic) and makes DATAHUB_PIPELINES_DIR a
git work tree (the registry does, on first start). Behind a reverse proxy on the same host,
uvicorn takes the client address from X-Forwarded-For (FORWARDED_ALLOW_IPS, default
127.0.0.1).

`--workers N` (default 1) runs N server processes on the one port (uvicorn's workers: each
calls `create_app()`). Everything shared lives in the state database and the pipelines' git
tree; what each process keeps for itself: the registry's listings (each builds an app's
listing at a new HEAD on its first request for it) and the cache of checked bearer tokens (a
revocation or grant change in one process is signalled to the others on this host through a
file next to the state database: auth/tokens.py)."""

from __future__ import annotations

import argparse
import sys

from datahub_resources.settings import Settings


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="the service: API (OpenAPI at /docs) and portal pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the port (each keeps its own listing cache; default 1)",
    )


def run(args: argparse.Namespace, _settings: Settings) -> int:
    import uvicorn

    from datahub_assets.service.app import create_app
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import migrate

    if args.workers < 1:
        sys.stderr.write("error: --workers needs a number of at least 1\n")
        return 2
    service = ServiceSettings.from_env()
    migrate(service.state_uri)
    options = {"host": args.host, "port": args.port, "log_level": args.log_level}
    where = (
        f"http://{args.host}:{args.port} (OpenAPI at /docs), state "
        f"{_safe_uri(service.state_uri)}, pipelines {service.pipelines_dir}"
    )
    if args.workers > 1:
        sys.stderr.write(f"datahub serve: {where}, {args.workers} worker processes\n")
        # each worker imports and calls create_app() (settings from the same environment)
        uvicorn.run(APP_FACTORY, factory=True, workers=args.workers, server_header=False, **options)
        return 0
    app = create_app(service)
    if app.state.registry is None:
        sys.stderr.write("warning: no registry: pipelines and changes are not served\n")
    sys.stderr.write(f"datahub serve: {where}\n")
    uvicorn.run(app, server_header=False, **options)
    return 0


APP_FACTORY = "datahub_assets.service.app:create_app"


def _safe_uri(uri: str) -> str:
    """The URI without its password (printed)."""
    from sqlalchemy.engine import make_url

    return make_url(uri).render_as_string(hide_password=True)
