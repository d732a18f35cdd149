"""`make serve` on a taken port stops at once with a message naming the port and the flag that moves it.

Before, moto's server waited forever for a socket it could not bind (Ctrl-C did not stop it) and the others raised
a bare `OSError: [Errno 98]`. Each port flag is tried with a real socket listening on a free port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devserver import serve
from tests.processes import local_stack_served, popen, stop

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ("--s3-port", "--xnat-port", "--api-port")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A free port that a listening socket now holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run_serve(*args: str, tmp_path: Path, timeout: float = 30.0) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "xnat_upload")])}
    command = [sys.executable, "-m", "devserver.serve", "--s3-port", "0", "--xnat-port", "0", "--api-port", "0"]
    started = time.monotonic()
    process = popen(
        [*command, "--env-dir", str(tmp_path), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        stop(process)
    return process.returncode, output, time.monotonic() - started


@pytest.mark.parametrize("flag", FLAGS)
def test_a_taken_port_stops_make_serve_at_once_naming_its_flag(flag: str, taken_port: int, tmp_path: Path) -> None:
    code, output, seconds = run_serve(flag, str(taken_port), tmp_path=tmp_path)

    assert code == serve.EXIT_PORT_IN_USE, output
    assert seconds < 20, f"took {seconds:.1f}s"
    assert f"port {taken_port} on 127.0.0.1 is in use (set another with {flag})" in output
    assert f"make serve ARGS='{flag} {taken_port + 1}'" in output
    assert "Traceback" not in output
    assert not (tmp_path / "env.sh").exists(), "nothing was started, so nothing describes it"


def test_every_taken_port_is_named_at_once(tmp_path: Path) -> None:
    holders = []
    try:
        for _ in FLAGS:
            holder = socket.socket()
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            holders.append(holder)
        ports = [h.getsockname()[1] for h in holders]
        code, output, _ = run_serve("--s3-port", str(ports[0]), "--xnat-port", str(ports[1]), tmp_path=tmp_path)
    finally:
        for holder in holders:
            holder.close()
    assert code == serve.EXIT_PORT_IN_USE
    assert "--s3-port" in output and "--xnat-port" in output


def test_every_option_of_make_serve_has_help() -> None:
    parser = serve.build_parser()
    for action in parser._actions:
        assert action.help, action.option_strings
    assert "ARGS=" in parser.format_help()


def test_make_serve_writes_the_env_files_for_the_ports_it_runs_on() -> None:
    with local_stack_served() as served:
        shell = (served.env_dir / "env.sh").read_text(encoding="utf-8")
        sam = json.loads((served.env_dir / "env.json").read_text(encoding="utf-8"))
    for name, value in served.exports.items():
        assert f"export {name}={value}\n" in shell
    s3_port, xnat_port = (int(served.urls[name].rsplit(":", 1)[1]) for name in ("s3", "xnat"))
    assert sam == serve.sam_local_env(s3_port, xnat_port)
    assert sam["UploadWorkerFunction"]["XNAT_URL"] == f"http://host.docker.internal:{xnat_port}"


def test_make_serve_and_make_demo_print_no_metrics_or_warnings_while_jobs_run(tmp_path: Path) -> None:
    # Powertools prints EMF metrics to stdout (the ColdStart line even with POWERTOOLS_METRICS_DISABLED) and warns
    # about flushes without metrics: in a terminal they only bury what matters. The tests that read metrics
    # (test_observability.py) run the handlers without devserver's quieting.
    with local_stack_served() as served:
        env = {
            **os.environ,
            **served.exports,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "xnat_upload")]),
        }
        manifest = str(ROOT / "events" / "manifest.json")
        submit = subprocess.run(
            [sys.executable, "-m", "xnat_upload.cli", "submit", manifest, "--job-id", "quiet", "--wait"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert submit.returncode == 0, submit.stderr
    demo = subprocess.run(
        [sys.executable, "-m", "devserver.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for output in (served.printed_later, demo.stdout + demo.stderr):
        assert '"_aws"' not in output
        assert "Warning" not in output
