"""The template passes SAM's and cfn-lint's checks with every optional deployment feature off and on.

A variant is the template with some parameters' defaults replaced, rendered to JSON: "defaults" is what
`sam deploy` does when nothing optional is given; "every option on" sets each optional parameter, so the resources
and properties that only exist behind their conditions are checked too. Each variant goes through cfn-lint (the
pinned one of requirements-dev.txt, in process), `sam validate --lint` (the SAM CLI's own cfn-lint) and
`sam validate` (the SAM translator: the transform CloudFormation will run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode

from .conftest import ROOT, run_offline

# Every optional parameter, set. Keep in step with the template: test_every_option_is_exercised says when not.
EVERY_OPTION_ON = {
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:xnat-upload-alarms",
    "AlarmEmail": "ops@example.org",
    "WorkerReservedConcurrency": 100,
    "VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0fedcba9876543210",
    "VpcSecurityGroupIds": "sg-0123456789abcdef0",
    "CreateApiGatewayAccountRole": "true",
    "LogKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab",
    # ---- deployment
    "ImagesBucketName": "hospital-pacs-export",
    "ImagesBucketKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/89abcdef-0123-4567-89ab-cdef01234567",
    "ImagesPrefix": "images/",
    "ConfineToNet": "true",
    "XnatCaBundleS3Object": "hospital-config/xnat/ca-bundle.pem",
    "ImagesExpirationDays": 0,
    "ManifestsExpirationDays": 0,
    "ResultsExpirationDays": 0,
    "DataBucketEncryption": "SSE-KMS",
    "AuditTrail": "true",
}
# Retention on the stack's own bucket with an images prefix (the images rule applies), and KMS alone.
IMAGES_EXPIRE = {"ImagesPrefix": "images/", "ImagesExpirationDays": 14, "ResultsExpirationDays": 90}
KMS_ONLY = {"DataBucketEncryption": "SSE-KMS"}
VARIANTS = {
    "defaults": {},
    "every option on": EVERY_OPTION_ON,
    "images expire in the data bucket": IMAGES_EXPIRE,
    "customer-managed key only": KMS_ONLY,
}
# The stack's own alarm topic with an e-mail subscription (the defaults cover it without, "every option on" a given
# topic); a reservation equal to the job queue's maximum concurrency, the least the template's rules accept.
OWN_ALARM_TOPIC = {"AlarmEmail": "ops@example.org", "WorkerReservedConcurrency": 4, "WorkerMaximumConcurrency": 4}
VARIANTS = {"defaults": {}, "every option on": EVERY_OPTION_ON, "own alarm topic with e-mail": OWN_ALARM_TOPIC}


def _template() -> dict[str, Any]:
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems and template is not None
    return template


def render(options: dict[str, Any], path: Path) -> Path:
    """The template with `options` as its parameters' defaults, as JSON at `path`, its code paths made absolute."""
    template = _template()
    for name, value in options.items():
        template["Parameters"][name]["Default"] = value
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if isinstance(resource.get("Properties", {}).get(key), str):
                resource["Properties"][key] = str(ROOT / resource["Properties"][key])
    path.write_text(json.dumps(template, indent=1))
    return path


@pytest.fixture(params=sorted(VARIANTS), ids=str)
def variant(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The template with the variant's parameter defaults, as JSON, its code paths made absolute."""
    return render(VARIANTS[request.param], tmp_path / "template.json")


def test_every_option_is_exercised() -> None:
    """Each parameter that a condition reads is set in the "every option on" variant."""
    template = _template()
    conditions = json.dumps(template["Conditions"])
    assert {name for name in template["Parameters"] if f'"{name}"' in conditions} <= set(EVERY_OPTION_ON)


def test_cfn_lint_is_clean(variant: Path) -> None:
    matches = lint(variant.read_text(), config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches if m.rule.id[0] in ("E", "W")] == []


def test_sam_validate_lint_passes(variant: Path, sam_cli: Path, tool_env: dict[str, str]) -> None:
    result = run_offline([sam_cli, "validate", "--lint", "--template-file", variant], env=tool_env, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "is a valid SAM Template" in result.stdout


def test_the_sam_transform_accepts_it(variant: Path, sam_cli: Path, tool_env: dict[str, str]) -> None:
    result = run_offline([sam_cli, "validate", "--template-file", variant], env=tool_env, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "is a valid SAM Template" in result.stdout
