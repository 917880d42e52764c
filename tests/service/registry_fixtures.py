"""What the registry tests share: a small pipelines tree (app `shop`: a raw CSV pipeline
and a bronze one reading it; app `other`), settings over tmp_path, a migrated state
database, and the git facts a test checks (commits, files, change rows, audit rows)."""

from __future__ import annotations

from pathlib import Path

import git
from sqlalchemy import func, select

from datahub_assets.service.settings import ServiceSettings
from datahub_assets.service.state.db import State, migrate
from datahub_assets.service.state.models import AuditEvent, Change


def raw_xml(table: str = "orders", description: str = "Orders") -> str:
    return f"""<pipeline id="ingest_{table}" version="1.0.0" layer="raw">
  <metadata>
    <owner>team-shop</owner>
    <description>{description}</description>
  </metadata>
  <sources>
    <csv id="src" path="landing/{table}/*.csv" header="true"/>
  </sources>
  <targets>
    <table table="{table}" source="src" mode="append"/>
  </targets>
</pipeline>
"""


def bronze_xml(table: str = "orders", source: str = "raw.orders") -> str:
    return f"""<pipeline id="conform_{table}" version="1.0.0" layer="bronze">
  <metadata>
    <owner>team-shop</owner>
    <description>Conformed {table}</description>
  </metadata>
  <sources>
    <table id="src" ref="{source}"/>
  </sources>
  <targets>
    <table table="{table}" source="src" mode="overwrite"/>
  </targets>
</pipeline>
"""


def write_tree(root: Path) -> Path:
    """The pipelines folder of the tests (not yet a git work tree)."""
    (root / "shop" / "raw").mkdir(parents=True)
    (root / "shop" / "bronze").mkdir(parents=True)
    (root / "shop" / "app.yaml").write_text("owner: team-shop\n")
    (root / "shop" / "raw" / "ingest_orders.xml").write_text(raw_xml())
    (root / "shop" / "bronze" / "conform_orders.xml").write_text(bronze_xml())
    (root / "other" / "raw").mkdir(parents=True)
    (root / "other" / "raw" / "ingest_things.xml").write_text(raw_xml("things", "Things"))
    return root


def settings_for(tmp: Path, state_uri: str | None = None, dagster_url: str | None = None):
    pipes = tmp / "pipes"
    if not pipes.exists():
        write_tree(pipes)
    return ServiceSettings(
        home=tmp / "home",
        state_uri=state_uri or f"sqlite:///{tmp / 'home' / 'hub.db'}",
        pipelines_dir=pipes,
        data_dir=tmp / "data",
        secret_key=b"k" * 32,
        dagster_url=dagster_url,
    )


def state_for(settings: ServiceSettings) -> State:
    migrate(settings.state_uri)
    return State(settings.state_uri)


def commits(root: Path) -> list[git.Commit]:
    return list(git.Repo(root).iter_commits("HEAD"))


def change_count(state: State) -> int:
    with state.session() as db:
        return db.scalar(select(func.count()).select_from(Change)) or 0


def audit_rows(state: State, action: str | None = None) -> list[AuditEvent]:
    with state.session() as db:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(db.scalars(query))


DOCTYPE_EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY x SYSTEM "file:///etc/hostname">]>
<pipeline id="evil" version="1.0.0" layer="raw">
  <metadata><owner>x</owner><description>&x;</description></metadata>
  <sources><csv id="src" path="landing/evil/*.csv" header="true"/></sources>
  <targets><table table="evil" source="src" mode="append"/></targets>
</pipeline>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<pipeline id="lolz" version="1.0.0" layer="raw"><metadata><description>&lol9;</description>
</metadata></pipeline>
"""

YAML_BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

SQL_TEXT = "x'); DROP TABLE changes; --"
