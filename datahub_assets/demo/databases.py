"""The `crm` example app's source systems: a private PostgreSQL and a MongoDB-wire server.

`datahub demo` starts both under `$DATAHUB_HOME/servers/` on the loopback ports that
`pipelines_xml/crm/app.yaml` resolves (127.0.0.1:54329 and :27019 unless CRM_DB_ADDRESS and
CRM_PRODUCTS_MONGO_URI say otherwise), and (re)seeds them deterministically:

PostgreSQL database `crm` (user `datahub`, trust auth on loopback: the secret `CRM_DB` is
just the user name `datahub`):
  public.customers  N//5 rows: customer_id, first_name, last_name, email, country_code,
                    segment, created_at, updated_at
  public.orders     N rows: order_id, customer_id, product_sku, quantity, unit_price,
                    status, order_date, updated_at (updated_at >= created, some orders
                    updated later with a new status)
  reporting         an empty schema: the service export's merge target lands there
MongoDB-wire (`nx-27017`) database `catalog`, collection `products` (secret
`CRM_PRODUCTS_MONGO_URI` = mongodb://127.0.0.1:<port>/): 40 documents with nested documents
(`category.main`, `dimensions.{width,height,depth}`), arrays of scalars (`tags`) and of
documents (`variants[].{color, stock}`), and a few documents missing optional fields.

`touch_crm(...)` changes the source after a run (new orders, updated customers, a row with
the watermark's exact timestamp) to show incremental loads; `stop_servers()` stops both.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from datahub_assets.demo import local_servers
from datahub_resources.settings import env_value

PG_PORT = 54329
MONGO_PORT = 27019
SERVERS = ("postgres", "mongo")
CATEGORIES = {
    "outdoor": ["tents", "boots", "packs"],
    "kitchen": ["knives", "pans"],
    "office": ["chairs", "desks", "lamps"],
}
COLORS = ["red", "blue", "green", "black", "white"]
STATUSES = ["placed", "paid", "shipped", "delivered", "cancelled"]
T0 = datetime(2024, 3, 1, 8, 0, 0)


def server_root(home: Path, kind: str) -> Path:
    return home / "servers" / kind


def ports() -> tuple[int, int]:
    """(PostgreSQL, MongoDB) ports: those app.yaml will read from CRM_DB_ADDRESS and
    CRM_PRODUCTS_MONGO_URI when they are set, else 54329 and 27019."""
    address = env_value("CRM_DB_ADDRESS") or f"127.0.0.1:{PG_PORT}"
    uri = urlsplit(env_value("CRM_PRODUCTS_MONGO_URI") or f"mongodb://127.0.0.1:{MONGO_PORT}/")
    return int(address.rsplit(":", 1)[1]), uri.port or MONGO_PORT


def start_servers(home: Path) -> dict[str, local_servers.LocalServer]:
    """Both demo servers, started if they are not running (ports: `ports()`)."""
    pg_port, mongo_port = ports()
    try:
        pg = local_servers.start_postgres(server_root(home, "postgres"), pg_port)
        mongo = local_servers.start_mongo(server_root(home, "mongo"), mongo_port)
    except local_servers.LocalServerError as exc:
        raise local_servers.LocalServerError(
            f"{exc}\n(the crm example's servers listen on 127.0.0.1:{pg_port} and "
            f":{mongo_port}; stop whatever uses those ports, or `datahub servers stop`)"
        ) from exc
    return {"postgres": pg, "mongo": mongo}


def stop_servers(home: Path, purge: bool = False) -> list[str]:
    """Stop the demo servers; returns the kinds that were running. `purge` also deletes their
    data kept outside $DATAHUB_HOME (see `local_servers._service_home`)."""
    return [kind for kind in SERVERS if local_servers.stop(server_root(home, kind), purge=purge)]


def status(home: Path) -> dict[str, local_servers.LocalServer | None]:
    return {kind: local_servers.running(server_root(home, kind)) for kind in SERVERS}


def _pg(server):
    import psycopg

    return psycopg.connect(
        host="127.0.0.1", port=server.port, user="datahub", dbname="crm", autocommit=True
    )


def seed_crm(home: Path, rows: int = 1000, seed: int = 42) -> dict[str, int]:
    """Start the servers and (re)create the crm source data; returns row counts."""
    servers = start_servers(home)
    local_servers.create_database(servers["postgres"], "crm")
    rng = random.Random(seed)
    n_customers, n_orders = max(10, rows // 5), max(20, rows)
    with _pg(servers["postgres"]) as conn:
        conn.execute("drop schema if exists reporting cascade")
        conn.execute("create schema reporting")
        conn.execute("drop table if exists public.orders, public.customers")
        conn.execute("""create table public.customers (
            customer_id integer primary key, first_name text not null, last_name text not null,
            email text, country_code char(2), segment text, created_at timestamp not null,
            updated_at timestamp not null)""")
        conn.execute("""create table public.orders (
            order_id bigint primary key, customer_id integer not null, product_sku text not null,
            quantity integer not null, unit_price numeric(10,2) not null, status text not null,
            order_date date not null, updated_at timestamp not null)""")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into public.customers values (%s,%s,%s,%s,%s,%s,%s,%s)",
                [_customer(rng, i) for i in range(1, n_customers + 1)],
            )
            cur.executemany(
                "insert into public.orders values (%s,%s,%s,%s,%s,%s,%s,%s)",
                [_order(rng, i, n_customers) for i in range(1, n_orders + 1)],
            )
    products = _seed_products(servers["mongo"], rng)
    return {"customers": n_customers, "orders": n_orders, "products": products}


def _customer(rng: random.Random, i: int) -> tuple:
    first = rng.choice(["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Hana", "Ivan", "Omar"])
    last = rng.choice(["Adams", "Berg", "Costa", "Ito", "Kim", "Lopez", "Novak", "Silva"])
    created = T0 + timedelta(hours=i)
    email = f"{first.lower()}.{last.lower()}{i}@example.com" if i % 17 else None
    return (
        i,
        first,
        last,
        email,
        rng.choice(["US", "DE", "FR", "JP", "BR"]),
        rng.choice(["retail", "business", "vip"]),
        created,
        created + timedelta(minutes=rng.randint(0, 600)),
    )


def _order(rng: random.Random, i: int, n_customers: int) -> tuple:
    day = date(2024, 3, 1) + timedelta(days=rng.randint(0, 120))
    created = datetime.combine(day, datetime.min.time()) + timedelta(minutes=rng.randint(0, 1439))
    return (
        i,
        rng.randint(1, n_customers),
        f"SKU-{rng.randint(1, 40):03d}",
        rng.randint(1, 5),
        Decimal(rng.randint(199, 19999)) / 100,
        rng.choice(STATUSES),
        day,
        created + timedelta(hours=rng.randint(0, 72)),
    )


def _seed_products(server, rng: random.Random) -> int:
    import pymongo

    client = pymongo.MongoClient(server.mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        coll = client["catalog"]["products"]
        coll.drop()
        docs = []
        for i in range(1, 41):
            main = rng.choice(sorted(CATEGORIES))
            doc = {
                "sku": f"SKU-{i:03d}",
                "name": f"{main.title()} item {i}",
                "category": {"main": main, "sub": rng.choice(CATEGORIES[main])},
                # a double: nx-27017 cannot store Decimal128 (real MongoDB can; the reader maps
                # it to decimal, tests/integration/test_mongo_source.py)
                "price": rng.randint(199, 19999) / 100,
                "tags": rng.sample(["new", "sale", "eco", "bestseller", "gift"], rng.randint(0, 3)),
                "variants": [
                    {"color": c, "stock": rng.randint(0, 50)}
                    for c in rng.sample(COLORS, rng.randint(1, 3))
                ],
                "active": i % 9 != 0,
                "updated_at": T0 + timedelta(days=i),
            }
            if i % 4:  # some products have no dimensions: the field is optional
                doc["dimensions"] = {
                    "width": rng.randint(5, 90),
                    "height": rng.randint(5, 90),
                    "depth": round(rng.uniform(1, 40), 1),
                }
            docs.append(doc)
        coll.insert_many(docs)
        return len(docs)
    finally:
        client.close()


def _one(conn, sql: str):
    """The single value an aggregate query returns."""
    row = conn.execute(sql).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {sql!r}")
    return row[0]


def touch_crm(home: Path, new_orders: int = 5) -> None:
    """Change the sources the way a live system would: one customer updated, new orders, and
    one order whose updated_at equals the newest value already loaded (a tie at the
    watermark, read by the next incremental run and merged, not duplicated)."""
    servers = start_servers(home)
    with _pg(servers["postgres"]) as conn:
        newest = _one(conn, "select max(updated_at) from public.orders")
        last = _one(conn, "select max(order_id) from public.orders")
        conn.execute(
            "update public.customers set segment = 'vip', updated_at = %s where customer_id = 1",
            (newest + timedelta(minutes=1),),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into public.orders values (%s,%s,%s,%s,%s,%s,%s,%s)",
                [
                    (
                        last + k,
                        1,
                        "SKU-001",
                        k,
                        Decimal("9.99"),
                        "placed",
                        newest.date(),
                        newest if k == 1 else newest + timedelta(minutes=k),
                    )
                    for k in range(1, new_orders + 1)
                ],
            )
