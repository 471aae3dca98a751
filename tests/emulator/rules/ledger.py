"""The function's ledger table (DynamoDB, served by moto), as template.yaml
defines it.

The table exists in every region from the first DynamoDB request there on,
and again after every reset, under the README's default name
(``ami-publisher-ledger``, what the tests give the function as
``LEDGER_TABLE``). Its key schema, attribute definitions, indexes and
billing mode are read from template.yaml's ``LedgerTable`` resource, never
repeated here, so that the function finds the table it would find on AWS.
Everything else about the table (conditional writes, queries) is moto's
DynamoDB.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from .common import DEFAULT_ACCOUNT

TABLE_NAME = "ami-publisher-ledger"
TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"

_definition: dict[str, Any] | None = None
_definition_lock = threading.Lock()


def definition() -> dict[str, Any]:
    """LedgerTable's Properties from template.yaml (read once, at start:
    server.py asks before it serves). The table's properties use no
    CloudFormation function, so the intrinsic-function tags elsewhere in
    the template are read as nothing."""
    global _definition
    with _definition_lock:
        if _definition is None:
            import yaml

            class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
                pass

            Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
            with open(TEMPLATE, encoding="utf-8") as f:
                template = yaml.load(f, Loader=Loader)
            _definition = dict(template["Resources"]["LedgerTable"]["Properties"])
        return _definition


def ensure_table(region: str, account: str = DEFAULT_ACCOUNT) -> None:
    """Creates the ledger table in the account's region unless it exists.
    Called with the emulator's lock held, before a DynamoDB request."""
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[account][region]
    if TABLE_NAME in backend.tables:
        return
    props = definition()
    backend.create_table(
        TABLE_NAME,
        schema=[dict(k) for k in props["KeySchema"]],
        throughput=None,
        attr=[dict(a) for a in props["AttributeDefinitions"]],
        global_indexes=props.get("GlobalSecondaryIndexes"),
        indexes=props.get("LocalSecondaryIndexes"),
        streams=None,
        billing_mode=props.get("BillingMode", "PROVISIONED"),
        sse_specification=props.get("SSESpecification"),
        tags=[],
        deletion_protection_enabled=None,
        warm_throughput=None,
    )
