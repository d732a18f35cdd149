"""tools/build.py: which Python `make build` hands to sam build, and how an offline build is confined.

Stand-in interpreters are small shell scripts that answer the probe as a real one would (or fail as a pyenv shim
does when its version is not selected).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools import build

WORKS = "#!/bin/sh\necho CPython 3.12\n"
SHIM = '#!/bin/sh\necho "pyenv: python3.12: command not found" >&2\nexit 127\n'
OTHER_VERSION = "#!/bin/sh\necho CPython 3.11\n"


def _interpreter(folder: Path, script: str, name: str = "python3.12") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(script)
    path.chmod(0o755)
    return path


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH folder and an empty pyenv root; tests put interpreters in them."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    return tmp_path


def test_python_on_path_comes_first(machine: Path) -> None:
    on_path = _interpreter(machine / "bin", WORKS)
    _interpreter(machine / "pyenv" / "versions" / "3.12.1" / "bin", WORKS)
    assert build.find_python() == on_path


def test_a_pyenv_shim_that_does_not_run_is_passed_over(machine: Path) -> None:
    _interpreter(machine / "bin", SHIM)
    installed = _interpreter(machine / "pyenv" / "versions" / "3.12.1" / "bin", WORKS)
    assert build.find_python() == installed


def test_another_version_under_the_name_is_passed_over(machine: Path) -> None:
    _interpreter(machine / "bin", OTHER_VERSION)
    assert build.find_python() is None


def test_the_newest_pyenv_patch_release_is_preferred(machine: Path) -> None:
    for version in ("3.12.2", "3.12.10", "3.12.9"):
        _interpreter(machine / "pyenv" / "versions" / version / "bin", WORKS)
    found = build.find_python()
    assert found is not None and found.parents[1].name == "3.12.10"


def test_none_found_says_where_it_looked(machine: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build.find_python() is None
    assert build.main(["build"]) == 2
    message = capsys.readouterr().err
    assert "no CPython 3.12 found" in message
    assert "python3.12 on PATH" in message and f"{machine / 'pyenv'}/versions/3.12*/bin" in message


def test_prefetch_without_the_runtimes_python_is_a_note_not_an_error(
    machine: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build.main(["prefetch", "--wheelhouse", str(machine / "wheelhouse")]) == 0
    assert "wheelhouse not prefetched: no CPython 3.12 found" in capsys.readouterr().err
    assert not (machine / "wheelhouse").exists()


def test_sam_build_gets_the_python_first_on_path_and_pip_only_the_wheelhouse(tmp_path: Path) -> None:
    python = tmp_path / "py312" / "bin" / "python3.12"
    env = build.build_environment(python, wheelhouse=tmp_path / "wheels", base={"PATH": "/usr/bin"})
    assert env["PATH"].split(":") == [str(python.parent), "/usr/bin"]
    assert env["PIP_NO_INDEX"] == "1" and env["PIP_FIND_LINKS"] == str(tmp_path / "wheels")
    assert env["SAM_CLI_TELEMETRY"] == "0"
    online = build.build_environment(python, base={"PATH": "/usr/bin"})
    assert "PIP_NO_INDEX" not in online and "PIP_FIND_LINKS" not in online


@pytest.mark.parametrize(
    ("filename", "expected", "pure"),
    [
        ("pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", "pydantic_core", False),
        ("wrapt-2.5.2-cp312-cp312-manylinux1_x86_64.manylinux_2_28_x86_64.whl", "wrapt", False),
        ("six-1.17.0-py2.py3-none-any.whl", "six", True),
        ("some-package-1.0.tar.gz", "some-package", False),
    ],
)
def test_wheelhouse_files_name_their_package(filename: str, expected: str, pure: bool) -> None:
    """Every file of pass 1 that is not pure Python gets its aarch64 wheel of the same version in pass 2."""
    name, version = build._name_and_version(filename)
    assert name == expected and version[0].isdigit()
    assert build._is_pure_wheel(filename) is pure


# ---------------------------------------------------------------- the lock


def test_the_lock_pins_every_requirement_with_hashes() -> None:
    pins = build.locked()
    for line in build.REQUIREMENTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, version = line.split("==")
        name = build._canonical(name.split("[")[0])
        assert pins[name][0] == version.strip(), f"{name}: run `make lock` after changing requirements.txt"
    for name, (_, hashes) in pins.items():
        assert hashes and all(len(h) == 64 for h in hashes), name


def test_the_layer_makefile_installs_the_lock_with_hashes_for_lambdas_platform() -> None:
    makefile = build.LAYER_MAKEFILE.read_text()
    options = re.search(r"^LAMBDA_PIP_OPTIONS := (.*?)\n\n", makefile, re.MULTILINE | re.DOTALL)
    assert options is not None
    assert options[1].replace("\\\n", " ").split() == build.lambda_platform_args()
    install = re.search(r"pip install (.*?)-r (\S+)", makefile.replace("\\\n", " "), re.DOTALL)
    assert install is not None and install[2] == "requirements.lock"
    assert "--require-hashes" in install[1].split() and "--no-compile" in install[1].split()
