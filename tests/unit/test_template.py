"""The SAM template, samconfig.toml and the sample events, read as a specification of the deployment.

The template is parsed with cfn-lint's own decoder, so short-form tags (!Ref, !Sub, !GetAtt, !If) come back as
their long forms ({"Ref": ...}, {"Fn::Sub": ...}). Nothing here needs AWS, Docker or the SAM CLI.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str

from ..readme import documentation

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
EVENTS = ROOT / "events"

FUNCTIONS = {
    "ManifestTriggerFunction": "functions/manifest_trigger/",
    "UploadWorkerFunction": "functions/upload_worker/",
    "UploadApiFunction": "functions/upload_api/",
    "JobSweeperFunction": "functions/job_sweeper/",
}
# The topic every alarm notifies: the stack's own, or the one AlarmTopicArn names.
ALARM_TOPIC = {"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}
# The functions that talk to XNAT: in the queue-based flow, the worker only.
XNAT_CLIENTS = {"UploadWorkerFunction"}
FIXED_MANIFEST_FIELDS = {
    "central_hub_project_id",
    "accession_id",
    "net_id",
    "scan_id",
    "resource_id",
    "files_relative_paths_to_upload",
    "exist_ok",
}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def template_text() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def template(template_text: str) -> dict[str, Any]:
    decoded, problems = decode_str(template_text)
    assert not problems, [str(p) for p in problems]
    assert decoded is not None
    return decoded


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[name].get("Properties", {})


def _text(value: Any) -> str:
    """A plain string or the template string of a !Sub; anything else is refused."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub if isinstance(sub, str) else sub[0])
    raise AssertionError(f"expected a string or !Sub, got {value!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _bucket_name(resources: dict[str, Any]) -> str:
    return _text(_props(resources, "DataBucket")["BucketName"])


def _s3_statements(resources: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """Inline IAM statements of a function that grant S3 actions."""
    statements = []
    for policy in _props(resources, function).get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            for statement in _as_list(policy["Statement"]):
                actions = [str(a) for a in _as_list(statement["Action"])]
                if any(a.startswith("s3:") for a in actions):
                    statements.append(statement)
    return statements


IMAGES_BUCKET_ARN = "arn:${AWS::Partition}:s3:::${ImagesBucket}"


def _images_bucket(resource: Any) -> bool:
    """Whether a !Sub names the images bucket: ImagesBucketName when given, else the data bucket."""
    if not (isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), list)):
        return False
    variables = resource["Fn::Sub"][1]
    return variables.get("ImagesBucket", {}).get("Fn::If", [None])[:2] == [
        "HasImagesBucket",
        {"Ref": "ImagesBucketName"},
    ]


def _object_paths(resources: dict[str, Any], function: str, action: str) -> set[str]:
    """Key patterns (the part after `<bucket>/`) on which `function` may perform `action`; in the images
    bucket, prefixed `images-bucket:`."""
    prefix = f"arn:${{AWS::Partition}}:s3:::{_bucket_name(resources)}/"
    paths = set()
    for statement in _s3_statements(resources, function):
        assert statement.get("Effect") == "Allow"
        if action not in _as_list(statement["Action"]):
            continue
        for resource in _as_list(statement["Resource"]):
            arn = _text(resource)
            if _images_bucket(resource) and arn.startswith(IMAGES_BUCKET_ARN + "/"):
                paths.add("images-bucket:" + arn[len(IMAGES_BUCKET_ARN) + 1 :])
                continue
            assert arn.startswith(prefix), f"{function}: {action} on {arn} is not inside the data bucket"
            paths.add(arn[len(prefix) :])
    return paths


def _environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    env = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    env.update(_props(template["Resources"], function).get("Environment", {}).get("Variables", {}))
    return env


