"""template.yaml's jobs ledger, job-end events and sweeper: what the code relies on is deployed."""

from __future__ import annotations

from typing import Any

import pytest

from devserver.template import parameters, queue_attributes, resource, sqs_event_source, table_definition, template

WRITERS = ("ManifestTriggerFunction", "UploadWorkerFunction", "JobSweeperFunction")
EVERY_FUNCTION = (*WRITERS, "UploadApiFunction")


@pytest.fixture(scope="module")
def decoded() -> dict[str, Any]:
    return template()


def _statements(function: str) -> list[dict[str, Any]]:
    found = []
    for policy in resource(function)["Properties"]["Policies"]:
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
    return found


def _actions(function: str, on: str) -> set[str]:
    """Every action `function` may take on resources whose text mentions `on`."""
    granted: set[str] = set()
    for statement in _statements(function):
        if on in str(statement.get("Resource")):
            actions = statement["Action"]
            granted |= {actions} if isinstance(actions, str) else set(actions)
    return granted


def test_the_ledger_is_on_demand_recoverable_encrypted_and_expires_items(decoded: dict[str, Any]) -> None:
    table = resource("JobsTable")
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["DeletionPolicy"] == "Retain", "months of job history survive a stack deletion"
    assert decoded["Parameters"]["LedgerRetentionDays"]["Default"] == 365


def test_the_ledger_has_the_indexes_the_code_queries() -> None:
    from xnat_upload.job.ledger.dynamodb import INDEX_ALL, INDEX_STATE, INDEX_STATUS

    definition = table_definition("JobsTable")
    indexes = {
        index["IndexName"]: [key["AttributeName"] for key in index["KeySchema"]]
        for index in definition["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        INDEX_ALL: ["kind", "submitted_at"],
        INDEX_STATUS: ["status", "submitted_at"],
        INDEX_STATE: ["state", "updated_at"],
    }
    assert definition["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]


@pytest.mark.parametrize("function", EVERY_FUNCTION)
def test_every_function_knows_the_ledger_and_where_job_end_events_go(decoded: dict[str, Any], function: str) -> None:
    env = decoded["Globals"]["Function"]["Environment"]["Variables"]
    assert env["JOBS_TABLE"] == {"Ref": "JobsTable"}
    assert env["EVENT_BUS_NAME"] == {"Ref": "EventBusName"} and env["EVENT_SOURCE"] == "xnat-upload"
    assert env["JOB_MAX_RECEIVE_COUNT"] == {"Ref": "JobMaxReceiveCount"}, "the job queue's redrive count"
    assert env["JOB_QUEUE_VISIBILITY_SECONDS"] == {
        "Fn::FindInMap": ["JobQueueVisibility", {"Ref": "FunctionTimeout"}, "Seconds"]
    }
    local = resource(function)["Properties"].get("Environment", {}).get("Variables", {})
    assert not {"JOBS_TABLE", "EVENT_BUS_NAME"} & set(local), "one value for every function"


@pytest.mark.parametrize("function", WRITERS)
def test_the_functions_that_end_jobs_may_announce_them_on_the_bus_only(function: str) -> None:
    (statement,) = [s for s in _statements(function) if "events:PutEvents" in str(s["Action"])]
    assert statement["Action"] == "events:PutEvents"
    assert "event-bus/${EventBusName}" in str(statement["Resource"])


def test_each_function_gets_only_the_ledger_actions_it_uses() -> None:
    table = "JobsTable"
    assert _actions("ManifestTriggerFunction", table) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert _actions("UploadWorkerFunction", table) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert _actions("JobSweeperFunction", table) == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"}
    assert _actions("UploadApiFunction", table) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}
    for function in EVERY_FUNCTION:
        assert not {"dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:*"} & _actions(function, table), function


def test_the_sweeper_runs_on_a_schedule_and_reads_no_queue(decoded: dict[str, Any]) -> None:
    properties = resource("JobSweeperFunction")["Properties"]
    (event,) = properties["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Fn::Sub": "rate(${SweepIntervalMinutes} minutes)"}
    assert decoded["Parameters"]["SweepIntervalMinutes"]["MinValue"] >= 2  # "rate(1 minutes)" is not valid
    assert properties["CodeUri"] == "functions/job_sweeper/"
    assert not any(action.startswith("sqs:") for s in _statements("JobSweeperFunction") for action in
                   ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])), "it never takes a dead letter"  # fmt: skip
    # The checkpoint it reads and the result it writes live under results/: nothing else of the bucket.
    s3 = [s for s in _statements("JobSweeperFunction") if "s3:GetObject" in str(s["Action"])]
    assert all(str(s["Resource"]).endswith("/results/*}") or "results/*" in str(s["Resource"]) for s in s3)


def test_a_crashed_intake_record_can_be_deferred_on_its_own_queue() -> None:
    assert _actions("ManifestTriggerFunction", "IntakeQueue") >= {"sqs:ChangeMessageVisibility", "sqs:GetQueueUrl"}
    env = resource("ManifestTriggerFunction")["Properties"]["Environment"]["Variables"]
    redrive = queue_attributes("IntakeQueue", parameters(), {"IntakeDeadLetterQueue": "arn"})["RedrivePolicy"]
    assert f'"maxReceiveCount": {env["INTAKE_MAX_RECEIVE_COUNT"]}' in redrive, "the intake knows its last delivery"


def test_the_local_stack_reads_the_event_source_mappings_from_the_template() -> None:
    worker = sqs_event_source("UploadWorkerFunction", parameters())
    assert (worker.queue, worker.batch_size, worker.maximum_concurrency) == ("JobQueue", 1, 4)
    assert worker.function_timeout == 900
    intake = sqs_event_source("ManifestTriggerFunction", parameters())
    assert (intake.queue, intake.batch_size) == ("IntakeQueue", 10)


def test_the_stack_outputs_name_the_ledger_and_the_sweeper(decoded: dict[str, Any]) -> None:
    outputs = decoded["Outputs"]
    assert outputs["JobsTableName"]["Value"] == {"Ref": "JobsTable"}
    assert outputs["JobSweeperFunctionArn"]["Value"] == {"Fn::GetAtt": ["JobSweeperFunction", "Arn"]}
