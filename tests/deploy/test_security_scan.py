"""checkov, the security scanner, finds nothing unexplained in the template.

`checkov -f template.yaml --framework cloudformation` (pinned in tools/requirements-checkov.txt, run offline with
--skip-download) must report no failed check. A finding is either fixed in the template or skipped in the
resource's own Metadata with a one-line reason, which checkov prints with the skip:

    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_27
            comment: Encrypted at rest with SSE-SQS (SqsManagedSseEnabled), which this check does not recognise

A new resource that fails a check makes test_checkov_finds_nothing_unexplained fail with one line per finding: the
check, the resource, its lines in template.yaml. `make scan` prints checkov's own report.

checkov leaves out a resource whose condition is false with the parameters' defaults, so the template is scanned a
second time with every option on (test_template_variants.EVERY_OPTION_ON): the optional resources' skips apply there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from .conftest import ROOT, once_per_session, run_offline
from .test_template_variants import EVERY_OPTION_ON, render

CHECK_ID = re.compile(r"CKV2?_AWS_\d+")
MAX_REASON = 120


def _scan(
    checkov_cli: Path,
    tool_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    """checkov's JSON report of template.yaml (with `options` as its defaults), scanned once per test session."""

    def scan(out: Path) -> None:
        template = "template.yaml" if options is None else str(render(options, out / "template.json"))
        argv = [checkov_cli, "-f", template, "--framework", "cloudformation", "--skip-download", "--compact"]
        result = run_offline([*argv, "--output", "json", "--output-file-path", out], env=tool_env, timeout=300)
        (out / "outcome.json").write_text(json.dumps({"returncode": result.returncode, "output": result.stdout}))

    out = once_per_session(tmp_path_factory, "checkov" if options is None else "checkov-every-option", scan)
    outcome = json.loads((out / "outcome.json").read_text())
    assert (out / "results_json.json").is_file(), outcome["output"]
    report: dict[str, Any] = json.loads((out / "results_json.json").read_text())
    assert outcome["returncode"] == (1 if report["summary"]["failed"] else 0), outcome["output"]
    return report


@pytest.fixture(scope="session")
def report(checkov_cli: Path, tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _scan(checkov_cli, tool_env, tmp_path_factory, None)


@pytest.fixture(scope="session")
def every_option_report(
    checkov_cli: Path, tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    return _scan(checkov_cli, tool_env, tmp_path_factory, EVERY_OPTION_ON)


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems and template is not None
    return dict(template["Resources"])


def _skips(resources: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """(checkov's resource name, check id) -> the reason, for every skip in the template's Metadata."""
    return {
        (f"{resource['Type']}.{name}", str(skip.get("id"))): skip.get("comment")
        for name, resource in resources.items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    }


def test_checkov_reads_every_resource(report: dict[str, Any], resources: dict[str, Any]) -> None:
    """A template checkov cannot parse would pass with nothing checked."""
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] == len(resources)
    assert summary["passed"] > 0


@pytest.mark.parametrize("scanned", ["report", "every_option_report"], ids=["defaults", "every option on"])
def test_checkov_finds_nothing_unexplained(scanned: str, request: pytest.FixtureRequest) -> None:
    report = request.getfixturevalue(scanned)
    findings = [
        f"{c['check_id']} on {c['resource']} (template.yaml lines {c['file_line_range'][0]}-{c['file_line_range'][1]}):"
        f" {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert findings == [], (
        "checkov failed these checks: fix each, or skip it in the resource's Metadata "
        "(checkov: skip: - id: ..., comment: <one-line reason>)\n  " + "\n  ".join(findings)
    )


def test_every_skip_gives_a_one_line_reason(resources: dict[str, Any]) -> None:
    skips = _skips(resources)
    assert skips, "no skip at all: then this test and the Metadata convention can go"
    for (resource, check), reason in skips.items():
        assert CHECK_ID.fullmatch(check), f"{resource}: {check!r} is not a checkov AWS check id"
        assert isinstance(reason, str) and reason.strip(), f"{resource}: skip of {check} gives no reason"
        assert "\n" not in reason.strip() and len(reason) <= MAX_REASON, f"{resource}: {check}: one short line"


def test_every_skip_is_one_checkov_applies(
    report: dict[str, Any], every_option_report: dict[str, Any], resources: dict[str, Any]
) -> None:
    """A skip of a check that never runs on that resource (a typo, another resource type's check) is dead text."""
    skipped = report["results"]["skipped_checks"] + every_option_report["results"]["skipped_checks"]
    applied = {(c["resource"], c["check_id"]) for c in skipped}
    never_applied = set(_skips(resources)) - applied
    assert never_applied == set(), "skips checkov never applied (a typo in the id?): fix or remove them"