def _references(node: Any, name: str) -> bool:
    """Whether a template fragment refers to resource `name` (Ref, GetAtt or ${name} in a Sub)."""
    if isinstance(node, dict):
        if node.get("Ref") == name:
            return True
        get_att = node.get("Fn::GetAtt")
        if get_att is not None:
            target = get_att[0] if isinstance(get_att, list) else str(get_att).split(".")[0]
            if target == name:
                return True
        if "Fn::Sub" in node and re.search(rf"\$\{{{name}(\.[^}}]*)?\}}", _text(node)):
            return True
        return any(_references(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_references(v, name) for v in node)
    return False


def _load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------- lint and parameters


def test_template_is_cfn_lint_clean(template_text: str) -> None:
    matches = lint(template_text, config=ManualArgs(regions=["us-east-1"]))
    problems = [str(m) for m in matches if m.rule.id[0] in ("E", "W")]
    assert problems == []


def test_template_uses_the_sam_transform(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_every_parameter_has_a_description(template: dict[str, Any]) -> None:
    missing = [name for name, spec in template["Parameters"].items() if not str(spec.get("Description", "")).strip()]
    assert missing == []


def test_parameters_are_constrained(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert re.match(params["XnatUrl"]["AllowedPattern"], "https://xnat.example.org")
    assert not re.match(params["XnatUrl"]["AllowedPattern"], "http://xnat.example.org")
    assert "Default" not in params["XnatSecretArn"]
    assert set(params["UploadMode"]["AllowedValues"]) == {"auto", "zip", "per_file"}
    assert set(params["LogLevel"]["AllowedValues"]) == {"DEBUG", "INFO", "WARNING", "ERROR"}
    assert max(params["FunctionTimeout"]["AllowedValues"]) <= 900
    pattern = params["ImagesPrefix"]["AllowedPattern"]
    assert params["ImagesPrefix"]["Default"] == ""
    for good in ("", "images/", "a/b/"):
        assert re.fullmatch(pattern, good), good
    assert not re.fullmatch(pattern, "images")
    assert params["AlarmTopicArn"]["Default"] == ""


# ---------------------------------------------------------------- bucket


def test_bucket_name_is_deterministic_and_shared(template: dict[str, Any], resources: dict[str, Any]) -> None:
    """The functions name the bucket by its deterministic name, never through the bucket resource itself."""
    name = _bucket_name(resources)
    assert "${AWS::StackName}" in name
    for function in FUNCTIONS:
        assert _text(_environment(template, function)["DATA_BUCKET"]) == name


def test_functions_do_not_reference_the_bucket_resource(resources: dict[str, Any]) -> None:
    """Apart from the S3 event itself, a reference to DataBucket would close a dependency cycle."""
    for function in FUNCTIONS:
        props = {k: v for k, v in _props(resources, function).items() if k != "Events"}
        assert not _references(props, "DataBucket"), function


def test_bucket_is_versioned_encrypted_and_private(resources: dict[str, Any]) -> None:
    props = _props(resources, "DataBucket")
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == {"Fn::If": ["UseBucketKms", "aws:kms", "AES256"]}
    block = props["PublicAccessBlockConfiguration"]
    for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert block[flag] is True, flag


def test_bucket_lifecycle_expires_each_prefix_after_its_parameter(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    rules = {r["Id"]: r for r in _props(resources, "DataBucket")["LifecycleConfiguration"]["Rules"]}
    noncurrent = rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"]
    assert noncurrent == {"Ref": "NoncurrentVersionExpirationDays"}
    params = template["Parameters"]
    # An optional rule is Disabled (with a placeholder of 1 day) when its days are 0.
    for rule_id, parameter, condition, prefix in [
        ("expire-manifests", "ManifestsExpirationDays", "ManifestsExpire", "manifests/"),
        ("expire-results", "ResultsExpirationDays", "ResultsExpire", "results/"),
    ]:
        rule = rules[rule_id]
        assert rule["Prefix"] == prefix
        assert rule["Status"] == {"Fn::If": [condition, "Enabled", "Disabled"]}
        assert rule["ExpirationInDays"] == {"Fn::If": [condition, {"Ref": parameter}, 1]}
        assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, "0"]}]}
        assert params[parameter]["Default"] == 365
    # Images expire under their prefix only when they are in this stack's bucket and have a prefix.
    images = rules["expire-images"]
    assert images["ExpirationInDays"] == {"Fn::If": ["ImagesExpire", {"Ref": "ImagesExpirationDays"}, 1]}
    assert images["Prefix"]["Fn::If"][:2] == ["ImagesExpire", {"Ref": "ImagesPrefix"}]
    conditions = json.dumps(template["Conditions"]["ImagesExpire"])
    assert '"ImagesPrefix"' in conditions and '"HasImagesBucket"' in conditions
    # Progress and checkpoints outlive the job dead-letter queue's 14 days: a redriven job resumes.
    dlq_days = _props(resources, "JobDeadLetterQueue")["MessageRetentionPeriod"] / 86400
    assert params["JobStateExpirationDays"]["MinValue"] > dlq_days
    for rule_id, prefix in [("expire-journal", "results/.journal/"), ("expire-checkpoints", "results/.checkpoints/")]:
        assert rules[rule_id]["Prefix"] == prefix and rules[rule_id]["Status"] == "Enabled"
        assert rules[rule_id]["ExpirationInDays"] == {"Ref": "JobStateExpirationDays"}


