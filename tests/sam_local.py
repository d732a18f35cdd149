"""What `sam local invoke`/`start-api` give a function's container, by the SAM CLI's rules, without Docker.

The SAM CLI (samcli/local/lambdafn/env_vars.py, samcli/commands/local/lib/local_lambda.py) passes a container only the
variables the template declares for the function (Globals and the function's own Environment). Each gets, highest
first: the --env-vars file's entry for the function's logical id (or its "Parameters" entry), the shell's variable of
that name, the template's value, where an intrinsic the CLI cannot resolve locally becomes a blank or a placeholder.
Anything else in the file is ignored. Besides, the CLI adds AWS_SAM_LOCAL=true and the shell session's credentials
and region. tests/deploy/test_sam_local.py holds this model against the pinned SAM CLI's own code.

Example::

    env = container_environment(load_template(), "UploadWorkerFunction", load_env_file())
    on_loopback(env, {CONTAINER_S3: "http://127.0.0.1:41234", CONTAINER_XNAT: "http://127.0.0.1:41235"})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from devserver.serve import DEFAULT_S3_PORT, DEFAULT_XNAT_PORT

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
ENV_FILE = ROOT / "events" / "env.json"
FUNCTIONS = ("ManifestTriggerFunction", "UploadWorkerFunction", "UploadApiFunction", "JobSweeperFunction")
# Where a container finds the machine that runs `make serve` (Linux: --add-host host.docker.internal:host-gateway).
CONTAINER_HOST = "host.docker.internal"
CONTAINER_S3 = f"http://{CONTAINER_HOST}:{DEFAULT_S3_PORT}"  # make serve's moto, as a container reaches it
CONTAINER_XNAT = f"http://{CONTAINER_HOST}:{DEFAULT_XNAT_PORT}"  # make serve's XNAT emulator
# What the README's sam local commands pass: moto's queues live in this region.
REGION = "us-east-1"


class NeedsTheStack(ValueError):
    """The template's value is a resource, a !Sub or a parameter without a default: only a deployment has it."""


def load_template() -> dict[str, Any]:
    decoded, problems = decode_str(TEMPLATE.read_text(encoding="utf-8"))
    assert not problems and decoded is not None, [str(p) for p in problems]
    return decoded


def load_env_file() -> dict[str, dict[str, str]]:
    return json.loads(ENV_FILE.read_text(encoding="utf-8"))


def declared_variables(template: dict[str, Any], function: str) -> dict[str, Any]:
    """The variables the template declares for `function`, with the template's values (intrinsics unresolved)."""
    variables = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    variables.update(own)
    return variables


def local_value(value: Any, parameters: dict[str, Any]) -> str:
    """The template's value as `sam local` can give it without a stack, or NeedsTheStack."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"} and "Default" in parameters.get(value["Ref"], {}):
        return str(parameters[value["Ref"]]["Default"])
    raise NeedsTheStack(f"{value!r} has no value outside a deployment")


def container_environment(template: dict[str, Any], function: str, env_file: dict[str, Any]) -> dict[str, str]:
    """The function's declared variables as its container gets them from a shell that exports none of them.

    Raises NeedsTheStack for a variable the env file leaves to a template value that only a deployment has.
    """
    overrides = {**env_file.get("Parameters", {}), **env_file.get(function, {})}
    environment = {}
    for name, value in declared_variables(template, function).items():
        if name in overrides:
            environment[name] = str(overrides[name])
            continue
        try:
            environment[name] = local_value(value, template.get("Parameters", {}))
        except NeedsTheStack as exc:
            raise NeedsTheStack(f"{function}: {name} = {exc}; events/env.json must set it") from None
    return environment


def session_variables(access_key: str = "testing", secret_key: str = "testing") -> dict[str, str]:
    """What the SAM CLI adds of its own (the shell session's credentials and the --region)."""
    return {
        "AWS_SAM_LOCAL": "true",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }


def on_loopback(environment: dict[str, str], addresses: dict[str, str]) -> dict[str, str]:
    """`environment` with each container-side base URL replaced: the same servers, on a test's own ports."""
    moved = {}
    for name, value in environment.items():
        for container_side, local in addresses.items():
            value = value.replace(container_side, local)
        moved[name] = value
    return moved
