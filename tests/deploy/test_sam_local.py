"""The README's `sam local` commands, checked by the pinned SAM CLI without Docker (no engine runs on these machines).

Not run: `sam local invoke` and `start-api` need a container runtime. Checked instead, by the CLI's own code
(tests/deploy/sam_local_probe.py, run with the SAM CLI's interpreter, offline): each command of the README's
```sh sam-local blocks parses (every option and value), names a function of the template and a sample event of its
kind, and gives each function's container events/env.json's values, even from a shell that exported what
`make serve` prints (loopback addresses). The model of those rules that the other tests use (tests/sam_local.py) is
held against the same code. tests/integration/test_sam_local_events.py runs the events with these environments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devserver import serve

from ..readme import sam_commands
from ..sam_local import (
    ENV_FILE,
    FUNCTIONS,
    REGION,
    container_environment,
    declared_variables,
    load_env_file,
    load_template,
    session_variables,
)
from .conftest import ROOT, run_offline

PROBE = Path(__file__).with_name("sam_local_probe.py")
# What `make serve` prints to export (loopback addresses), as a user's shell may hold it when running sam local.
MAKE_SERVE_EXPORTS = {
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{serve.DEFAULT_S3_PORT}",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "DATA_BUCKET": "xnat-upload-data-local",
    "JOB_QUEUE_URL": f"http://127.0.0.1:{serve.DEFAULT_S3_PORT}/123456789012/xnat-upload-jobs.fifo",
    "JOBS_TABLE": "xnat-upload-jobs",
}
# Which sample events fit which function: (event source, what its records come from).
EVENT_SOURCE = {
    "ManifestTriggerFunction": ("aws:sqs", "xnat-upload-intake"),
    "UploadWorkerFunction": ("aws:sqs", "xnat-upload-jobs.fifo"),
}


@pytest.fixture(scope="module")
def probed(sam_cli: Path, tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    request = tmp_path_factory.mktemp("sam-local") / "request.json"
    request.write_text(json.dumps({"commands": sam_commands()}))
    assert set(MAKE_SERVE_EXPORTS) == set(serve.EXPORTS)
    # The shell's value of a declared variable would go into the container (this test process has some): only
    # make serve's exports are in the probe's shell, which the env file must override where a function declares them.
    template = load_template()
    declared = {name for function in FUNCTIONS for name in declared_variables(template, function)}
    shell = {name: value for name, value in tool_env.items() if name not in declared}
    run = run_offline(
        [sam_cli.parent / "python", PROBE, request], env={**shell, **MAKE_SERVE_EXPORTS}, timeout=120, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_readme_gives_sam_local_commands_for_every_function_and_the_api() -> None:
    commands = sam_commands()
    invoked = {argv[2] for argv in commands if argv[:2] == ["local", "invoke"]}
    assert invoked == set(FUNCTIONS)
    assert ["local", "start-api"] in [argv[:2] for argv in commands]


def test_the_sam_cli_accepts_every_command_of_the_readme(probed: list[dict[str, Any]]) -> None:
    for command in probed:
        assert command["error"] is None, command


def test_each_command_points_the_container_at_the_local_stack(probed: list[dict[str, Any]]) -> None:
    for command in probed:
        assert Path(ROOT, command["env_vars"]) == ENV_FILE, command["argv"]
        assert command["add_host"] == {"host.docker.internal": "host-gateway"}, "Linux needs it; Docker Desktop too"
        assert command["region"] == REGION, "moto's queues are in this region"
        if command["function"] is None:  # start-api
            assert command["port"] != serve.DEFAULT_API_PORT, "make serve's own API listens there"


def test_each_invocation_gets_a_sample_event_of_its_functions_kind(probed: list[dict[str, Any]]) -> None:
    for command in probed:
        if command["function"] is None:
            continue
        event = json.loads(Path(ROOT, command["event"]).read_text(encoding="utf-8"))
        if command["function"] in EVENT_SOURCE:
            source, queue = EVENT_SOURCE[command["function"]]
            (record,) = event["Records"]
            assert record["eventSource"] == source and record["eventSourceARN"].endswith(f":{queue}"), command
        elif command["function"] == "JobSweeperFunction":  # its schedule's event
            assert (event["source"], event["detail-type"]) == ("aws.events", "Scheduled Event"), command
        else:
            assert {"httpMethod", "path", "requestContext"} <= set(event), command


def test_sam_local_gives_each_function_the_env_files_values_whatever_the_shell_exported(
    probed: list[dict[str, Any]],
) -> None:
    env_file = load_env_file()
    for command in probed:
        for function, environment in command["environments"].items():
            for name, value in env_file[function].items():
                assert environment[name] == value, (command["argv"], function, name)


def test_the_model_of_sam_local_in_the_tests_is_what_the_sam_cli_does(probed: list[dict[str, Any]]) -> None:
    template, env_file = load_template(), load_env_file()
    own = session_variables()
    for command in probed:
        for function, environment in command["environments"].items():
            declared = set(declared_variables(template, function))
            assert {k: v for k, v in environment.items() if k in declared} == container_environment(
                template, function, env_file
            ), function
            assert {k: environment[k] for k in own} == own, function
            others = set(environment) - declared - set(own)
            assert all(name.startswith("AWS_") for name in others), (function, others - {"AWS_"})
