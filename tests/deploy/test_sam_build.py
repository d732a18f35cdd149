"""`sam build` of the real template produces what Lambda needs, and nothing more.

The pinned SAM CLI builds into a temporary folder, offline, as `make build` would: CPython 3.12 (the runtime's Python,
found as `make build` finds it) first on PATH, and pip confined to the wheelhouse that make test's install step
prefetched (PIP_NO_INDEX=1, PIP_FIND_LINKS=<wheelhouse>), so the build needs no network at all. One build serves
every test here, whichever xdist worker runs them. Where no CPython 3.12 exists the module is skipped with that reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from tools.build import (
    RUNTIME_VERSION,
    build_environment,
    find_python,
    locked,
    missing_python_message,
    wheelhouse_is_current,
)

from .conftest import ROOT, WHEELHOUSE, once_per_session, run_offline

EM_AARCH64 = 183  # ELF e_machine of ARM 64-bit (Lambda's arm64)
# Never in an artifact: what installing, testing and linting leave in the working tree.
NEVER_SHIPPED = re.compile(
    r"(^|/)(__pycache__|\.pytest_cache|\.ruff_cache|\.hypothesis|\.mypy_cache|tests?)(/|$)|"
    r"\.egg-info(/|$)|\.pyc$|(^|/)test_[^/]*\.py$|(^|/)conftest\.py$"
)


@pytest.fixture(scope="session")
def built(sam_cli: Path, tool_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build once per test session; returns the build folder (template.yaml, one folder per function and layer)."""
    python = find_python()
    if python is None:
        pytest.skip(missing_python_message())
    if not wheelhouse_is_current(python, WHEELHOUSE):
        pytest.skip(f"no current wheelhouse at {WHEELHOUSE}: make test prefetches it (python -m tools.build prefetch)")

    def build(out: Path) -> None:
        env = build_environment(python, wheelhouse=WHEELHOUSE, base=tool_env)
        argv = [sam_cli, "build", "--template-file", ROOT / "template.yaml", "--build-dir", out / "build"]
        result = run_offline([*argv, "--cache-dir", out / "cache", "--parallel"], env=env, timeout=300)
        (out / "outcome.json").write_text(json.dumps({"returncode": result.returncode, "output": result.stdout}))

    out = once_per_session(tmp_path_factory, "sam-build", build)
    outcome = json.loads((out / "outcome.json").read_text())
    assert outcome["returncode"] == 0, outcome["output"][-4000:]
    return out / "build"


@pytest.fixture(scope="session")
def built_template(built: Path) -> dict[str, Any]:
    template, problems = decode(str(built / "template.yaml"))
    assert not problems and template is not None
    return template


