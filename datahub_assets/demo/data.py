"""Deterministic sample files for the example apps in `pipelines_xml/` (stdlib only).

`generate(data_dir, rows, seed)` writes `<data_dir>/<app>/landing/...`, the folders the apps'
raw pipelines read (`datahub demo` calls it). The same arguments give byte-identical files: one
`random.Random(seed)`, fixed calendar dates, no clock. Counts are data lines (headers excluded)
for `rows=N` (N >= 50); "planted" rows are what bronze/silver are expected to fix or drop.

ecommerce — a Gridata shop, orders in calendar year 2024
  landing/orders/orders_2024_h1.csv, orders_2024_h2.csv: N lines of order_id, customer_id,
    order_ts, status, channel, payment_method, quantity, unit_price, amount (= quantity x
    unit_price), currency, updated_at. Planted: max(1, N//50) H1 orders re-sent in the H2 file
    with a later updated_at and the next status (bronze keeps the latest); max(1, N//100) bad
    lines with a fresh order_id, alternately a negative amount or an empty customer_id.
  landing/customers/customers_2024_01.csv, customers_2024_07.csv: N//5 lines of customer_id,
    first_name, last_name, email, phone, city, country_code, signup_date, updated_at. Planted:
    max(1, N//5//20) later versions of a customer (new city, phone, email); max(1, N//5//50)
    bad lines whose email has no "@" (ids no order uses). A few heavy buyers, a long tail.
  landing/clickstream/clickstream_part{1,2,3}.json: N*3 JSON lines of event_id, session_id,
    customer_id (null for anonymous visitors), event_type (page_view, product_view,
    add_to_cart, checkout, purchase), page_url, event_ts, device, referrer. Planted:
    max(1, 3N//100) events re-delivered in part 3 (same event_id); max(1, 3N//200) bad events,
    alternately a null event_ts or event_type "unknown".
github — GH Archive style events of 2015-01-01
  landing/events/events_part{1,2}.json: N JSON lines of id, type, created_at, actor{id, login,
    gravatar_id, url, avatar_url}, repo{id, name, url}, payload{action | size, commits[...]},
    public. N//4 actors act repeatedly; max(1, N//100) of them change their login half-way
    through (silver keeps the latest). Every event has an actor and a unique, increasing
    created_at, so "latest login per actor" is unambiguous; no bad rows here.
customer — the customer master of the Data Hub HLD
  landing/customers/customer_part{1,2}.csv: N//2 lines of customer_id, first_name, last_name,
    email, phone, ssn, country_code, revenue, updated_at. Planted: max(1, N//2//20) later
    versions of a customer (higher revenue, new phone); max(1, N//2//50) bad lines,
    alternately a negative revenue or an empty customer_id; every 50th customer (from the 7th)
    has country code XX, unknown to `lookups/country_dim.csv` (the lookup default applies).
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

FIRST = [
    "Ana",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Gustav",
    "Hana",
    "Ivan",
    "Jon",
    "Kofi",
    "Lena",
    "Maya",
    "Nils",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Uma",
    "Yusuf",
]
LAST = [
    "Adams",
    "Berg",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kim",
    "Lopez",
    "Meyer",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Silva",
    "Weber",
]
CITIES = {
    "US": ["New York", "Austin", "Seattle", "Chicago"],
    "DE": ["Berlin", "Munich"],
    "FR": ["Paris", "Lyon"],
    "GB": ["London", "Leeds"],
    "IN": ["Pune", "Bengaluru"],
    "BR": ["Sao Paulo"],
    "JP": ["Tokyo", "Osaka"],
    "CA": ["Toronto"],
    "NL": ["Utrecht"],
}
COUNTRIES = list(CITIES)
STATUS_NEXT = {"placed": "paid", "paid": "shipped", "shipped": "delivered"}
YEAR_START = datetime(2024, 1, 1)
GH_START = datetime(2015, 1, 1, 15, 0, 0)


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _landed(path: Path) -> Path:
    """Date the finished file a minute back, as a drop that has settled: a file-drop run does
    not take files younger than its source's minAgeSeconds (default 10 s)."""
    settled = time.time() - 60
    os.utime(path, (settled, settled))
    return path


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return _landed(path)


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    return _landed(path)


