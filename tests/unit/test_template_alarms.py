"""Alarms, the alarm topic, the dashboard and the saved Logs Insights queries of template.yaml (docs/alarms.md).

Every alarm must reach someone whatever the deployment chose: the stack's own encrypted topic (AlarmTopicArn empty,
the default) or the topic AlarmTopicArn names. The alarms on the service's own metrics must name exactly what
Powertools publishes (namespace, metric, the `service` dimension), or they would watch a metric nobody writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
ALARM_TOPIC = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
GIVEN_TOPIC = "arn:aws:sns:us-east-1:123456789012:xnat-upload-alarms"
# Alarms on something that must never happen fire at the first occurrence: nothing to tune.
ANY_OCCURRENCE = {
    "IntakeDeadLetterQueueNewMessagesAlarm",
    "JobDeadLetterQueueNewMessagesAlarm",
    "JobsGivenUpAlarm",
    "JobsCrashedAlarm",
    "IntakeErrorsAlarm",
    "UploadWorkerErrorsAlarm",
    "ManifestTriggerErrorsAlarm",
    "UploadApiErrorsAlarm",
    "JobSweeperErrorsAlarm",
}
# The service's own metrics that an alarm watches (the lead's names in docs/alarms.md).
SERVICE_METRIC_ALARMS = {
    "XnatWaitsAlarm": "XnatWaits",
    "JobsFailedAlarm": "JobsFailed",
    "JobsPartialAlarm": "JobsPartial",
    "JobsGivenUpAlarm": "JobsGivenUp",
    "JobsCrashedAlarm": "JobsCrashed",
    "IntakeErrorsAlarm": "IntakeErrors",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    decoded, problems = decode_str((ROOT / "template.yaml").read_text(encoding="utf-8"))
    assert not problems and decoded is not None
    return decoded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"])


@pytest.fixture(scope="module")
def alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert found
    return found


def _resolve(node: Any, template: dict[str, Any], values: dict[str, str]) -> Any:
    """A fragment with its conditions decided and its parameters replaced, as CloudFormation would for `values`
    (the other parameters at their defaults); resources stay {"Ref": name}. AWS::NoValue becomes None."""
    params = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()} | values

    def condition(name: str) -> bool:
        return bool(evaluate(template["Conditions"][name]))

    def evaluate(n: Any) -> Any:
        if isinstance(n, list):
            return [v for v in (evaluate(i) for i in n) if v is not None]
        if not isinstance(n, dict):
            return n
        if len(n) == 1:
            ((key, arg),) = n.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return None
            if key == "Ref" and arg in params:
                return params[arg]
            if key == "Fn::If":
                return evaluate(arg[1] if condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return str(evaluate(arg[0])) == str(evaluate(arg[1]))
            if key == "Fn::Not":
                return not evaluate(arg[0])
            if key == "Fn::And":
                return all(evaluate(a) for a in arg)
            if key == "Fn::Or":
                return any(evaluate(a) for a in arg)
            if key == "Condition":
                return condition(arg)
        return {k: v for k, v in ((k, evaluate(v)) for k, v in n.items()) if v is not None}

    return evaluate(node)


def _exists(resource: dict[str, Any], template: dict[str, Any], values: dict[str, str]) -> bool:
    name = resource.get("Condition")
    return name is None or bool(_resolve({"Condition": name}, template, values))


VARIANTS = {
    "the stack's own topic": {},
    "the stack's own topic and an e-mail": {"AlarmEmail": "ops@example.org"},
    "a given topic": {"AlarmTopicArn": GIVEN_TOPIC},
    "a given topic and an e-mail": {"AlarmTopicArn": GIVEN_TOPIC, "AlarmEmail": "ops@example.org"},
}


# ---------------------------------------------------------------- the topic


@pytest.mark.parametrize("variant", sorted(VARIANTS), ids=str)
def test_every_alarm_notifies_the_alarm_topic(
    template: dict[str, Any], resources: dict[str, Any], alarms: dict[str, dict[str, Any]], variant: str
) -> None:
    values = VARIANTS[variant]
    topic = GIVEN_TOPIC if "AlarmTopicArn" in values else {"Ref": "AlarmTopic"}
    assert _exists(resources["AlarmTopic"], template, values) is ("AlarmTopicArn" not in values)
    for name, alarm in alarms.items():
        assert _exists(resources[name], template, values), f"{name} exists in every deployment"
        actions = _resolve(alarm, template, values)
        assert actions["AlarmActions"] == [topic], name
        assert actions.get("OKActions", [topic]) == [topic], name


@pytest.mark.parametrize("variant", sorted(VARIANTS), ids=str)
def test_the_email_subscription_exists_only_with_an_address(
    template: dict[str, Any], resources: dict[str, Any], variant: str
) -> None:
    values = VARIANTS[variant]
    subscriptions = {n: r for n, r in resources.items() if r["Type"] == "AWS::SNS::Subscription"}
    assert set(subscriptions) == {"AlarmEmailSubscription"}
    subscription = subscriptions["AlarmEmailSubscription"]
    assert _exists(subscription, template, values) is ("AlarmEmail" in values)
    props = _resolve(subscription["Properties"], template, values)
    assert props["Protocol"] == "email"
    assert props["TopicArn"] == (GIVEN_TOPIC if "AlarmTopicArn" in values else {"Ref": "AlarmTopic"})
    if "AlarmEmail" in values:
        assert props["Endpoint"] == values["AlarmEmail"]


def test_the_alarm_parameters_are_optional(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["AlarmTopicArn"]["Default"] == "" and params["AlarmEmail"]["Default"] == ""
    email = params["AlarmEmail"]["AllowedPattern"]
    for good in ("", "ops@example.org", "first.last+xnat@sub.example.ac.uk"):
        assert re.fullmatch(email, good), good
    for bad in ("ops", "ops@", "@example.org", "ops@example"):
        assert not re.fullmatch(email, bad), bad


def test_the_stacks_topic_is_encrypted_with_a_key_cloudwatch_may_use(resources: dict[str, Any]) -> None:
    """AWS's managed SNS key (alias/aws/sns) does not let CloudWatch publish: the topic has a key of its own."""
    topic = resources["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic" and topic["Condition"] == "CreateAlarmTopic"
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Condition"] == "CreateAlarmTopic"
    assert key["Properties"]["EnableKeyRotation"] is True
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    policy = resources["AlarmTopicPolicy"]
    assert policy["Condition"] == "CreateAlarmTopic"
    (publish,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # Only this stack's alarms, whose names CloudFormation starts with the stack's name.
    assert publish["Condition"]["ArnLike"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*"
    }
    assert all(
        "AlarmName" not in alarm["Properties"]
        for alarm in resources.values()
        if alarm["Type"] == "AWS::CloudWatch::Alarm"
    )


# ---------------------------------------------------------------- the alarms


def test_every_threshold_is_a_parameter_unless_any_occurrence_alarms(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    for name, alarm in alarms.items():
        threshold = alarm["Threshold"]
        if name in ANY_OCCURRENCE:
            assert threshold == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold", name
            continue
        assert isinstance(threshold, dict) and set(threshold) == {"Ref"}, f"{name}: Threshold: !Ref <a parameter>"
        param = template["Parameters"][threshold["Ref"]]
        assert param["Type"] == "Number" and "Default" in param, name
        assert threshold["Ref"] in alarm["AlarmDescription"], f"{name}: its description names {threshold['Ref']}"


def test_every_alarm_treats_missing_data_as_nothing_wrong(alarms: dict[str, dict[str, Any]]) -> None:
    """No data is the normal state of these metrics (no job, no error, an idle queue)."""
    for name, alarm in alarms.items():
        assert alarm["TreatMissingData"] == "notBreaching", name


def _metric(alarm: dict[str, Any]) -> tuple[Any, str, dict[str, Any]]:
    return alarm["Namespace"], alarm["MetricName"], {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def test_the_service_metric_alarms_watch_what_powertools_publishes(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    """The alarms' metric identity is the one of Powertools' EMF output under the functions' environment."""
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace = template["Parameters"]["MetricsNamespace"]["Default"]
    metrics = Metrics(service=env["POWERTOOLS_SERVICE_NAME"], namespace=namespace)
    for metric in SERVICE_METRIC_ALARMS.values():
        metrics.add_metric(name=metric, unit="Count", value=1)
    emf = metrics.serialize_metric_set()
    metrics.clear_metrics()
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    published = {
        (directive["Namespace"], m["Name"], tuple((d, emf[d]) for d in directive["Dimensions"][0]))
        for m in directive["Metrics"]
    }
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    for name, metric in SERVICE_METRIC_ALARMS.items():
        alarm_namespace, alarm_metric, dimensions = _metric(alarms[name])
        assert alarm_namespace == {"Ref": "MetricsNamespace"}, name
        assert (namespace, alarm_metric, tuple(dimensions.items())) in published, name
        assert alarm_metric == metric and alarms[name]["Statistic"] == "Sum", name


@pytest.mark.parametrize("queue", ["IntakeQueue", "JobQueue"])
def test_both_queues_alarm_on_the_age_of_their_oldest_message(alarms: dict[str, dict[str, Any]], queue: str) -> None:
    (alarm,) = [
        a
        for a in alarms.values()
        if a.get("MetricName") == "ApproximateAgeOfOldestMessage"
        and a["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    ]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["Statistic"] == "Maximum"


@pytest.mark.parametrize("queue", ["IntakeDeadLetterQueue", "JobDeadLetterQueue"])
def test_every_new_dead_lettered_message_notifies_and_old_ones_remind(
    alarms: dict[str, dict[str, Any]], queue: str
) -> None:
    """An alarm already in ALARM does not notify again: the depth's increase per period does, once per new message
    period; messages moved by a redrive policy are not in NumberOfMessagesSent, so that metric cannot."""
    new = alarms[f"{queue}NewMessagesAlarm"]
    queries = {q["Id"]: q for q in new["Metrics"]}
    dimension = [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert queries["visible"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert queries["inflight"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    for query in (queries["visible"], queries["inflight"]):
        assert query["MetricStat"]["Metric"]["Dimensions"] == dimension and query["ReturnData"] is False
    assert queries["added"]["Expression"] == "DIFF(FILL(visible, 0) + FILL(inflight, 0))"
    assert queries["added"]["ReturnData"] is True
    assert "NumberOfMessagesSent" not in json.dumps(new)
    assert (new["EvaluationPeriods"], new["DatapointsToAlarm"]) == (2, 1)
    assert "OKActions" not in new, "back to OK after every message: no mail for that"

    old = alarms[f"{queue}OldestMessageAlarm"]
    assert _metric(old) == ("AWS/SQS", "ApproximateAgeOfOldestMessage", {"QueueName": dimension[0]["Value"]})
    assert old["Threshold"] == {"Ref": "DeadLetterAgeAlarmSeconds"}


def test_the_dead_letter_reminder_comes_before_sqs_deletes_the_message(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    param = template["Parameters"]["DeadLetterAgeAlarmSeconds"]
    for queue in ("IntakeDeadLetterQueue", "JobDeadLetterQueue"):
        retention = resources[queue]["Properties"]["MessageRetentionPeriod"]
        assert param["Default"] < retention and param["MaxValue"] <= retention, queue


def test_the_worker_alarms_on_throttles_and_on_ending_close_to_its_timeout(alarms: dict[str, dict[str, Any]]) -> None:
    throttles = alarms["UploadWorkerThrottlesAlarm"]
    assert _metric(throttles) == ("AWS/Lambda", "Throttles", {"FunctionName": {"Ref": "UploadWorkerFunction"}})
    headroom = alarms["UploadWorkerHeadroomAlarm"]
    queries = {q["Id"]: q for q in headroom["Metrics"]}
    duration = queries["duration"]["MetricStat"]
    assert duration["Metric"]["MetricName"] == "Duration" and duration["Stat"] == "Maximum"
    assert duration["Metric"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "UploadWorkerFunction"}}]
    assert queries["headroom"]["Expression"] == {"Fn::Sub": "${FunctionTimeout} - duration / 1000"}
    assert headroom["ComparisonOperator"] == "LessThanThreshold"


def test_the_headroom_alarm_stays_inside_the_workers_own_margin(template: dict[str, Any]) -> None:
    """The worker stops at TIME_BUDGET_MARGIN_SECONDS (20) before its timeout and cuts calls at half of it: a normal
    long invocation ends with about 10 s left, so the default alarms only below that."""
    from xnat_upload.config import Settings

    margin = Settings.__dataclass_fields__["time_budget_margin_seconds"].default
    assert template["Parameters"]["WorkerHeadroomAlarmSeconds"]["Default"] < margin / 2


def test_the_api_alarms_on_5xx_and_on_slow_status_reads(template: dict[str, Any], alarms: dict[str, Any]) -> None:
    """SAM names the REST API after the stack (its OpenAPI title): the ApiName dimension."""
    stage = template["Resources"]["UploadApi"]["Properties"]["StageName"]
    errors = alarms["UploadApiServerErrorsAlarm"]
    assert _metric(errors) == ("AWS/ApiGateway", "5XXError", {"ApiName": {"Ref": "AWS::StackName"}, "Stage": stage})
    latency = alarms["UploadApiLatencyAlarm"]
    assert _metric(latency) == (
        "AWS/ApiGateway",
        "Latency",
        {"ApiName": {"Ref": "AWS::StackName"}, "Stage": stage, "Method": "GET", "Resource": "/jobs/{job_id}"},
    )
    assert latency["ExtendedStatistic"] == "p90"
    # Per-method metrics exist only with detailed metrics on.
    assert template["Resources"]["UploadApi"]["Properties"]["MethodSettings"][0]["MetricsEnabled"] is True


# ---------------------------------------------------------------- dashboard and saved queries


def _dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON with every ${...} replaced as CloudFormation would (resources by a made-up name)."""
    dashboards = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    (dashboard,) = dashboards
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    params = template["Parameters"]

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in params:
            return str(params[name]["Default"])
        if name.startswith("AWS::"):
            return {"AWS::Region": "us-east-1", "AWS::StackName": "xnat-s3-uploader"}[name]
        resource = name.split(".")[0]
        assert resource in template["Resources"], f"the dashboard names {name}, which the template does not have"
        return f"resolved-{resource}"

    return dict(json.loads(re.sub(r"\$\{([\w:.]+)\}", substitute, body)))


def test_the_dashboard_shows_what_an_operator_watches(template: dict[str, Any]) -> None:
    body = _dashboard_body(template)
    widgets = body["widgets"]
    titles = " | ".join(w["properties"]["title"] for w in widgets)
    for topic in (
        "Jobs by status",
        "Files per hour",
        "Bytes uploaded per hour",
        "Queues: messages",
        "age of the oldest message",
        "Dead-letter queues",
        "waiting for XNAT",
        "XNAT requests and retries",
        "Worker duration",
        "4XX, 5XX",
        "API latency",
    ):
        assert topic in titles, topic
    names = {m[1] for w in widgets for m in w["properties"]["metrics"]}
    assert {"JobsSucceeded", "JobsPartial", "JobsFailed", "XnatWaits", "XnatRequests", "XnatRetries"} <= names
    assert {"ApproximateAgeOfOldestMessage", "Duration", "Throttles", "4XXError", "5XXError", "Latency"} <= names
    for widget in widgets:
        for annotation in widget["properties"].get("annotations", {}).get("horizontal", []):
            assert isinstance(annotation["value"], int), annotation  # a number, not a string


def test_the_dashboard_url_is_an_output(template: dict[str, Any]) -> None:
    assert "OperationsDashboard" in template["Outputs"]["OperationsDashboardUrl"]["Value"]["Fn::Sub"]


def test_both_saved_queries_read_every_functions_log_group(resources: dict[str, Any]) -> None:
    queries = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Logs::QueryDefinition"}
    assert set(queries) == {"OneJobQuery", "ErrorsQuery"}
    function_groups = {
        n
        for n, r in resources.items()
        if r["Type"] == "AWS::Logs::LogGroup" and "/aws/lambda/" in json.dumps(r["Properties"]["LogGroupName"])
    }
    assert len(function_groups) >= 3
    for name, query in queries.items():
        assert {g["Ref"] for g in query["LogGroupNames"]} == function_groups, name
    assert 'correlation_id = "JOB_ID"' in queries["OneJobQuery"]["QueryString"]
    assert "JOB_ID" in queries["OneJobQuery"]["Name"]["Fn::Sub"]
    assert 'level = "ERROR"' in queries["ErrorsQuery"]["QueryString"]
    assert "24 hours" in queries["ErrorsQuery"]["Name"]["Fn::Sub"]
