"""template.yaml, read for the local stack and the tests: the one description of the system.

What the local stack creates (the jobs ledger's table, today) comes from the template's own
resource definitions, never from a second copy: change the template and the local stack follows.

Example::

    create_table(dynamodb, "JobsTable", "xnat-upload-jobs")  # key schema, indexes, TTL of template.yaml
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
# What CreateTable takes of an AWS::DynamoDB::Table's properties (the rest is deployment: PITR, SSE, tags).
_TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes")


@cache
def template() -> dict[str, Any]:
    """template.yaml decoded (intrinsic functions such as !Ref as plain dicts), as cfn-lint reads it."""
    from cfnlint.decode import decode_str

    decoded, problems = decode_str(TEMPLATE.read_text(encoding="utf-8"))
    if problems or decoded is None:
        raise ValueError(f"template.yaml does not decode: {[str(p) for p in problems]}")
    return dict(decoded)


def resource(logical_id: str) -> dict[str, Any]:
    return dict(template()["Resources"][logical_id])


def table_definition(logical_id: str) -> dict[str, Any]:
    """CreateTable's arguments for a table of the template (billing on demand, as deployed)."""
    properties = resource(logical_id)["Properties"]
    definition = {name: properties[name] for name in _TABLE_PROPERTIES if name in properties}
    return {**definition, "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST")}


def create_table(dynamodb: Any, logical_id: str, name: str) -> str:
    """Create `name` as the template defines `logical_id` (indexes and time to live included)."""
    dynamodb.create_table(TableName=name, **table_definition(logical_id))
    ttl = resource(logical_id)["Properties"].get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=dict(ttl))
    return name
