"""`sam build` with the Lambda runtime's own Python: online (`make build`) or offline from a wheelhouse (the tests).

The layer's dependencies are installed from `layers/xnat_upload/requirements.lock`: every package, transitive ones
included, pinned with the SHA-256 of its wheels (Lambda's aarch64 ones and this machine's). sam build runs the layer's
Makefile (BuildMethod: makefile), which installs the lock with `pip install --require-hashes` for Lambda's platform
(python3.12, arm64, wheels only): a wheel whose hash is not in the lock fails the build. `requirements.txt` names
what the code imports; `lock` resolves it into the lock again after a change.

sam build runs with a CPython 3.12 (the runtime's version) first on PATH: the layer's Makefile runs its pip. This
module finds one (PATH first, then pyenv's versions folder, skipping pyenv shims that do not run).

    python -m tools.build build [-- SAM ARGS]   what `make build` runs: sam build into .aws-sam/build (uses PyPI)
    python -m tools.build lock                  requirements.txt -> requirements.lock, with hashes (uses PyPI)
    python -m tools.build prefetch              fills .venv/wheelhouse for offline builds (make test's install step)
    python -m tools.build find-python           prints the Python sam build will use, or why there is none

Offline: with PIP_NO_INDEX=1 and PIP_FIND_LINKS=<wheelhouse> (see `build_environment`), the layer's pip reads only
the wheelhouse, which `prefetch` fills with the lock's Lambda wheels (`pip download --require-hashes`, checked too).

Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_VERSION = "3.12"  # Globals.Function.Runtime in template.yaml (a test keeps the two equal)
LAMBDA_ABI = "cp312"
# What aws-lambda-builders accepts for arm64 on the python3.12 runtime (glibc 2.34), in its order.
LAMBDA_PLATFORMS = (
    "linux_aarch64",
    "manylinux2014_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_34_aarch64",
)
REQUIREMENTS = ROOT / "layers" / "xnat_upload" / "requirements.txt"
LOCK = ROOT / "layers" / "xnat_upload" / "requirements.lock"
LAYER_MAKEFILE = ROOT / "layers" / "xnat_upload" / "Makefile"
VENV = ROOT / ".venv"
SAM = VENV / "tools" / "sam" / "bin" / "sam"
WHEELHOUSE = VENV / "wheelhouse"
COMPLETE = ".complete"  # written last by prefetch: its absence means no usable wheelhouse


# ---------------------------------------------------------------- the runtime's Python


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def candidates(version: str = RUNTIME_VERSION) -> Iterator[Path]:
    """Where a CPython `version` may be, in order: PATH, then pyenv's versions folder (newest patch release first)."""
    on_path = shutil.which(f"python{version}")
    if on_path:
        yield Path(on_path)
    found = _pyenv_root().glob(f"versions/{version}*/bin/python{version}")
    yield from sorted(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parents[1].name)], reverse=True)


