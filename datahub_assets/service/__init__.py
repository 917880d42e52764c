"""The front door (`datahub serve`, docs/service.md): one FastAPI service for everyone who does
not edit XML in a checkout.

    settings.py   ServiceSettings: the service's variables (read in datahub_resources/settings.py)
    state/        SQLAlchemy models of users, grants, tokens, sessions, changes, audit; Alembic
    auth/         passwords (argon2), access/API tokens, browser sessions + CSRF, rate limit, OIDC
    authz/        roles, the route table and the one dependency that decides every call
    audit.py      the append-only audit log
    registry/     pipelines of an app, changes, validation, plan, approval → one git commit,
                  code-location reload, preview on a sample
    api/          the /api/v1 routers (contract ../shared/spec/api.md)
    pages/        the portal: server-rendered pages (Jinja2 + htmx), the wizard, reviews
    app.py        create_app(): wires the above

The Dagster code location never imports this package (tests/unit/test_import_cycles.py)."""
