"""The API conforms to its own OpenAPI document: schemathesis, every check, against the local API.

`schemathesis run` reads `GET /openapi.json` from the local API server (the real handler behind
devserver/local_api.py, the local stack with its pollers behind it) and sends what the document
allows and what it does not: documented answers only, never a 5xx, schema-valid requests accepted,
invalid ones refused, 405 with `Allow` for undeclared methods. Deterministic (derandomized: no seed,
no example database, no failures replayed from an earlier run) and bounded (MAX_EXAMPLES per operation
in the phases that draw examples); only loopback traffic.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devserver.stack import LocalStack

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
MAX_EXAMPLES = 15


def schemathesis_command(api: str) -> list[str]:
    return [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api}/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "30",
        "--no-color",
    ]  # fmt: skip


def test_the_api_answers_exactly_as_its_openapi_document_says(
    running_api: str, stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("API_TIME_LIMIT_SECONDS", "6")  # the upload route waits 3 s, then answers 202
    stack.put_image("net-1", "ct_scan.nii.gz", b"ct")  # the document's examples upload for real
    stack.put_image("net-1", "seg/ct seg.nii.gz", b"seg")
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "NO_PROXY": "127.0.0.1,localhost"}

    run = subprocess.run(  # in a folder of its own: schemathesis replays the failures it cached in .schemathesis/
        schemathesis_command(running_api),
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )

    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", report)
    assert cases is not None, report[-5_000:]
    assert int(cases[1]) == int(cases[2]) >= 300, cases[0]
    assert "Tested: 7" in report, "every operation of the document was tested"