def test_bucket_policy_denies_requests_without_tls(resources: dict[str, Any]) -> None:
    policies = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy" and "Condition" not in r]
    assert len(policies) == 1, "one policy on the data bucket (the audit log bucket's is optional)"
    props = policies[0]["Properties"]
    assert props["Bucket"] == {"Ref": "DataBucket"}
    denies = [
        s
        for s in props["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and str(s["Condition"]["Bool"]["aws:SecureTransport"]).lower() == "false"
        and s["Principal"] == "*"
    ]
    assert denies
    covered = [_text(r) if not isinstance(r, dict) or "Fn::Sub" in r else r for r in _as_list(denies[0]["Resource"])]
    assert {"Fn::GetAtt": ["DataBucket", "Arn"]} in covered
    assert "${DataBucket.Arn}/*" in covered


# ---------------------------------------------------------------- the queue flow


def _sqs_event(resources: dict[str, Any], function: str) -> dict[str, Any]:
    (event,) = _props(resources, function)["Events"].values()
    assert event["Type"] == "SQS", function
    return event["Properties"]


def _statement_actions(resources: dict[str, Any], function: str, resource: Any) -> set[str]:
    return {
        action
        for policy in _props(resources, function)["Policies"]
        if isinstance(policy, dict)
        for statement in policy.get("Statement", [])
        if statement.get("Resource") == resource
        for action in _as_list(statement["Action"])
    }


def test_only_new_manifests_reach_the_intake_queue(template: dict[str, Any], resources: dict[str, Any]) -> None:
    bucket = resources["DataBucket"]
    (config,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Queue"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert config["Event"] == "s3:ObjectCreated:*"
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["S3Key"]["Rules"]}
    assert rules == {"prefix": "manifests/", "suffix": ".json"}
    # S3 checks the destination when the notification is set: the queue policy must exist first.
    assert bucket["DependsOn"] in ("IntakeQueuePolicy", ["IntakeQueuePolicy"])

    env = _environment(template, "ManifestTriggerFunction")
    assert env["MANIFESTS_PREFIX"] == rules["prefix"]
    results_prefix = env["RESULTS_PREFIX"]
    assert results_prefix == "results/"
    # No recursion: results, progress and checkpoints can never match the notification's prefix.
    assert not results_prefix.startswith(rules["prefix"]) and not rules["prefix"].startswith(results_prefix)


def test_only_the_data_bucket_may_send_to_the_intake_queue(resources: dict[str, Any]) -> None:
    policy = _props(resources, "IntakeQueuePolicy")
    assert policy["Queues"] == [{"Ref": "IntakeQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert _text(statement["Condition"]["ArnEquals"]["aws:SourceArn"]).endswith(_bucket_name(resources))
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_the_intake_reads_the_intake_queue_with_partial_batch_responses(resources: dict[str, Any]) -> None:
    event = _sqs_event(resources, "ManifestTriggerFunction")
    assert event["Queue"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = _props(resources, "IntakeQueue")
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["VisibilityTimeout"] >= 6 * _props(resources, "ManifestTriggerFunction")["Timeout"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["IntakeDeadLetterQueue", "Arn"]}


def test_the_job_queue_is_fifo_with_the_producers_deduplication_ids(resources: dict[str, Any]) -> None:
    queue = _props(resources, "JobQueue")
    assert queue["FifoQueue"] is True and _text(queue["QueueName"]).endswith(".fifo")
    assert queue["ContentBasedDeduplication"] is False
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["JobDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "JobMaxReceiveCount"},
    }
    dlq = _props(resources, "JobDeadLetterQueue")
    assert dlq["FifoQueue"] is True and _text(dlq["QueueName"]).endswith(".fifo")


def test_the_job_queue_hides_a_message_longer_than_any_worker_runs(template: dict[str, Any]) -> None:
    """Six times the worker's timeout (AWS's guidance): a job is never given to two workers at once."""
    visibility = template["Mappings"]["JobQueueVisibility"]
    timeouts = template["Parameters"]["FunctionTimeout"]["AllowedValues"]
    assert max(timeouts) <= 900
    for timeout in timeouts:
        assert visibility[str(timeout)]["Seconds"] >= 6 * int(timeout)
        assert visibility[str(timeout)]["Seconds"] <= 12 * 3600


def test_the_worker_runs_one_job_per_invocation_with_bounded_concurrency(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    event = _sqs_event(resources, "UploadWorkerFunction")
    assert event["Queue"] == {"Fn::GetAtt": ["JobQueue", "Arn"]}
    assert event["BatchSize"] == 1
    assert event["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaximumConcurrency"}}
    assert template["Parameters"]["WorkerMaximumConcurrency"]["Default"] == 4
    assert template["Parameters"]["WorkerMaximumConcurrency"]["MinValue"] >= 2  # Lambda's own minimum
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    worker = _props(resources, "UploadWorkerFunction")
    assert worker["Timeout"] == {"Ref": "FunctionTimeout"}
    # A long job is a chain of continuations on purpose: recursive loop detection must not cut it.
    assert worker["RecursiveLoop"] == "Allow"
    env = _environment(template, "UploadWorkerFunction")
    assert env["JOB_MAX_RECEIVE_COUNT"] == {"Ref": "JobMaxReceiveCount"}, "the same number as the redrive policy"
    assert env["MAX_CONTINUATIONS"] == {"Ref": "MaxContinuations"}
    assert template["Parameters"]["MaxContinuations"]["Default"] == 100


def test_only_the_worker_talks_to_xnat(template: dict[str, Any], resources: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        policies = _props(resources, function)["Policies"]
        secret = [p for p in policies if isinstance(p, dict) and "AWSSecretsManagerGetSecretValuePolicy" in p]
        env = _environment(template, function)
        if function == "UploadWorkerFunction":
            assert secret[0]["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"] == {"Ref": "XnatSecretArn"}
            assert env["XNAT_SECRET_ARN"] == {"Ref": "XnatSecretArn"}
        else:
            assert not secret and "XNAT_SECRET_ARN" not in env, function


def test_every_producer_may_send_to_the_job_queue_and_only_the_worker_may_defer(resources: dict[str, Any]) -> None:
    job_queue = {"Fn::GetAtt": ["JobQueue", "Arn"]}
    assert _statement_actions(resources, "ManifestTriggerFunction", job_queue) == {"sqs:SendMessage"}
    assert _statement_actions(resources, "UploadApiFunction", job_queue) == {"sqs:SendMessage"}
    assert _statement_actions(resources, "UploadWorkerFunction", job_queue) == {
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
    }


def test_the_intake_reads_manifests_and_results_heads_images_and_writes_only_results(resources: dict[str, Any]) -> None:
    reads = _object_paths(resources, "ManifestTriggerFunction", "s3:GetObject")
    assert reads == {"manifests/*", "results/*", "images-bucket:${ImagesPrefix}*/upload/*"}, (
        "images: their HEAD, a missing one refused"
    )
    assert not any("upload" in p for p in _object_paths(resources, "ManifestTriggerFunction", "s3:GetObjectVersion"))
    # The S3 event names a version: reading that exact version needs GetObjectVersion on the manifests.
    assert "manifests/*" in _object_paths(resources, "ManifestTriggerFunction", "s3:GetObjectVersion")
    assert _object_paths(resources, "ManifestTriggerFunction", "s3:PutObject") == {"results/*"}


def test_the_worker_reads_manifests_images_and_results_and_writes_only_results(resources: dict[str, Any]) -> None:
    reads = _object_paths(resources, "UploadWorkerFunction", "s3:GetObject")
    assert reads == {"manifests/*", "images-bucket:${ImagesPrefix}*/upload/*", "results/*"}
    assert "manifests/*" in _object_paths(resources, "UploadWorkerFunction", "s3:GetObjectVersion")
    assert _object_paths(resources, "UploadWorkerFunction", "s3:PutObject") == {"results/*"}


def test_no_function_deletes_or_uses_wildcard_s3_actions(resources: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        for statement in _s3_statements(resources, function):
            for action in _as_list(statement["Action"]):
                assert "*" not in str(action), f"wildcard S3 action {action} in {function}"
                assert not str(action).startswith("s3:Delete"), (function, action)


def test_functions_can_list_the_bucket(resources: dict[str, Any]) -> None:
    """Without s3:ListBucket a missing key answers 403 instead of 404."""
    bucket_arn = f"arn:${{AWS::Partition}}:s3:::{_bucket_name(resources)}"
    for function in FUNCTIONS:
        listed = {
            _text(r)
            for s in _s3_statements(resources, function)
            if "s3:ListBucket" in _as_list(s["Action"])
            for r in _as_list(s["Resource"])
        }
        # The intake and the worker list the images' prefix too (many files: one listing, not a HEAD each).
        images = {IMAGES_BUCKET_ARN} if function in ("ManifestTriggerFunction", "UploadWorkerFunction") else set()
        assert listed == {bucket_arn} | images, function


def test_only_the_intake_touches_the_idempotency_table(template: dict[str, Any], resources: dict[str, Any]) -> None:
    table = {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}
    assert _statement_actions(resources, "ManifestTriggerFunction", table) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }, "exactly what Powertools idempotency needs: no Scan, no batch operations"
    assert _environment(template, "ManifestTriggerFunction")["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    for function in ("UploadApiFunction", "UploadWorkerFunction"):
        assert _statement_actions(resources, function, table) == set(), function
        assert "IDEMPOTENCY_TABLE" not in _environment(template, function), function


def test_idempotency_table_matches_powertools_layout(resources: dict[str, Any]) -> None:
    table = _props(resources, "IdempotencyTable")
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


# ---------------------------------------------------------------- code locations


@pytest.mark.parametrize(("function", "code_uri"), sorted(FUNCTIONS.items()))
def test_handlers_point_at_the_fixed_entry_points(resources: dict[str, Any], function: str, code_uri: str) -> None:
    props = _props(resources, function)
    assert props["CodeUri"] == code_uri
    assert props["Handler"] == "app.lambda_handler"
    assert (ROOT / code_uri).is_dir()


def test_shared_layer_is_built_by_sam(template: dict[str, Any], resources: dict[str, Any]) -> None:
    layer = resources["XnatUploadLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    # Its Makefile installs requirements.lock with --require-hashes (tests/unit/test_build_tool.py).
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "requirements.lock").is_file() and (content / "Makefile").is_file()
    assert (content / "xnat_upload" / "__init__.py").is_file()
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert {"Ref": "XnatUploadLayer"} in template["Globals"]["Function"]["Layers"]


def test_layer_claims_only_the_runtime_it_is_built_for(template: dict[str, Any], resources: dict[str, Any]) -> None:
    """Its native wheels are built for one CPython (pydantic_core's cp312 build does not import under 3.13)."""
    layer = resources["XnatUploadLayer"]
    runtime = template["Globals"]["Function"]["Runtime"]
    makefile = (ROOT / layer["Properties"]["ContentUri"] / "Makefile").read_text()
    assert f"--python-version {runtime.removeprefix('python')}" in makefile
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]


def test_xnats_load_is_bounded_by_the_workers_event_source_and_a_reservation_is_optional(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """The job queue's event source mapping runs at most WorkerMaximumConcurrency jobs against XNAT; a reservation
    for the worker is an option (0 = none: reserving fails in accounts whose quota is still 10)."""
    assert _sqs_event(resources, "UploadWorkerFunction")["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "WorkerMaximumConcurrency"}
    }
    assert template["Parameters"]["WorkerReservedConcurrency"]["Default"] == 0
    assert template["Conditions"]["HasWorkerReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "WorkerReservedConcurrency"}, 0]}]
    }
    assert _props(resources, "UploadWorkerFunction")["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasWorkerReservedConcurrency", {"Ref": "WorkerReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    for function in ("ManifestTriggerFunction", "UploadApiFunction"):
        assert "ReservedConcurrentExecutions" not in _props(resources, function), function


def test_the_intakes_event_source_has_a_maximum_concurrency(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert _sqs_event(resources, "ManifestTriggerFunction")["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "IntakeMaximumConcurrency"}
    }
    param = template["Parameters"]["IntakeMaximumConcurrency"]
    assert param["MinValue"] == 2 and param["MaxValue"] == 1000  # Lambda's own bounds
    assert 2 <= param["Default"] <= 1000


def _rules_accept(template: dict[str, Any], values: dict[str, str]) -> bool:
    """Whether CloudFormation's Rules accept these parameter values: the rule functions the template uses."""

    def value(node: Any) -> Any:
        if isinstance(node, dict):
            ((name, arg),) = node.items()
            if name == "Ref":
                return values[arg]
            if name == "Fn::Equals":
                return str(value(arg[0])) == str(value(arg[1]))
            if name == "Fn::Not":
                return not value(arg[0])
            if name == "Fn::And":
                return all(value(a) for a in arg)
            if name == "Fn::Or":
                return any(value(a) for a in arg)
            if name == "Fn::Contains":
                return str(value(arg[1])) in [str(v) for v in arg[0]]
            if name == "Fn::EachMemberEquals":
                return all(member == str(arg[1]) for member in value(arg[0]))
            raise AssertionError(f"a rule function this test does not know: {name}")
        return node

    for rule in template["Rules"].values():
        if "RuleCondition" in rule and not value(rule["RuleCondition"]):
            continue
        if not all(value(assertion["Assert"]) for assertion in rule["Assertions"]):
            return False
    return True


def test_a_worker_reservation_is_never_below_the_job_queues_maximum_concurrency(template: dict[str, Any]) -> None:
    """Lambda throttles messages of an SQS event source whose maximum concurrency exceeds the function's reserved
    concurrency: the template's rules refuse exactly those combinations, for every allowed value."""
    params = template["Parameters"]
    maximum = params["WorkerMaximumConcurrency"]
    reservations = [int(v) for v in params["WorkerReservedConcurrency"]["AllowedValues"]]
    assert 0 in reservations
    base = {"VpcSubnetIds": [""], "VpcSecurityGroupIds": [""]}
    for reserved in reservations:
        for most in range(int(maximum["MinValue"]), int(maximum["MaxValue"]) + 1):
            values = {**base, "WorkerReservedConcurrency": str(reserved), "WorkerMaximumConcurrency": str(most)}
            expected = reserved == 0 or reserved >= most
            assert _rules_accept(template, values) is expected, (reserved, most)


def test_the_worker_has_no_checkov_skip_for_concurrency(resources: dict[str, Any]) -> None:
    """With the optional reservation checkov's CKV_AWS_115 passes; no reason claims a reservation must throttle."""
    skips = resources["UploadWorkerFunction"]["Metadata"]["checkov"]["skip"]
    assert "CKV_AWS_115" not in {s["id"] for s in skips}


def test_every_log_group_keeps_log_retention_days_and_is_encrypted_with_the_optional_key(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    param = template["Parameters"]["LogKmsKeyArn"]
    assert param["Default"] == ""
    good = "arn:aws:kms:eu-west-1:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab"
    for value in ("", good, "arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"):
        assert re.fullmatch(param["AllowedPattern"], value), value
    for value in ("arn:aws:kms:eu-west-1:123456789012:alias/logs", "0123abcd-4567-89ab-cdef-0123456789ab"):
        assert not re.fullmatch(param["AllowedPattern"], value), value
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 90
    groups = {n: r["Properties"] for n, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert groups
    for name, group in groups.items():
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        assert group.get("KmsKeyId") == {
            "Fn::If": ["HasLogKmsKey", {"Ref": "LogKmsKeyArn"}, {"Ref": "AWS::NoValue"}]
        }, f"{name}: KmsKeyId: !If [HasLogKmsKey, !Ref LogKmsKeyArn, !Ref AWS::NoValue]"


def _function_log_groups(resources: dict[str, Any]) -> dict[str, str]:
    """function -> the logical id of its log group (/aws/lambda/<function name>)."""
    found = {}
    for function in FUNCTIONS:
        (group,) = [
            name
            for name, r in resources.items()
            if r["Type"] == "AWS::Logs::LogGroup"
            and _text(r["Properties"]["LogGroupName"]) == f"/aws/lambda/${{{function}}}"
        ]
        found[function] = group
    return found


def test_every_function_has_a_log_group_of_the_stack(resources: dict[str, Any]) -> None:
    assert set(_function_log_groups(resources)) == set(FUNCTIONS)


# ---------------------------------------------------------------- private-network XNAT


@pytest.mark.parametrize(("name", "prefix"), [("VpcSubnetIds", "subnet-"), ("VpcSecurityGroupIds", "sg-")])
def test_vpc_parameters_are_optional_lists_of_ids(template: dict[str, Any], name: str, prefix: str) -> None:
    spec = template["Parameters"][name]
    assert spec["Type"] == "CommaDelimitedList"
    assert spec["Default"] == ""
    one, two = f"{prefix}0123456789abcdef0", f"{prefix}0fedcba98"
    for good in ("", one, f"{one},{two}", f"{one}, {two}"):
        assert re.fullmatch(spec["AllowedPattern"], good), good
    for bad in (f"{prefix}XYZ", "vpc-0123456789abcdef0", f"{one},", f",{one}"):
        assert not re.fullmatch(spec["AllowedPattern"], bad), bad


def test_vpc_placement_is_off_unless_subnets_are_given(template: dict[str, Any]) -> None:
    assert template["Conditions"]["UseVpc"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "VpcSubnetIds"}]}, ""]}]
    }
    # Security groups without subnets would otherwise silently mean "no VPC".
    (assertion,) = template["Rules"]["VpcSubnetsAndSecurityGroupsGoTogether"]["Assertions"]
    assert {"Ref": "VpcSubnetIds"} in assertion["Assert"]["Fn::Or"][0]["Fn::And"][0]["Fn::EachMemberEquals"]
    assert {"Ref": "VpcSecurityGroupIds"} in assertion["Assert"]["Fn::Or"][0]["Fn::And"][1]["Fn::EachMemberEquals"]


def test_only_the_function_that_talks_to_xnat_runs_in_the_vpc_when_one_is_given(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert "VpcConfig" not in template["Globals"]["Function"]
    for function in FUNCTIONS:
        if function in XNAT_CLIENTS:
            assert _props(resources, function)["VpcConfig"] == {
                "Fn::If": [
                    "UseVpc",
                    {"SubnetIds": {"Ref": "VpcSubnetIds"}, "SecurityGroupIds": {"Ref": "VpcSecurityGroupIds"}},
                    {"Ref": "AWS::NoValue"},
                ]
            }, function
        else:
            assert "VpcConfig" not in _props(resources, function), f"{function} talks to AWS services only"


# ---------------------------------------------------------------- API


def test_api_requires_iam_and_is_throttled_and_logged(resources: dict[str, Any]) -> None:
    api = _props(resources, "UploadApi")
    assert resources["UploadApi"]["Type"] == "AWS::Serverless::Api"
    assert api["StageName"] == "v1"
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    assert api["TracingEnabled"] is True
    (setting,) = api["MethodSettings"]
    assert setting["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert setting["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}

    access = api["AccessLogSetting"]
    (log_group,) = access["DestinationArn"]["Fn::GetAtt"][:1]
    assert resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    fields = json.loads(access["Format"])
    expected = {"requestId", "ip", "caller", "user", "requestTime", "httpMethod", "resourcePath", "status"}
    assert expected | {"protocol", "responseLength"} <= set(fields)


def test_the_stack_can_set_api_gateways_logging_role_for_a_fresh_account(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """Access logging needs the account's API Gateway CloudWatch role; opt-in, because the setting is account-wide."""
    param = template["Parameters"]["CreateApiGatewayAccountRole"]
    assert param["Default"] == "false"
    assert set(param["AllowedValues"]) == {"true", "false"}
    assert template["Conditions"]["CreateApiGatewayAccount"] == {
        "Fn::Equals": [{"Ref": "CreateApiGatewayAccountRole"}, "true"]
    }

    role, account = resources["ApiGatewayCloudWatchRole"], resources["ApiGatewayAccount"]
    assert account["Type"] == "AWS::ApiGateway::Account"
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    (policy,) = role["Properties"]["ManagedPolicyArns"]
    assert _text(policy).endswith(":iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")
    assert "Policies" not in role["Properties"]
    for resource in (role, account):
        assert resource["Condition"] == "CreateApiGatewayAccount"
        # Other APIs of the account keep logging after this stack is deleted.
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_the_api_waits_for_the_account_setting_when_the_stack_makes_it(resources: dict[str, Any]) -> None:
    assert resources["UploadApi"]["DependsOn"] == "ApiGatewayAccountReady"
    handle = resources["ApiGatewayAccountReady"]
    assert handle["Type"] == "AWS::CloudFormation::WaitConditionHandle"
    assert "Condition" not in handle
    (setting,) = handle["Metadata"].values()
    assert setting["Fn::If"][:2] == ["CreateApiGatewayAccount", {"Ref": "ApiGatewayAccount"}]


def test_api_routes(resources: dict[str, Any]) -> None:
    events = _props(resources, "UploadApiFunction")["Events"]
    routes = set()
    for event in events.values():
        assert event["Type"] == "Api"
        assert event["Properties"]["RestApiId"] == {"Ref": "UploadApi"}
        assert "Auth" not in event["Properties"], "every route keeps the IAM default authorizer"
        routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    assert routes == {
        ("PUT", "/upload/images/{net_id}"),
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/jobs/{job_id}"),
        ("POST", "/nets/{net_id}/jobs"),
        ("GET", "/nets/{net_id}/jobs"),
        ("GET", "/nets/{net_id}/jobs/{job_id}"),
        ("GET", "/openapi.json"),
    }


def test_api_function_fits_the_gateway_timeout(template: dict[str, Any], resources: dict[str, Any]) -> None:
    timeout = _props(resources, "UploadApiFunction")["Timeout"]
    assert timeout <= 29
    assert int(_environment(template, "UploadApiFunction")["API_TIME_LIMIT_SECONDS"]) < timeout


def test_api_function_s3_permissions(resources: dict[str, Any]) -> None:
    """Only what the API calls: manifests (put, read back), results and progress (status). No image: it checks
    paths as text. No write under results/: it could forge a result manifest."""
    reads = _object_paths(resources, "UploadApiFunction", "s3:GetObject")
    assert reads == {"results/*", "manifests/*"}
    assert not any("upload" in path for path in reads), "the API never reads an image"
    assert _object_paths(resources, "UploadApiFunction", "s3:PutObject") == {"manifests/*"}
    assert not _object_paths(resources, "UploadApiFunction", "s3:DeleteObject")


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    expected = {"DataBucketName", "ManifestTriggerFunctionArn", "UploadWorkerFunctionArn", "UploadApiUrl"}
    queues = {"JobQueueUrl", "IntakeDeadLetterQueueUrl", "JobDeadLetterQueueUrl"}
    assert expected | queues | {"IdempotencyTableName", "AlarmTopicArn", "OperationsDashboardUrl"} <= set(outputs)
    assert outputs["AlarmTopicArn"]["Value"] == ALARM_TOPIC
    assert "#dashboards:name=${OperationsDashboard}" in _text(outputs["OperationsDashboardUrl"]["Value"])
    assert _text(outputs["UploadApiUrl"]["Value"]).endswith("/v1")


def test_outputs_name_both_queues_and_both_dead_letter_queues_for_a_redrive(template: dict[str, Any]) -> None:
    """docs/operations.md redrives with `start-message-move-task --source-arn <DLQ> --destination-arn <queue>`."""
    outputs = template["Outputs"]
    for queue in ("IntakeQueue", "IntakeDeadLetterQueue", "JobQueue", "JobDeadLetterQueue"):
        assert outputs[f"{queue}Arn"]["Value"] == {"Fn::GetAtt": [queue, "Arn"]}
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in ("IntakeQueueArn", "IntakeDeadLetterQueueArn", "JobQueueArn", "JobDeadLetterQueueArn"):
        assert name in operations, f"docs/operations.md says where the redrive's {name} comes from"


# ---------------------------------------------------------------- environment and documentation


def test_functions_get_the_fixed_configuration(template: dict[str, Any]) -> None:
    for function in FUNCTIONS:
        env = _environment(template, function)
        for name in ("XNAT_URL", "DATA_BUCKET", "IMAGES_PREFIX", "MANIFESTS_PREFIX", "JOB_QUEUE_URL"):
            assert name in env, (function, name)
        assert env["XNAT_URL"] == {"Ref": "XnatUrl"}
        assert env["JOB_QUEUE_URL"] == {"Ref": "JobQueue"}
        assert env["POWERTOOLS_SERVICE_NAME"] == "xnat-upload"
        # Plain credentials are for local runs only: never part of the deployment.
        assert "XNAT_SERVICE_PASSWORD" not in env


def test_every_environment_variable_is_documented(template: dict[str, Any]) -> None:
    text = documentation()
    names = {name for function in FUNCTIONS for name in _environment(template, function)}
    undocumented = sorted(name for name in names if not re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", text))
    assert undocumented == []


def test_samconfig(template: dict[str, Any]) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    assert config["version"] == 0.1
    stack_name = config["default"]["global"]["parameters"]["stack_name"]
    # The bucket name is derived from the stack name: it must be a valid bucket name fragment.
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,29}", stack_name)
    assert config["default"]["deploy"]["parameters"]["capabilities"] == "CAPABILITY_IAM"
    assert config["default"]["validate"]["parameters"]["lint"] is True


# ---------------------------------------------------------------- sample events


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_sample_events_are_json(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


def test_sample_manifest_uses_the_fixed_fields() -> None:
    manifest = _load_event("manifest.json")
    assert set(manifest) == FIXED_MANIFEST_FIELDS
    assert manifest["files_relative_paths_to_upload"]
    assert manifest["exist_ok"] is False


def test_sample_s3_event_is_a_manifest_put(resources: dict[str, Any]) -> None:
    (record,) = _load_event("s3_put_manifest.json")["Records"]
    assert record["eventSource"] == "aws:s3"
    assert record["eventName"].startswith("ObjectCreated:")
    key = record["s3"]["object"]["key"]
    (config,) = _props(resources, "DataBucket")["NotificationConfiguration"]["QueueConfigurations"]
    rules = {r["Name"]: r["Value"] for r in config["Filter"]["S3Key"]["Rules"]}
    assert key.startswith("manifests/") and key.endswith(".json")
    assert key.startswith(rules["prefix"]) and key.endswith(rules["suffix"])
    # No versionId: a made-up one would not exist in the user's bucket (`sam local invoke`);
    # real events carry it and the handler reads that exact version.
    assert "versionId" not in record["s3"]["object"]


@pytest.mark.parametrize("name", ["api_put_upload.json", "api_post_job.json", "api_get_job.json"])
def test_sample_api_events_match_declared_routes(resources: dict[str, Any], name: str) -> None:
    event = _load_event(name)
    routes = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"])
        for e in _props(resources, "UploadApiFunction")["Events"].values()
    }
    assert (event["httpMethod"], event["resource"]) in routes
    assert event["requestContext"]["stage"] == "v1"
    assert event["requestContext"]["path"] == f"/v1{event['path']}"
    assert event["isBase64Encoded"] is False
    if event["body"] is not None:
        assert isinstance(json.loads(event["body"]), dict)


def test_the_sample_intake_event_carries_the_sample_s3_event() -> None:
    (record,) = _load_event("sqs_intake_manifest.json")["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert json.loads(record["body"]) == _load_event("s3_put_manifest.json")


def test_the_sample_job_message_has_the_fixed_format_and_ids() -> None:
    import hashlib

    (record,) = _load_event("sqs_job_message.json")["Records"]
    message = json.loads(record["body"])
    assert set(message) == {"job_id", "manifest_key", "manifest_version", "continuation"}
    manifest = _load_event("manifest.json")
    target = "|".join(manifest[k] for k in ("central_hub_project_id", "accession_id", "scan_id", "resource_id"))
    assert record["attributes"]["MessageGroupId"] == hashlib.sha256(target.encode()).hexdigest()
    identity = f"{message['job_id']}|{message['manifest_version'] or ''}|{message['continuation']}"
    assert record["attributes"]["MessageDeduplicationId"] == hashlib.sha256(identity.encode()).hexdigest()


def test_sample_post_job_body_is_a_manifest_with_a_job_id() -> None:
    body = json.loads(_load_event("api_post_job.json")["body"])
    assert body.pop("job_id") == "demo-job-2"
    assert body == _load_event("manifest.json")


# ---------------------------------------------------------------- deployment options


def _conditional_statements(resources: dict[str, Any], function: str, condition: str) -> list[dict[str, Any]]:
    """The statements of a function's policy that exist only under `condition` (a `!If` policy)."""
    found = []
    for policy in _props(resources, function).get("Policies", []):
        branches = policy.get("Fn::If") if isinstance(policy, dict) else None
        if branches and branches[0] == condition:
            assert branches[2] == {"Ref": "AWS::NoValue"}
            found.extend(_as_list(branches[1]["Statement"]))
    return found


def test_images_may_live_in_an_existing_bucket_read_only(template: dict[str, Any], resources: dict[str, Any]) -> None:
    param = template["Parameters"]["ImagesBucketName"]
    assert param["Default"] == "", "the stack's own bucket stays the default"
    assert template["Conditions"]["HasImagesBucket"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ImagesBucketName"}, ""]}]}
    env = template["Globals"]["Function"]["Environment"]["Variables"]["IMAGES_BUCKET"]
    assert env["Fn::If"][:2] == ["HasImagesBucket", {"Ref": "ImagesBucketName"}]
    assert _text(env["Fn::If"][2]) == _bucket_name(resources)
    for function in ("ManifestTriggerFunction", "UploadWorkerFunction"):
        for action in ("s3:PutObject", "s3:DeleteObject"):
            assert not any(p.startswith("images-bucket:") for p in _object_paths(resources, function, action))
    # An images bucket encrypted with its own key: the worker (the only reader of the bytes) may decrypt.
    (decrypt,) = _conditional_statements(resources, "UploadWorkerFunction", "HasImagesBucketKmsKey")
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == {"Ref": "ImagesBucketKmsKeyArn"}


def test_the_data_bucket_may_use_a_customer_managed_key_with_a_bucket_key(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["DataBucketEncryption"]["Default"] == "SSE-S3"
    (rule,) = _props(resources, "DataBucket")["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::If"][:2] == [
        "UseBucketKms",
        {"Fn::GetAtt": ["DataBucketKey", "Arn"]},
    ]
    assert rule["BucketKeyEnabled"] == {"Fn::If": ["UseBucketKms", True, False]}
    key = resources["DataBucketKey"]
    assert key["Condition"] == "UseBucketKms" and key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain", "the bucket outlives the stack: so must the key of its objects"
    for function in FUNCTIONS:
        (use,) = _conditional_statements(resources, function, "UseBucketKms")
        assert set(use["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
        assert use["Resource"] == {"Fn::GetAtt": ["DataBucketKey", "Arn"]}
        assert "kms:ViaService" in use["Condition"]["StringEquals"], "through S3 only"


def test_an_optional_trail_records_the_data_buckets_object_calls(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Parameters"]["AuditTrail"]["Default"] == "false"
    trail = resources["DataEventTrail"]
    assert trail["Type"] == "AWS::CloudTrail::Trail" and trail["Condition"] == "CreateAuditTrail"
    props = trail["Properties"]
    assert props["S3BucketName"] == {"Ref": "AuditLogBucket"} and props["IsLogging"] is True
    assert props["EnableLogFileValidation"] is True
    (selector,) = props["AdvancedEventSelectors"]
    fields = {f["Field"]: f for f in selector["FieldSelectors"]}
    assert fields["resources.type"]["Equals"] == ["AWS::S3::Object"]
    (arn,) = fields["resources.ARN"]["StartsWith"]
    assert _text(arn) == f"arn:${{AWS::Partition}}:s3:::{_bucket_name(resources)}/"
    assert resources["AuditLogBucket"]["Condition"] == "CreateAuditTrail"
    assert resources["AuditLogBucketPolicy"]["Condition"] == "CreateAuditTrail"


def test_functions_publish_an_alias_that_their_event_sources_and_the_api_call(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Globals"]["Function"]["AutoPublishAlias"] == "live"
    for function in FUNCTIONS:
        assert _props(resources, function)["AutoPublishAliasAllProperties"] is True, function


def test_the_worker_reads_a_private_ca_bundle_named_by_a_parameter(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    env = _environment(template, "UploadWorkerFunction")
    assert env["XNAT_CA_BUNDLE_S3_URI"]["Fn::If"][0] == "HasCaBundle"
    (read,) = _conditional_statements(resources, "UploadWorkerFunction", "HasCaBundle")
    assert read["Action"] == "s3:GetObject"
    assert _text(read["Resource"]) == "arn:${AWS::Partition}:s3:::${XnatCaBundleS3Object}"


def test_deploy_time_settings_reach_the_functions(template: dict[str, Any]) -> None:
    expected = {
        "XNAT_CONNECT_TIMEOUT": "XnatConnectTimeout",
        "XNAT_READ_TIMEOUT": "XnatReadTimeout",
        "XNAT_RETRY_WINDOW_SECONDS": "XnatRetryWindowSeconds",
        "XNAT_UNAVAILABLE_RETRY_SECONDS": "XnatUnavailableRetrySeconds",
        "XNAT_UNAVAILABLE_MAX_RETRY_SECONDS": "XnatUnavailableMaxRetrySeconds",
        "ZIP_BATCH_MAX_BYTES": "ZipBatchMaxBytes",
        "ZIP_BATCH_MAX_FILES": "ZipBatchMaxFiles",
        "MAX_MANIFEST_FILES": "MaxManifestFiles",
        "MAX_MANIFEST_BYTES": "MaxManifestBytes",
        "PROGRESS_INTERVAL_SECONDS": "ProgressIntervalSeconds",
        "CONFINE_TO_NET": "ConfineToNet",
    }
    env = _environment(template, "UploadWorkerFunction")
    for variable, parameter in expected.items():
        assert env[variable] == {"Ref": parameter}, variable
    # The limits every function checks a manifest against are the same everywhere.
    for function in FUNCTIONS:
        for variable in ("MAX_MANIFEST_FILES", "MAX_MANIFEST_BYTES", "CONFINE_TO_NET", "IMAGES_BUCKET"):
            assert variable in _environment(template, function), (function, variable)
    assert template["Parameters"]["ConfineToNet"]["Default"] == "false"


def test_the_access_log_names_the_request_for_support_and_says_why_it_failed(resources: dict[str, Any]) -> None:
    fields = json.loads(_props(resources, "UploadApi")["AccessLogSetting"]["Format"])
    assert fields["extendedRequestId"] == "$context.extendedRequestId"
    assert fields["errorMessage"] == "$context.error.message"
    assert fields["integrationErrorMessage"] == "$context.integrationErrorMessage"
