"""Schema inference over sampled MongoDB documents (pure Python: no server, no Spark)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from bson import Decimal128, Int64, ObjectId

from datahub_assets.execute.mongo.infer import (
    DOUBLE,
    INT,
    LONG,
    OBJECTID,
    STRING,
    ArrayT,
    DecimalT,
    MapT,
    Scalar,
    StructT,
    flat_paths,
    infer_schema,
    to_json_schema,
    type_name,
    widen,
)
from datahub_assets.execute.schemas import parse_schema

DOCS = [
    {
        "_id": ObjectId(),
        "qty": 1,
        "price": 2,
        "big": Int64(5),
        "name": "a",
        "ok": True,
        "at": datetime(2024, 1, 1),
        "amount": Decimal128("1.50"),
        "mixed": 1,
        "customer": {"id": 1, "addr": {"city": "x"}},
        "items": [{"sku": "a", "n": 1}],
        "tags": ["a"],
        "empty": [],
        "nothing": None,
    },
    {
        "_id": ObjectId(),
        "qty": 2,
        "price": 2.5,
        "big": 7,
        "name": "b",
        "ok": False,
        "at": datetime(2024, 1, 2),
        "amount": Decimal128("2.125"),
        "mixed": "two",
        "customer": {"id": 2, "vip": True},
        "items": [{"sku": "b", "w": 1.5}, {"sku": "c"}],
        "tags": [],
        "empty": [],
        "nothing": None,
        "late": {"x": 1},
    },
]


def test_documented_schema_of_mixed_missing_and_nested_fields():
    schema = infer_schema(DOCS)
    got = {f.name: (type_name(f.type), f.nullable) for f in schema.fields}
    assert got == {
        "_id": ("string", False),
        "qty": ("int", False),
        "price": ("double", False),  # int + double -> double
        "big": ("bigint", False),  # int64 + int32 -> bigint
        "name": ("string", False),
        "ok": ("boolean", False),
        "at": ("timestamp", False),
        "amount": ("decimal(38,3)", False),  # largest scale seen
        "mixed": ("string", False),  # int + string -> string
        "customer": ("struct<id:int,addr:struct<city:string>,vip:boolean>", False),
        "items": ("array<struct<sku:string,n:int,w:double>>", False),
        "tags": ("array<string>", False),
        "empty": ("array<string>", False),  # never an element: string
        "nothing": ("string", True),  # only null
        "late": ("struct<x:int>", True),  # missing from the first document
    }
    customer = schema.field("customer").type
    assert {f.name: f.nullable for f in customer.fields} == {"id": False, "addr": True, "vip": True}
    assert schema.field("_id").type == OBJECTID


def test_widening_rules():
    assert widen(INT, LONG) == LONG
    assert widen(LONG, DOUBLE) == DOUBLE
    assert widen(DecimalT(2), INT) == DecimalT(2)
    assert widen(DecimalT(2), DecimalT(4)) == DecimalT(4)
    assert widen(DecimalT(2), DOUBLE) == DOUBLE
    assert widen(OBJECTID, STRING) == STRING
    assert widen(ArrayT(INT), ArrayT(DOUBLE)) == ArrayT(DOUBLE)
    assert widen(StructT(()), INT) == STRING  # document + number -> JSON text
    assert widen(ArrayT(INT), INT) == STRING
    assert widen(Scalar("bool"), INT) == STRING


def test_documents_with_dynamic_keys_become_maps():
    docs = [
        {"_id": i, "scores": {f"2024-01-{d:02d}": float(d) for d in range(1, 4)}} for i in range(3)
    ]
    schema = infer_schema(docs)
    assert schema.field("scores").type == MapT(DOUBLE)
    many = [{"attrs": {f"k{i}": i for i in range(100)}}]
    assert type_name(infer_schema(many).field("attrs").type) == "map<string,int>"


def test_json_schema_round_trips_through_load_schema():
    schema = infer_schema(DOCS)
    doc = to_json_schema(schema, "shop.orders", sampled=2)
    spark = parse_schema(json.dumps(doc), "orders.json")
    types = {f.name: (f.dataType.simpleString(), f.nullable) for f in spark.fields}
    assert types["_id"] == ("string", False)
    assert types["qty"] == ("bigint", False)  # JSON Schema integer loads as bigint
    assert types["at"] == ("timestamp", False)
    assert types["amount"] == ("string", False)  # Decimal128 pinned as text
    assert types["late"] == ("struct<x:bigint>", True)
    assert types["items"][0] == "array<struct<sku:string,n:bigint,w:double>>"
    assert doc["properties"]["_id"]["bsonType"] == "objectId"
    assert "late" not in doc["required"]
    assert "_id" in doc["required"]


def test_flat_paths_follow_flatten_names():
    schema = infer_schema(DOCS)
    paths = flat_paths(schema)
    assert paths["customer_addr_city"] == ("customer", "addr", "city")
    assert paths["customer_id"] == ("customer", "id")
    assert paths["items"] == ("items",)


def test_empty_sample_and_decimal_scale():
    assert infer_schema([]).fields == ()
    s = infer_schema([{"d": Decimal("1.2345")}, {"d": Decimal128("10")}])
    assert type_name(s.field("d").type) == "decimal(38,4)"
