"""The README's shell examples, found by the tag after a fence's language, so that tests run or check them.

    ```sh local-stack      run against `make serve` by tests/integration/test_readme_commands.py
    ```sh sam-local        need Docker: checked without it by tests/deploy/test_sam_local.py

Example::

    for argv in sam_commands():  # ["local", "invoke", "UploadWorkerFunction", "-e", ...]
        ...
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(?P<language>[\w-]*)(?:[ \t]+(?P<tag>[\w-]+))?[ \t]*$")


def blocks(tag: str, text: str | None = None) -> list[str]:
    """The bodies of the fenced blocks tagged `tag`, in the README's order."""
    found: list[str] = []
    body: list[str] | None = None
    inside = False
    for line in (README.read_text(encoding="utf-8") if text is None else text).splitlines():
        if not inside:
            match = _FENCE.match(line)
            if match:
                inside = True
                body = [] if match["tag"] == tag else None
        elif line.startswith("```"):
            inside = False
            if body is not None:
                found.append("\n".join(body) + "\n")
            body = None
        elif body is not None:
            body.append(line)
    return found


def logical_lines(block: str) -> list[str]:
    """Each command of a block on one line (backslash continuations joined), blank and comment lines left out."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def sam_commands(tag: str = "sam-local") -> list[list[str]]:
    """The arguments of every `sam ...` command in the blocks tagged `tag` (comments dropped)."""
    commands = []
    for block in blocks(tag):
        for line in logical_lines(block):
            words = shlex.split(line, comments=True)
            if words and words[0] == "sam":
                commands.append(words[1:])
    return commands