def _person(rng: random.Random, domain: str = "example.com") -> tuple[str, str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return first, last, f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@{domain}"


def _phone(rng: random.Random) -> str:
    return f"+1-555-{rng.randint(100, 999):03d}-{rng.randint(0, 9999):04d}"


# ------------------------------------------------------------------------------ ecommerce


def _ecommerce_customers(rng: random.Random, n: int, land: Path) -> tuple[list[str], list[Path]]:
    n_upd, n_bad = max(1, n // 20), max(1, n // 50)
    n_base = max(1, n - n_upd - n_bad)
    header = [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "city",
        "country_code",
        "signup_date",
        "updated_at",
    ]
    base: list[list[object]] = []
    for i in range(1, n_base + 1):
        first, last, email = _person(rng, "shop.example")
        country = rng.choice(COUNTRIES)
        signup = YEAR_START - timedelta(days=rng.randint(0, 900))
        updated = signup + timedelta(hours=rng.randint(1, 48))
        base.append(
            [
                f"C{i:06d}",
                first,
                last,
                email,
                _phone(rng),
                rng.choice(CITIES[country]),
                country,
                signup.date().isoformat(),
                _ts(updated),
            ]
        )
    later: list[list[object]] = []
    for row in rng.sample(base, min(n_upd, len(base))):
        new = list(row)
        new[5] = rng.choice(CITIES[str(row[6])])
        new[4] = _phone(rng)
        new[3] = str(row[3]).replace("@", ".new@")
        later_by = timedelta(days=rng.randint(180, 360), minutes=rng.randint(0, 999))
        new[8] = _ts(YEAR_START + later_by)
        later.append(new)
    for j in range(n_bad):  # bad: e-mail without '@'; ids no order references
        first, last, _ = _person(rng)
        later.append(
            [
                f"C9{j:05d}",
                first,
                last,
                f"{first.lower()}-at-nowhere",
                _phone(rng),
                "Berlin",
                "DE",
                "2024-06-01",
                "2024-06-01 12:00:00",
            ]
        )
    rng.shuffle(later)
    files = [
        _write_csv(land / "customers_2024_01.csv", header, base),
        _write_csv(land / "customers_2024_07.csv", header, later),
    ]
    return [str(r[0]) for r in base], files


def _ecommerce_orders(rng: random.Random, n: int, customers: list[str], land: Path) -> list[Path]:
    n_upd, n_bad = max(1, n // 50), max(1, n // 100)
    n_base = max(2, n - n_upd - n_bad)
    weights = [rng.paretovariate(1.3) for _ in customers]  # a few heavy buyers, a long tail
    buyers = rng.choices(customers, weights=weights, k=n_base)
    stamps = sorted(
        YEAR_START + timedelta(seconds=rng.randint(0, 366 * 86400 - 1)) for _ in range(n_base)
    )
    statuses = ["delivered", "shipped", "paid", "placed", "cancelled", "returned"]
    rows: list[list[object]] = []
    for i, (customer, ts) in enumerate(zip(buyers, stamps, strict=True), start=1):
        quantity = rng.choices([1, 2, 3, 4, 5], weights=[50, 25, 12, 8, 5])[0]
        cents = int(round(10 ** rng.uniform(2.7, 4.6)))  # about 5 to 400 per unit
        status = rng.choices(statuses, weights=[55, 12, 10, 10, 8, 5])[0]
        rows.append(
            [
                f"O{i:07d}",
                customer,
                _ts(ts),
                status,
                rng.choice(["web", "web", "mobile", "marketplace"]),
                rng.choice(["card", "card", "paypal", "bank_transfer"]),
                quantity,
                f"{cents / 100:.2f}",
                f"{quantity * cents / 100:.2f}",
                "USD",
                _ts(ts + timedelta(minutes=rng.randint(0, 30))),
            ]
        )
    half = len(rows) // 2
    first, second = rows[:half], rows[half:]
    open_first = [r for r in first if r[3] in STATUS_NEXT] or first
    for row in rng.sample(open_first, min(n_upd, len(open_first))):
        new = list(row)
        new[3] = STATUS_NEXT.get(str(row[3]), "delivered")
        updated = datetime.fromisoformat(str(row[10]))
        new[10] = _ts(updated + timedelta(days=rng.randint(1, 10), minutes=rng.randint(1, 600)))
        second.append(new)
    for j in range(n_bad):
        bad = list(rng.choice(rows))
        bad[0] = f"O9{j:06d}"
        if j % 2 == 0:
            bad[8] = f"-{bad[8]}"  # negative amount
        else:
            bad[1] = ""  # missing customer
        second.append(bad)
    second.sort(key=lambda r: (str(r[10]), str(r[0])))
    header = [
        "order_id",
        "customer_id",
        "order_ts",
        "status",
        "channel",
        "payment_method",
        "quantity",
        "unit_price",
        "amount",
        "currency",
        "updated_at",
    ]
    return [
        _write_csv(land / "orders_2024_h1.csv", header, first),
        _write_csv(land / "orders_2024_h2.csv", header, second),
    ]


def _clickstream(rng: random.Random, n: int, customers: list[str], land: Path) -> list[Path]:
    n_dup, n_bad = max(1, n // 100), max(1, n // 200)
    n_good = max(1, n - n_dup - n_bad)
    pages = [
        "/",
        "/search",
        "/category/shoes",
        "/category/books",
        "/product/{}",
        "/cart",
        "/checkout",
    ]
    events: list[dict] = []
    session = 0
    while len(events) < n_good:
        session += 1
        customer = rng.choice(customers) if rng.random() < 0.7 else None
        device = rng.choice(["desktop", "mobile", "tablet"])
        referrer = rng.choice(["google", "direct", "newsletter", "instagram", None])
        ts = YEAR_START + timedelta(seconds=rng.randint(0, 366 * 86400 - 3600))
        funnel = ["page_view"] * rng.randint(1, 6) + ["product_view"] * rng.randint(0, 3)
        if rng.random() < 0.3:
            funnel += ["add_to_cart"] + (["checkout", "purchase"] if rng.random() < 0.5 else [])
        for kind in funnel[: n_good - len(events)]:
            ts += timedelta(seconds=rng.randint(5, 180))
            page = rng.choice(pages).format(rng.randint(1, 500))
            events.append(
                {
                    "event_id": f"E{len(events) + 1:09d}",
                    "session_id": f"S{session:08d}",
                    "customer_id": customer,
                    "event_type": kind,
                    "page_url": page,
                    "event_ts": _ts(ts),
                    "device": device,
                    "referrer": referrer,
                }
            )
    events.sort(key=lambda e: (e["event_ts"], e["event_id"]))
    thirds = [
        events[: len(events) // 3],
        events[len(events) // 3 : 2 * len(events) // 3],
        events[2 * len(events) // 3 :],
    ]
    for event in rng.sample(thirds[0] + thirds[1], n_dup):  # at-least-once delivery
        thirds[2].append(dict(event))
    for j in range(n_bad):
        bad: dict[str, str | None] = {**rng.choice(events), "event_id": f"E9{j:08d}"}
        if j % 2 == 0:
            bad["event_ts"] = None
        else:
            bad["event_type"] = "unknown"
        thirds[1].append(bad)
    return [
        _write_jsonl(land / f"clickstream_part{k + 1}.json", part) for k, part in enumerate(thirds)
    ]


# --------------------------------------------------------------------------------- github


def _github(rng: random.Random, n: int, land: Path) -> list[Path]:
    n_actors, n_renames = max(1, n // 4), max(1, n // 100)
    actors = []
    for uid in rng.sample(range(1_000_000, 10_000_000), n_actors):
        login = f"{rng.choice(FIRST).lower()}{rng.choice(LAST).lower()}{rng.randint(1, 99)}"
        actors.append({"id": uid, "login": login})
    acting = [rng.choice(actors) for _ in range(n)]
    # renamed: actors seen in both halves, who use a new login from the second half on
    both = {a["id"] for a in acting[: n // 2]} & {a["id"] for a in acting[n // 2 :]}
    eligible = [a for a in actors if a["id"] in both]
    picked = rng.sample(eligible, min(n_renames, len(eligible)))
    renamed = {a["id"]: a["login"] + "-dev" for a in picked}
    repos = [
        {
            "id": rng.randint(10_000_000, 30_000_000),
            "name": f"{rng.choice(actors)['login']}/{rng.choice(['api', 'web', 'etl', 'docs'])}",
        }
        for _ in range(max(1, n // 10))
    ]
    types = [
        "PushEvent",
        "WatchEvent",
        "CreateEvent",
        "IssuesEvent",
        "PullRequestEvent",
        "ForkEvent",
    ]
    actions = {"WatchEvent": "started", "IssuesEvent": "opened", "PullRequestEvent": "closed"}
    kinds: list[str] = []
    while len(kinds) < n:  # every block of six holds each type once: each file sees all types
        kinds += rng.sample(types, len(types))
    records = []
    for i in range(n):
        created = GH_START + timedelta(seconds=i * 3 + rng.randint(0, 2))
        actor = acting[i]
        login = renamed[actor["id"]] if actor["id"] in renamed and i >= n // 2 else actor["login"]
        kind = kinds[i]
        payload: dict = {}
        if kind == "PushEvent":
            size = rng.randint(1, 3)
            payload = {
                "size": size,
                "commits": [
                    {
                        "sha": f"{rng.getrandbits(160):040x}",
                        "message": f"Fix #{rng.randint(1, 900)}",
                        "author": {"name": login, "email": f"{login}@users.noreply.github.com"},
                        "distinct": True,
                    }
                    for _ in range(size)
                ],
            }
        elif kind in actions:
            payload = {"action": actions[kind]}
        repo = rng.choice(repos)
        records.append(
            {
                "id": str(2_489_651_045 + i),
                "type": kind,
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "actor": {
                    "id": actor["id"],
                    "login": login,
                    "gravatar_id": "",
                    "url": f"https://api.github.com/users/{login}",
                    "avatar_url": f"https://avatars.githubusercontent.com/u/{actor['id']}?",
                },
                "repo": {
                    "id": repo["id"],
                    "name": repo["name"],
                    "url": f"https://api.github.com/repos/{repo['name']}",
                },
                "payload": payload,
                "public": True,
            }
        )
    half = n // 2
    return [
        _write_jsonl(land / "events_part1.json", records[:half]),
        _write_jsonl(land / "events_part2.json", records[half:]),
    ]


# ------------------------------------------------------------------------------- customer


def _customer(rng: random.Random, n: int, land: Path) -> list[Path]:
    n_upd, n_bad = max(1, n // 20), max(1, n // 50)
    n_base = max(1, n - n_upd - n_bad)
    header = [
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "ssn",
        "country_code",
        "revenue",
        "updated_at",
    ]
    base: list[list[object]] = []
    for i in range(1, n_base + 1):
        first, last, email = _person(rng, "corp.example")
        country = "XX" if i % 50 == 7 else rng.choice(COUNTRIES)  # unknown to country_dim
        ssn = f"{rng.randint(100, 899):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        updated = datetime(2024, 1, 1) + timedelta(minutes=rng.randint(0, 180 * 1440))
        revenue = f"{rng.lognormvariate(7, 1.2):.2f}"
        base.append(
            [f"CU{i:06d}", first, last, email, _phone(rng), ssn, country, revenue, _ts(updated)]
        )
    later: list[list[object]] = []
    for row in rng.sample(base, min(n_upd, len(base))):
        new = list(row)
        new[7] = f"{float(str(row[7])) * rng.uniform(1.05, 1.6):.2f}"
        new[4] = _phone(rng)
        new[8] = _ts(datetime(2024, 7, 1) + timedelta(minutes=rng.randint(0, 90 * 1440)))
        later.append(new)
    for j in range(n_bad):
        bad = list(rng.choice(base))
        if j % 2 == 0:
            bad[0], bad[7] = f"CU9{j:05d}", f"-{bad[7]}"  # negative revenue
        else:
            bad[0] = ""  # missing key
        later.append(bad)
    rng.shuffle(later)
    return [
        _write_csv(land / "customer_part1.csv", header, base),
        _write_csv(land / "customer_part2.csv", header, later),
    ]


def generate(data_dir: Path, rows: int = 1000, seed: int = 42) -> dict[str, list[Path]]:
    """Write the sample landing files of all example apps; returns `<app>.<source>` -> files.

    Byte-identical for the same `rows` and `seed`; `rows` must be at least 50.
    """
    if rows < 50:
        raise ValueError(f"rows must be at least 50, got {rows}")
    data_dir = Path(data_dir)
    rng = random.Random(seed)
    shop = data_dir / "ecommerce" / "landing"
    customer_ids, customer_files = _ecommerce_customers(rng, rows // 5, shop / "customers")
    return {
        "ecommerce.customers": customer_files,
        "ecommerce.orders": _ecommerce_orders(rng, rows, customer_ids, shop / "orders"),
        "ecommerce.clickstream": _clickstream(rng, rows * 3, customer_ids, shop / "clickstream"),
        "github.events": _github(rng, rows, data_dir / "github" / "landing" / "events"),
        "customer.customers": _customer(
            rng, rows // 2, data_dir / "customer" / "landing" / "customers"
        ),
    }


def settle(pipelines_dir: Path, apps: Iterable[str] | None = None) -> float:
    """Wait until files just written to landing are older than the watched sources'
    minAgeSeconds (of `apps`, else of every app): a file-drop run takes a file only once it
    has sat that long in landing, counted from when it appeared there, so sample data cannot
    be backdated. Returns the seconds waited."""
    import time

    from datahub_assets.spec.loader import load_project

    chosen = set(apps) if apps is not None else None
    project = load_project(pipelines_dir)
    wait = max(
        (
            s.watch.min_age_seconds
            for p in project.pipelines
            if chosen is None or p.app in chosen
            for s in p.watched_sources
        ),
        default=0,
    )
    if wait:
        time.sleep(wait + 0.5)
    return wait
