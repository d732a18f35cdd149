"""events/env.json, the --env-vars file of `sam local`: it points every function at `make serve` as a container sees it.

The SAM CLI's rules are modelled in tests/sam_local.py (held against the pinned SAM CLI in tests/deploy); the sample
events run through the handlers with these values in tests/integration/test_sam_local_events.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from devserver import serve
from devserver.stack import BUCKET, JOB_QUEUE
from xnat_upload.config import Settings
from xnat_upload.xnat.session import service_credentials

from ..sam_local import (
    CONTAINER_S3,
    CONTAINER_XNAT,
    FUNCTIONS,
    REGION,
    container_environment,
    declared_variables,
    load_env_file,
    load_template,
    session_variables,
)

MOTO_ACCOUNT = "123456789012"  # moto's default account: its queue URLs and ARNs carry it


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def env_file() -> dict[str, dict[str, str]]:
    return load_env_file()


def test_the_template_declares_aws_endpoint_url_for_sam_local_and_no_deployment_gets_it(
    template: dict[str, Any],
) -> None:
    for function in FUNCTIONS:
        assert declared_variables(template, function)["AWS_ENDPOINT_URL"] == {"Ref": "AWS::NoValue"}, function


def test_the_env_file_configures_every_function_by_its_logical_id(
    template: dict[str, Any], env_file: dict[str, Any]
) -> None:
    functions = {name for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    assert set(FUNCTIONS) == functions
    assert set(env_file) == functions, "one entry per function (a 'Parameters' entry would apply to all of them)"


def test_the_env_file_sets_only_variables_the_template_declares_for_the_function(
    template: dict[str, Any], env_file: dict[str, Any]
) -> None:
    # sam local passes a container the declared variables only: anything else in the file would be silently ignored.
    for function, variables in env_file.items():
        undeclared = set(variables) - set(declared_variables(template, function))
        assert not undeclared, f"sam local would ignore {sorted(undeclared)} for {function}"
        assert all(isinstance(value, str) for value in variables.values()), function


def test_the_env_file_sets_every_variable_whose_template_value_only_a_deployment_has(
    template: dict[str, Any], env_file: dict[str, Any]
) -> None:
    for function in FUNCTIONS:
        container_environment(template, function, env_file)  # raises NeedsTheStack, naming the variable


def test_the_env_file_points_every_function_at_make_serve_as_a_container_reaches_it(env_file: dict[str, Any]) -> None:
    for function, variables in env_file.items():
        assert variables["AWS_ENDPOINT_URL"] == CONTAINER_S3, function
        assert variables["XNAT_URL"] == CONTAINER_XNAT, function
        assert variables["DATA_BUCKET"] == BUCKET, function
        assert variables["JOB_QUEUE_URL"] == f"{CONTAINER_S3}/{MOTO_ACCOUNT}/{JOB_QUEUE}", function
        for value in variables.values():
            assert "127.0.0.1" not in value and "localhost" not in value, f"{function}: a container's own loopback"


def test_the_intake_uses_the_idempotency_table_make_serve_creates(env_file: dict[str, Any]) -> None:
    assert env_file["ManifestTriggerFunction"]["IDEMPOTENCY_TABLE"] == serve.IDEMPOTENCY_TABLE


def test_the_worker_reads_the_xnat_account_from_the_secret_make_serve_creates(env_file: dict[str, Any]) -> None:
    # A partial ARN (no random suffix): Secrets Manager, and moto, find the secret by it.
    expected = f"arn:aws:secretsmanager:{REGION}:{MOTO_ACCOUNT}:secret:{serve.XNAT_SECRET_NAME}"
    assert env_file["UploadWorkerFunction"]["XNAT_SECRET_ARN"] == expected


def test_a_shell_that_exported_make_serves_addresses_cannot_leak_them_into_a_container(
    template: dict[str, Any], env_file: dict[str, Any]
) -> None:
    # sam local prefers the shell's value of a declared variable to the template's; the env file wins over both.
    for function in FUNCTIONS:
        declared = set(declared_variables(template, function))
        assert declared & set(serve.EXPORTS) <= set(env_file[function]), function


def test_each_function_gets_the_configuration_its_code_reads(
    template: dict[str, Any], env_file: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities import parameters

    secrets_read: list[str] = []

    def get_secret(name: str, **_: Any) -> dict[str, str]:
        secrets_read.append(name)
        return {"username": "svc-uploader", "password": "local-only-password"}

    monkeypatch.setattr(parameters, "get_secret", get_secret)
    for function in FUNCTIONS:
        environment = {**session_variables(), **container_environment(template, function, env_file)}
        settings = Settings.from_env(environment)  # every handler starts here, then needs the job queue
        assert settings.require_job_queue() == env_file[function]["JOB_QUEUE_URL"]
        if "XNAT_SECRET_ARN" in declared_variables(template, function):  # the one that logs in to XNAT
            assert service_credentials(settings) == ("svc-uploader", "local-only-password")
            assert secrets_read == [env_file[function]["XNAT_SECRET_ARN"]]


def test_make_serve_on_other_ports_writes_the_env_file_with_only_its_addresses_moved(env_file: dict[str, Any]) -> None:
    # .local/env.json, for make serve ARGS='--s3-port 4567 --xnat-port 8081': sam local must reach those ports.
    assert serve.sam_local_env(serve.DEFAULT_S3_PORT, serve.DEFAULT_XNAT_PORT) == env_file
    moved = serve.sam_local_env(4567, 8081)
    assert set(moved) == set(env_file)
    for function, variables in moved.items():
        assert set(variables) == set(env_file[function]), function
        assert variables["AWS_ENDPOINT_URL"] == "http://host.docker.internal:4567", function
        assert variables["XNAT_URL"] == "http://host.docker.internal:8081", function
        assert variables["JOB_QUEUE_URL"] == f"http://host.docker.internal:4567/{MOTO_ACCOUNT}/{JOB_QUEUE}", function
        for name, value in variables.items():
            if name not in ("AWS_ENDPOINT_URL", "XNAT_URL", "JOB_QUEUE_URL"):
                assert value == env_file[function][name], (function, name)
