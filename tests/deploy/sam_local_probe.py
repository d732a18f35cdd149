"""What `sam local` would do with a command, short of Docker: run by the pinned SAM CLI's own Python.

tests/deploy/test_sam_local.py runs `python sam_local_probe.py REQUEST.json` with .venv/tools/sam's interpreter,
in the repository's folder. REQUEST: {"commands": [["local", "invoke", "UploadWorkerFunction", "-e", ...], ...]}.
Prints, for each command: its arguments; `error`, the SAM CLI's own message when it refuses them (every option is
parsed and checked by its click command, nothing runs); else `function` (null for start-api), `region`, and
`environments`, what the CLI's local Lambda runner gives each function's container (LocalLambdaRunner, the code
`sam local invoke` and `start-api` call before they start a container), from this process's environment as the
shell. Not part of the test suite's own interpreter: it imports samcli.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from samcli.cli.context import Context
from samcli.commands.local.invoke.cli import cli as invoke
from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.commands.local.start_api.cli import cli as start_api
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

COMMANDS = {("local", "invoke"): invoke, ("local", "start-api"): start_api}


def environments(params: dict[str, Any], region: str | None) -> dict[str, dict[str, str]]:
    """Each function's container environment, as InvokeContext sets up the runner for these parameters."""
    stacks, _ = SamLocalStackProvider.get_stacks(
        params["template_file"],
        parameter_overrides=params.get("parameter_overrides"),
        global_parameter_overrides={"AWS::Region": region} if region else None,
    )
    provider = SamFunctionProvider(stacks, ignore_code_extraction_warnings=True)
    env_vars: dict[str, Any] = {}
    if params.get("env_vars"):
        with open(params["env_vars"], encoding="utf-8") as file:
            env_vars = json.load(file)
    runner = LocalLambdaRunner(
        local_runtime=None,  # type: ignore[arg-type] - never started: only the environments are asked for
        function_provider=provider,
        cwd=os.getcwd(),
        real_path=os.getcwd(),
        aws_region=region,
        env_vars_values=env_vars,
    )
    return {function.name: runner._make_env_vars(function).resolve() for function in provider.get_all()}


def probe(argv: list[str]) -> dict[str, Any]:
    command = COMMANDS.get((argv[0], argv[1]) if len(argv) > 1 else ("", ""))
    if command is None:
        return {"argv": argv, "error": "not sam local invoke or sam local start-api"}
    try:
        context = command.make_context(" ".join(argv[:2]), list(argv[2:]))
    except click.ClickException as exc:
        return {"argv": argv, "error": exc.format_message()}
    params = context.params
    region = context.find_object(Context).region
    found = environments(params, region)
    function = params.get("function_logical_id")
    if function is not None and function not in found:
        return {"argv": argv, "error": f"no function {function!r} in the template"}
    return {
        "argv": argv,
        "error": None,
        "function": function,
        "region": region,
        "event": params.get("event"),
        "env_vars": params.get("env_vars"),
        "add_host": params.get("add_host"),
        "port": params.get("port"),
        "parameter_overrides": params.get("parameter_overrides"),
        "environments": found,
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as request:
        commands = json.load(request)["commands"]
    print(json.dumps([probe(argv) for argv in commands]))