def runs_as(python: Path, version: str = RUNTIME_VERSION) -> bool:
    """Whether `python` starts, is CPython `version` and has pip (pyenv's shims exist on PATH but may refuse to run)."""
    probe = "import pip, platform, sys; print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])"
    try:
        out = subprocess.run(
            [str(python), "-c", probe],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.split() == ["CPython", version]


def find_python(version: str = RUNTIME_VERSION) -> Path | None:
    return next((p for p in candidates(version) if runs_as(p, version)), None)


def missing_python_message(version: str = RUNTIME_VERSION) -> str:
    return (
        f"no CPython {version} found: sam build needs the Lambda runtime's own Python (python{version}). "
        f"Looked for python{version} on PATH (a working one, with pip) and in {_pyenv_root()}/versions/{version}*/bin. "
        f"Install it (e.g. `pyenv install {version}`) or put it on PATH."
    )


# ---------------------------------------------------------------- sam build


def build_environment(
    python: Path, *, wheelhouse: Path | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for `sam build`: `python`'s folder first on PATH; with a wheelhouse, pip reads nothing else."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    env.setdefault("SAM_CLI_TELEMETRY", "0")
    if wheelhouse is not None:
        env["PIP_NO_INDEX"] = "1"
        env["PIP_FIND_LINKS"] = str(wheelhouse)
    return env


# ---------------------------------------------------------------- the lock and the wheelhouse


def lambda_platform_args() -> list[str]:
    """pip's options that select Lambda's wheels: python3.12 on arm64, binary only (the layer's Makefile too)."""
    platforms = [arg for platform in LAMBDA_PLATFORMS for arg in ("--platform", platform)]
    return [
        "--only-binary=:all:",
        *platforms,
        "--implementation",
        "cp",
        "--abi",
        LAMBDA_ABI,
        "--python-version",
        RUNTIME_VERSION,
    ]


def _name_and_version(filename: str) -> tuple[str, str]:
    """`pydantic_core-2.50.5-cp312-...whl` -> (pydantic_core, 2.50.5); sdists too (`name-1.0.tar.gz`)."""
    if filename.endswith(".whl"):
        name, version = filename.split("-")[:2]
        return name, version
    stem = re.sub(r"\.(tar\.gz|zip|tar\.bz2)$", "", filename)
    name, version = stem.rsplit("-", 1)
    return name, version


def _is_pure_wheel(filename: str) -> bool:
    return filename.endswith("-none-any.whl")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _resolve(python: Path, requirements: Path, *platform_args: str) -> dict[str, tuple[str, str]]:
    """name -> (version, sha256) of every wheel pip would install for `requirements` (transitive ones too)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--dry-run"]
        command += ["--ignore-installed", "--only-binary=:all:", "--report", str(report)]
        command += ["--target", str(Path(scratch) / "target"), *platform_args, "-r", str(requirements)]
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
        installs = json.loads(report.read_text())["install"]
    resolved = {}
    for item in installs:
        digest = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            raise SystemExit(f"lock: pip reported no sha256 for {item['metadata']['name']}")
        resolved[_canonical(item["metadata"]["name"])] = (item["metadata"]["version"], digest)
    return resolved


def lock(python: Path, requirements: Path = REQUIREMENTS, target: Path = LOCK) -> str:
    """Write the lock: each package Lambda's build installs, at the version resolved for Lambda, with the hashes of its
    Lambda wheel and of this machine's (the same file for pure-Python wheels). Returns its text."""
    for_lambda = _resolve(python, requirements, *lambda_platform_args())
    here = _resolve(python, requirements)
    lines = [
        "# The layer's dependencies, transitive ones included, with the SHA-256 of their wheels: Lambda's (python3.12,",
        "# arm64) and the build machine's. Generated from requirements.txt by `python -m tools.build lock`; do not edit.",
        "# The layer's Makefile installs it with pip --require-hashes.",
    ]
    for name in sorted(for_lambda):
        version, digest = for_lambda[name]
        digests = {digest}
        if name in here and here[name][0] == version:
            digests.add(here[name][1])
        hashes = " \\\n".join(f"    --hash=sha256:{d}" for d in sorted(digests))
        lines.append(f"{name}=={version} \\\n{hashes}")
    text = "\n".join(lines) + "\n"
    target.write_text(text)
    return text


def locked(lock_file: Path = LOCK) -> dict[str, tuple[str, set[str]]]:
    """name -> (version, hashes) as the lock pins them."""
    pins: dict[str, tuple[str, set[str]]] = {}
    text = re.sub(r"\\\n", " ", lock_file.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split()
        name, version = requirement.split("==")
        pins[_canonical(name)] = (version, {o.removeprefix("--hash=sha256:") for o in options})
    return pins


def _pip_download(python: Path, dest: Path, *args: str) -> None:
    command = [str(python), "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--dest", str(dest)]
    subprocess.run([*command, *args], check=True, stdin=subprocess.DEVNULL)


def requirements_digest(python: Path, requirements: Path = LOCK) -> str:
    return hashlib.sha256(requirements.read_bytes() + str(python).encode()).hexdigest()


def prefetch(python: Path, wheelhouse: Path = WHEELHOUSE, requirements: Path = LOCK) -> list[str]:
    """Download into a fresh `wheelhouse` the lock's Lambda wheels, checked against its hashes, as the layer's Makefile
    will ask for them; returns the wheelhouse's files."""
    if wheelhouse.exists():
        shutil.rmtree(wheelhouse)
    wheelhouse.mkdir(parents=True)
    _pip_download(python, wheelhouse, "--require-hashes", *lambda_platform_args(), "-r", str(requirements))
    (wheelhouse / COMPLETE).write_text(requirements_digest(python, requirements) + "\n")
    return sorted(f.name for f in wheelhouse.iterdir() if f.name != COMPLETE)


def wheelhouse_is_current(python: Path, wheelhouse: Path = WHEELHOUSE, requirements: Path = LOCK) -> bool:
    stamp = wheelhouse / COMPLETE
    return stamp.is_file() and stamp.read_text().strip() == requirements_digest(python, requirements)


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.build", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="sam build with the runtime's Python (make build)")
    build.add_argument("--sam", type=Path, default=SAM, help="the SAM CLI (default: %(default)s)")
    build.add_argument("sam_args", nargs="*", help="more arguments for sam build, after --")
    sub.add_parser("lock", help="resolve requirements.txt into requirements.lock, with hashes (uses PyPI)")
    fetch = sub.add_parser("prefetch", help="fill the wheelhouse for offline sam builds")
    fetch.add_argument("--wheelhouse", type=Path, default=WHEELHOUSE, help="default: %(default)s")
    sub.add_parser("find-python", help="print the Python sam build will use")
    args = parser.parse_args(argv)

    python = find_python()
    if args.command == "find-python":
        print(python or missing_python_message(), file=sys.stdout if python else sys.stderr)
        return 0 if python else 1
    if args.command == "lock":
        if python is None:
            print(f"lock: {missing_python_message()}", file=sys.stderr)
            return 2
        lock(python)
        print(f"wrote {LOCK.relative_to(ROOT)}", file=sys.stderr)
        return 0
    if args.command == "prefetch":
        if python is None:
            # Not an error: the build test is skipped on such a machine, with this reason.
            print(f"wheelhouse not prefetched: {missing_python_message()}", file=sys.stderr)
            return 0
        if wheelhouse_is_current(python, args.wheelhouse):
            (args.wheelhouse / COMPLETE).touch()  # newer than its inputs again, for make
            return 0
        files = prefetch(python, args.wheelhouse)
        print(f"wheelhouse: {len(files)} files for offline sam builds in {args.wheelhouse}", file=sys.stderr)
        return 0
    if python is None:
        print(f"make build: {missing_python_message()}", file=sys.stderr)
        return 2
    if not args.sam.exists():
        print(f"make build: SAM CLI not found at {args.sam}", file=sys.stderr)
        return 2
    print(f"sam build with {python}", file=sys.stderr)
    command = [str(args.sam), "build", *args.sam_args]
    return subprocess.run(command, cwd=ROOT, env=build_environment(python), check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
