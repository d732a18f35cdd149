"""What the functions import at run time is in the layer's requirements or the Lambda runtime.

`sam build` installs only layers/xnat_upload/requirements.txt next to the package; an import that
works here because requirements-dev.txt installed it would fail in Lambda with ImportError.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "xnat_upload" / "xnat_upload"
RUNTIME_PROVIDED = {"boto3", "botocore"}  # the Lambda Python runtime ships them
# Import name -> what brings it in the layer's requirements.txt.
PROVIDED_BY = {
    "aws_lambda_powertools": "aws-lambda-powertools",
    "pydantic": "aws-lambda-powertools",  # [parser] extra
    "aws_xray_sdk": "aws-lambda-powertools",  # [tracer] extra
    "requests": "requests",
    "urllib3": "requests",  # a dependency of requests (>=1.21.1,<3); the client's deadline adapter extends it
}


def runtime_sources() -> list[Path]:
    sources = [p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts]
    return sources + sorted((ROOT / "functions").glob("*/app.py"))


def third_party_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {
        n
        for n in names
        if n not in sys.stdlib_module_names
        and n not in ("xnat_upload", "mypy_boto3_s3", "mypy_boto3_sqs", "mypy_boto3_dynamodb")
    }


def test_every_runtime_import_is_provided_in_lambda() -> None:
    requirements = (ROOT / "layers" / "xnat_upload" / "requirements.txt").read_text().lower()
    missing = {}
    for source in runtime_sources():
        for name in third_party_imports(source):
            if name in RUNTIME_PROVIDED:
                continue
            provider = PROVIDED_BY.get(name)
            if provider is None or provider not in requirements:
                missing[name] = str(source.relative_to(ROOT))
    assert not missing, f"imported at run time but not in the layer: {missing}"


def test_the_powertools_extras_the_code_needs_are_requested() -> None:
    requirements = (ROOT / "layers" / "xnat_upload" / "requirements.txt").read_text()
    assert "aws-lambda-powertools[parser,tracer]" in requirements
