"""The shell examples of the README and its docs/ pages, found by the tag after a fence's language, so that
tests run or check them. The pages are read in the README's order, then docs/ in the order of its index.

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

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_LINKED_PAGE = re.compile(r"\]\((docs/[\w-]+\.md)\)")


def pages() -> list[Path]:
    """README.md, then every docs/ page it links, in the order it links them (each once)."""
    linked = dict.fromkeys(ROOT / p for p in _LINKED_PAGE.findall(README.read_text(encoding="utf-8")))
    return [README, *(p for p in linked if p.is_file())]


def documentation() -> str:
    """The README and its docs/ pages as one text, in reading order."""
    return "\n".join(page.read_text(encoding="utf-8") for page in pages())


_FENCE = re.compile(r"^```(?P<language>[\w-]*)(?:[ \t]+(?P<tag>[\w-]+))?[ \t]*$")


def blocks(tag: str, text: str | None = None) -> list[str]:
    """The bodies of the fenced blocks tagged `tag`, in reading order (README, then its docs/ pages)."""
    found: list[str] = []
    body: list[str] | None = None
    inside = False
    for line in (documentation() if text is None else text).splitlines():
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
