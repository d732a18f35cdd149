"""What CloudFormation runs after the SAM transform: the functions' aliases are what the event sources and the API
call, so a rollback is one alias update (docs/deployment.md, "Aliases and rollback").

The pinned SAM CLI's own translator (samtranslator, in its venv) transforms the template offline, as CloudFormation's
AWS::Serverless transform will; the code locations are stand-ins (the transform only checks their form).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, run_offline

TRANSFORM = """
import json, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

template = yaml_parse(open(sys.argv[1]).read())
for resource in template["Resources"].values():
    for key in ("CodeUri", "ContentUri"):
        if key in resource.get("Properties", {}):
            resource["Properties"][key] = "s3://stand-in/code.zip"

class NoManagedPolicies:
    def load(self):
        return {}

print(json.dumps(transform(template, {}, NoManagedPolicies())))
"""


@pytest.fixture(scope="module")
def transformed(sam_cli: Path, tool_env: dict[str, str]) -> dict[str, Any]:
    python = sam_cli.parent / "python"
    if not python.exists():
        pytest.skip(f"no Python beside {sam_cli} to run its translator with (make test installs SAM in a venv)")
    env = {**tool_env, "AWS_DEFAULT_REGION": "us-east-1"}
    result = run_offline([python, "-c", TRANSFORM, ROOT / "template.yaml"], env=env, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1])["Resources"])


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def test_every_function_has_the_alias_live(transformed: dict[str, Any]) -> None:
    aliases = {r["Properties"]["FunctionName"]["Ref"]: r for r in _of_type(transformed, "AWS::Lambda::Alias").values()}
    assert set(aliases) == {
        "ManifestTriggerFunction",
        "UploadWorkerFunction",
        "UploadApiFunction",
        "JobSweeperFunction",
    }
    for alias in aliases.values():
        assert alias["Properties"]["Name"] == "live"


def test_the_queues_event_source_mappings_invoke_the_alias(transformed: dict[str, Any]) -> None:
    mappings = _of_type(transformed, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == 2
    for name, mapping in mappings.items():
        target = mapping["Properties"]["FunctionName"]["Ref"]
        assert target.endswith("Aliaslive"), f"{name} invokes {target}, not the alias"


def test_the_api_invokes_the_alias_on_every_route(transformed: dict[str, Any]) -> None:
    (api,) = _of_type(transformed, "AWS::ApiGateway::RestApi").values()
    routes = 0
    for path, operations in api["Properties"]["Body"]["paths"].items():
        for method, operation in operations.items():
            uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert "${UploadApiFunctionAliaslive}" in uri, (method, path)
            routes += 1
    assert routes == 8
    for permission in _of_type(transformed, "AWS::Lambda::Permission").values():
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com":
            assert permission["Properties"]["FunctionName"] == {"Ref": "UploadApiFunctionAliaslive"}


def test_the_sweepers_schedule_invokes_its_alias(transformed: dict[str, Any]) -> None:
    (rule,) = _of_type(transformed, "AWS::Events::Rule").values()
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": "JobSweeperFunctionAliaslive"}
    allowed = [p for p in _of_type(transformed, "AWS::Lambda::Permission").values() if p["Properties"]["Principal"]
               == "events.amazonaws.com"]  # fmt: skip
    assert [p["Properties"]["FunctionName"] for p in allowed] == [{"Ref": "JobSweeperFunctionAliaslive"}]