@pytest.fixture(scope="module")
def source_template() -> dict[str, Any]:
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems and template is not None
    return template


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _shippable_sources(folder: Path) -> set[str]:
    """What the source folder holds that git does not ignore (tracked or new): exactly what should ship."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."],
            cwd=folder,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"needs a git checkout to tell shipped files from working-tree leftovers: {error}")
    return {name for name in listing.stdout.split("\0") if name and (folder / name).is_file()}


def _elf_machine(path: Path) -> int | None:
    """e_machine of a 64-bit little-endian ELF file, None for anything else."""
    header = path.read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    return int(struct.unpack_from("<H", header, 18)[0])


# ---------------------------------------------------------------- what is built


def test_every_function_is_built_with_its_handler(built: Path, built_template: dict[str, Any]) -> None:
    functions = _of_type(built_template, "AWS::Serverless::Function")
    assert functions, "no function in the built template"
    for name, function in functions.items():
        props = function["Properties"]
        module, handler = props["Handler"].rsplit(".", 1)
        source = built / props["CodeUri"] / f"{module.replace('.', '/')}.py"
        assert source.is_file(), f"{name}: {source} missing"
        assert re.search(rf"^def {handler}\(", source.read_text(), re.MULTILINE), f"{name}: no {handler} in {source}"


def test_the_layer_is_built_with_the_core_package(built: Path, built_template: dict[str, Any]) -> None:
    layers = _of_type(built_template, "AWS::Serverless::LayerVersion")
    assert set(layers) == {"XnatUploadLayer"}
    content = built / layers["XnatUploadLayer"]["Properties"]["ContentUri"]
    # Lambda puts /opt/python on sys.path: everything importable sits in python/.
    assert [p.name for p in content.iterdir()] == ["python"]
    assert (content / "python" / "xnat_upload" / "__init__.py").is_file()


def test_the_layer_holds_the_pinned_requirements(built: Path) -> None:
    site = built / "XnatUploadLayer" / "python"
    installed = {p.name.lower() for p in site.glob("*.dist-info")}
    for line in (ROOT / "layers" / "xnat_upload" / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, version = re.sub(r"\[.*\]", "", line).split("==")
        assert f"{name.strip().replace('-', '_').lower()}-{version.strip()}.dist-info" in installed, line


# ---------------------------------------------------------------- built for Lambda's arm64 python3.12


def test_native_extensions_are_built_for_arm64(built: Path) -> None:
    extensions = sorted((built / "XnatUploadLayer").rglob("*.so"))
    assert any(p.name.startswith("_pydantic_core.") for p in extensions), "pydantic_core's extension is missing"
    wrong = {str(p.relative_to(built)): _elf_machine(p) for p in extensions if _elf_machine(p) != EM_AARCH64}
    assert wrong == {}, "extensions that are not aarch64 ELF (e_machine 183) files"
    tag = f"cpython-{RUNTIME_VERSION.replace('.', '')}-aarch64-linux-gnu"
    other_pythons = [p.name for p in extensions if tag not in p.name and ".abi3." not in p.name]
    assert other_pythons == [], f"extensions built for another Python than {RUNTIME_VERSION}"


def test_the_build_is_for_the_templates_runtime(source_template: dict[str, Any]) -> None:
    """The Python the build runs with (tools.build) is the runtime the functions and the layer declare."""
    runtime = f"python{RUNTIME_VERSION}"
    assert source_template["Globals"]["Function"]["Runtime"] == runtime
    assert source_template["Globals"]["Function"]["Architectures"] == ["arm64"]
    layer = source_template["Resources"]["XnatUploadLayer"]
    # The layer's Makefile installs the lock for python3.12 on arm64 (tests/unit/test_build_tool.py checks its options).
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}


def test_the_layer_holds_exactly_the_locked_packages(built: Path) -> None:
    """Every package of requirements.lock at its pinned version, and nothing the lock does not pin."""
    site = built / "XnatUploadLayer" / "python"
    installed = {}
    for info in site.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        installed[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert installed == {name: version for name, (version, _) in locked().items()}


def test_the_wheelhouse_holds_only_wheels_the_lock_names_by_hash() -> None:
    """The offline build's wheels are the lock's: prefetch downloads them with --require-hashes."""
    if not WHEELHOUSE.is_dir():
        pytest.skip(f"no wheelhouse at {WHEELHOUSE}")
    hashes = {digest for _, digests in locked().values() for digest in digests}
    wheels = sorted(WHEELHOUSE.glob("*.whl"))
    assert wheels
    for wheel in wheels:
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() in hashes, wheel.name


# ---------------------------------------------------------------- nothing else


def test_functions_ship_exactly_their_sources(
    built: Path, built_template: dict[str, Any], source_template: dict[str, Any]
) -> None:
    for name, function in _of_type(source_template, "AWS::Serverless::Function").items():
        artifact = built / built_template["Resources"][name]["Properties"]["CodeUri"]
        assert _files(artifact) == _shippable_sources(ROOT / function["Properties"]["CodeUri"]), name


def test_the_layer_ships_exactly_the_core_packages_sources(built: Path) -> None:
    package = built / "XnatUploadLayer" / "python" / "xnat_upload"
    assert _files(package) == _shippable_sources(ROOT / "layers" / "xnat_upload" / "xnat_upload")


def test_no_working_tree_leftovers_anywhere(built: Path, built_template: dict[str, Any]) -> None:
    """No egg-info (`pip install -e .` leaves one in layers/xnat_upload/), tests, caches or bytecode."""
    ours = [built / r["Properties"]["CodeUri"] for r in _of_type(built_template, "AWS::Serverless::Function").values()]
    ours.append(built / "XnatUploadLayer" / "python" / "xnat_upload")
    leftovers = sorted(f"{folder.name}/{f}" for folder in ours for f in _files(folder) if NEVER_SHIPPED.search(f))
    assert leftovers == []
    layer = built / "XnatUploadLayer" / "python"
    everywhere = sorted(str(p.relative_to(built)) for p in layer.rglob("*") if re.search(r"\.egg-info$|\.pyc$", p.name))
    assert everywhere == []
