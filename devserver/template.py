"""template.yaml, read for the local stack and the tests: the one description of the system.

What the local stack creates (the jobs ledger's table, today) comes from the template's own
resource definitions, never from a second copy: change the template and the local stack follows.

Example::

    create_table(dynamodb, "JobsTable", "xnat-upload-jobs")  # key schema, indexes, TTL of template.yaml
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


def parameters(**overrides: str) -> dict[str, str]:
    """The template's parameters at their defaults, with `overrides` (as `sam deploy` would pass them)."""
    declared = template().get("Parameters", {})
    values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    return {**values, **overrides}


def resolve(value: Any, params: dict[str, str], arns: dict[str, str] | None = None) -> Any:
    """The few intrinsic functions the local stack meets: Ref of a parameter, FindInMap, GetAtt <id>.Arn
    (from `arns`, the ARNs of what the local stack created for those logical ids)."""
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and argument in params:
            return params[argument]
        if function == "Fn::FindInMap":
            mapping, key, attribute = (resolve(part, params, arns) for part in argument)
            return template()["Mappings"][mapping][str(key)][attribute]
        if function == "Fn::GetAtt" and arns is not None:
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            if attribute == "Arn" and logical_id in arns:
                return arns[logical_id]
        raise ValueError(f"the local stack cannot resolve {value!r}")
    if isinstance(value, dict):
        return {key: resolve(item, params, arns) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, params, arns) for item in value]
    return value


# What CreateQueue takes of an AWS::SQS::Queue's properties (encryption and tags are deployment matters).
_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
)


def queue_attributes(logical_id: str, params: dict[str, str], arns: dict[str, str]) -> dict[str, str]:
    """CreateQueue's attributes for a queue of the template: FIFO settings, visibility, retention, redrive."""
    properties = resource(logical_id)["Properties"]
    attributes = {
        name: _text(resolve(properties[name], params, arns)) for name in _QUEUE_ATTRIBUTES if name in properties
    }
    if "RedrivePolicy" in properties:
        policy = resolve(properties["RedrivePolicy"], params, arns)
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": int(policy["maxReceiveCount"])}
        )
    return attributes


@dataclass(frozen=True)
class EventSourceMapping:
    """What Lambda's event source mapping of a function's SQS event does, as the template configures it."""

    queue: str  # the queue's logical id
    batch_size: int
    maximum_concurrency: int | None
    function_timeout: float


def sqs_event_source(function: str, params: dict[str, str]) -> EventSourceMapping:
    """The SQS event of `function` (there is one per function here) and the function's timeout."""
    properties = resource(function)["Properties"]
    globals_ = template().get("Globals", {}).get("Function", {})
    timeout = float(resolve(properties.get("Timeout", globals_.get("Timeout", 3)), params))
    for event in properties.get("Events", {}).values():
        if event["Type"] != "SQS":
            continue
        source = event["Properties"]
        queue = source["Queue"]["Fn::GetAtt"]
        concurrency = (source.get("ScalingConfig") or {}).get("MaximumConcurrency")
        return EventSourceMapping(
            queue=queue[0] if isinstance(queue, list) else queue.split(".", 1)[0],
            batch_size=int(resolve(source.get("BatchSize", 10), params)),
            maximum_concurrency=None if concurrency is None else int(resolve(concurrency, params)),
            function_timeout=timeout,
        )
    raise ValueError(f"{function} has no SQS event in template.yaml")


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
