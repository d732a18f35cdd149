"""The README's examples against the local stack run as written: CLI, boto3 and curl, against `make serve`.

The blocks fenced as ```sh local-stack run in the README's order, in one shell (as a user pastes them into one
terminal), against `python -m devserver.serve` on free ports, in a folder holding only what a fresh clone has
(events/, and .venv/ as `make` creates it) and the .local/env.sh that make serve writes: a block needs nothing
else the user does not have. curl fails here on an HTTP error (4xx/5xx) instead of printing it, so a request the
API refuses fails the test.

Not run: `make serve` itself (this test starts the same program, on free ports), and what needs Docker or an AWS
account (`sam local`, deploying): tests/deploy/test_sam_local.py checks the README's sam local commands without
Docker, and tests/deploy the template and the build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devserver.serve import DEFAULT_API_PORT, DEFAULT_S3_PORT, DEFAULT_XNAT_PORT
from devserver.stack import BUCKET
from tests.processes import Served, local_stack_served

from ..readme import blocks, logical_lines

ROOT = Path(__file__).resolve().parents[2]
MY_IMAGE = b"my CT volume\n"  # what the README's block writes to my-images/ct_scan.nii.gz


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """`make serve` on free ports: the URLs it prints for S3, XNAT and the API, and its env files."""
    with local_stack_served() as stack:
        yield stack


@pytest.fixture
def working_folder(tmp_path: Path, served: Served) -> Path:
    """A fresh clone's folder as the README assumes it: the repository's events/ and .venv/, and the .local/ that
    make serve writes. Nothing of the user's own: the blocks create what they use."""
    venv_bin = Path(sys.prefix) / "bin"
    if not (venv_bin / "xnat-upload").exists():
        pytest.skip(f"the xnat-upload CLI is not installed in {sys.prefix}: make test installs it")
    (tmp_path / "events").symlink_to(ROOT / "events")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    (tmp_path / ".local").symlink_to(served.env_dir)
    return tmp_path


def test_the_readme_tags_its_local_stack_examples() -> None:
    examples = "".join(blocks("local-stack"))
    for command in (".venv/bin/xnat-upload submit", "curl -X PUT", "curl -s -X POST", "openapi.json"):
        assert command in examples


def test_the_local_stack_examples_name_no_port_they_read_make_serves_env_file() -> None:
    # make serve may run on other ports (ARGS='--s3-port ...'): a command with a fixed one would miss it.
    commands = [line.split(" #")[0].strip() for block in blocks("local-stack") for line in logical_lines(block)]
    assert commands[0] == ". .local/env.sh"
    for line in commands:
        for port in (DEFAULT_S3_PORT, DEFAULT_XNAT_PORT, DEFAULT_API_PORT):
            assert f":{port}" not in line, line


def test_every_curl_example_that_sends_a_body_says_it_is_json() -> None:
    # Without it curl sends application/x-www-form-urlencoded, and the API answers 415.
    text = "".join(blocks("local-stack")) + "".join(blocks("sam-local"))
    sending = [line for line in text.replace("\\\n", " ").splitlines() if "curl" in line and " -d " in line]
    assert sending
    for line in sending:
        assert "-H 'Content-Type: application/json'" in line, line


def test_the_readmes_local_stack_examples_run_as_written(served: Served, working_folder: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    script = "\n".join(
        [
            "set -euo pipefail",
            'curl() { command curl --silent --show-error --fail-with-body "$@"; echo; }',
            *blocks("local-stack"),
        ]
    )
    environment = {"PATH": os.environ["PATH"], "HOME": str(working_folder), "LC_ALL": "C.UTF-8"}

    run = subprocess.run(
        ["bash", "-c", script],
        cwd=working_folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert run.returncode == 0, f"{script}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    out = run.stdout
    assert "valid: 3 files" in out
    assert "uploaded 3 files" in run.stderr, "submit --from-dir put the block's images"
    xnat = re.escape(served.urls["xnat"])
    for path in ("ct_scan.nii.gz", "seg/ct%20seg.nii.gz", "reports/2026/report.json"):
        assert re.search(rf"^{xnat}/data/projects/PRJ001/\S+/files/{re.escape(path)}$", out, re.MULTILINE), path
    result = json.loads(out[out.index("\n{") + 1 : out.index("\n}\n") + 2])  # status demo-1 --json
    assert (result["job_id"], result["status"]) == ("demo-1", "succeeded")
    assert re.search(rf'^\["{xnat}/data/projects/PRJ001/\S+/files/ct_scan.nii.gz"\]$', out, re.MULTILINE)
    assert '"openapi"' in out
    s3 = boto3.client(
        "s3",
        endpoint_url=served.urls["s3"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    uploaded = s3.get_object(Bucket=BUCKET, Key="net-1/upload/ct_scan.nii.gz")["Body"].read()
    assert uploaded == MY_IMAGE, "the README's --from-dir put the user's image"
