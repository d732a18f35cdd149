"""Confinement of requested files to a net's own upload prefix.

A relative path is checked as written: it is never percent-decoded, normalised or
rewritten, so what is validated is exactly what is fetched and stored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

from ..exceptions import KeyOutsidePrefixError, ManifestError, PathCollisionError

# RFC 3986 unreserved characters: the seed's rule for IDs that become URL segments.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._~-]+$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)

# Characters a file path segment may hold. XNAT percent-decodes a file path only when it
# contains %20 or %2B, so any other escaped character would be stored literally: the set is
# kept to what survives that rule unchanged (space -> %20 and + -> %2B force the decode).
_NAME_CHARS = "A-Za-z0-9_~+@=,()"  # and `.`, ` `, `-`, placed below where a character class allows them
_ANY_CHAR = f"[{_NAME_CHARS}. -]"
_SEGMENT_CHARS = re.compile(f"^{_ANY_CHAR}+$")
# A whole path of those characters, which holds no control character by construction: the common
# case is decided by one compiled match instead of a Unicode lookup per character (100,000 paths
# of 150 characters cost seconds that way). Anything else takes the slow path for a precise reason.
_PLAIN_PATH = re.compile(f"{_ANY_CHAR}+(?:/{_ANY_CHAR}+)*")
MAX_PATH_LENGTH = 512
MAX_SEGMENT_LENGTH = 255


def _relative_path_pattern() -> str:
    """`check_relative_path` as one regular expression, for the OpenAPI document (`MAX_PATH_LENGTH` is
    its maxLength): segments of the characters above joined by `/`, each at most `MAX_SEGMENT_LENGTH`
    long, with no leading or trailing space, and never `.` or `..`. Written without lookarounds, which
    not every JSON Schema tool supports; tests/unit/test_properties.py holds the two to one another."""
    not_space = f"[{_NAME_CHARS}.-]"
    not_space_or_dot = f"[{_NAME_CHARS}-]"
    inner = MAX_SEGMENT_LENGTH - 2
    segment = (
        f"(?:{not_space_or_dot}(?:{_ANY_CHAR}{{0,{inner}}}{not_space})?"  # starts with neither dot nor space
        f"|\\.(?:{_ANY_CHAR}{{0,{inner}}}{not_space_or_dot}|{_ANY_CHAR}{{1,{inner}}}{not_space}))"  # a dot, then more
    )
    return f"^{segment}(?:/{segment})*$"


RELATIVE_PATH_PATTERN = _relative_path_pattern()


def check_identifier(value: str, field: str) -> str:
    """An ID that becomes one URL path segment: unreserved characters, never `.` or `..`."""
    if not _IDENTIFIER.fullmatch(value) or value in (".", ".."):
        raise KeyOutsidePrefixError(f"{field} {value!r} must be one path segment of [A-Za-z0-9._~-], not '.' or '..'")
    return value


def check_relative_path(path: str) -> str:
    """Refuse anything that could escape `<net_id>/upload/` or be stored under another name."""
    if not isinstance(path, str) or not path:
        raise KeyOutsidePrefixError("empty path")
    if len(path) > MAX_PATH_LENGTH:
        raise KeyOutsidePrefixError(f"path longer than {MAX_PATH_LENGTH} characters")
    if _PLAIN_PATH.fullmatch(path):
        _check_segments(path)
        return path
    for char in path:
        if char == "\x00" or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise KeyOutsidePrefixError(f"path {path!r} contains a control character")
    if "\\" in path:
        raise KeyOutsidePrefixError(f"path {path!r} contains a backslash")
    if path.startswith("/"):
        raise KeyOutsidePrefixError(f"path {path!r} is absolute")
    _check_segments(path)
    for segment in path.split("/"):
        bad = sorted({c for c in segment if not _SEGMENT_CHARS.match(c)})
        if bad:
            raise KeyOutsidePrefixError(f"path {path!r} contains characters not allowed in XNAT file names: {bad}")
    return path


def _check_segments(path: str) -> None:
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise KeyOutsidePrefixError(f"path {path!r} has an empty, '.' or '..' segment")
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise KeyOutsidePrefixError(f"path {path!r} has a segment longer than {MAX_SEGMENT_LENGTH}")
        if segment != segment.strip():
            raise KeyOutsidePrefixError(f"path {path!r} has a segment with leading or trailing spaces")


def confined_key(upload_prefix: str, relative_path: str) -> str:
    """The S3 key of a requested file, proven to stay under `upload_prefix`."""
    check_relative_path(relative_path)
    key = upload_prefix + relative_path
    if not key.startswith(upload_prefix) or len(key.encode()) > 1024:
        raise KeyOutsidePrefixError(f"path {relative_path!r} does not fit under {upload_prefix!r}")
    return key


def find_collisions(paths: Iterable[str]) -> dict[str, str]:
    """Paths that cannot be stored next to an earlier one: later path -> that earlier path.

    XNAT stores files at their relative path on a filesystem, so two paths clash when they are
    equal once case is folded (case-insensitive storage), or when one would have to be both a
    file and a folder: `a` and `a/b` (or `A/c`).
    """
    files: dict[str, str] = {}  # folded path -> the path that claimed it as a file
    folders: dict[str, str] = {}  # folded folder -> the first path that needs it as a folder
    collisions: dict[str, str] = {}
    for path in paths:
        folded = path.casefold()
        parents = _parents(folded)
        clash = files.get(folded)
        if clash is None:
            clash = folders.get(folded)
        if clash is None:
            clash = next((files[p] for p in parents if p in files), None)
        if clash is not None:
            collisions[path] = clash
            continue
        files[folded] = path
        for parent in parents:
            folders.setdefault(parent, path)
    return collisions


def _parents(path: str) -> list[str]:
    """`a/b/c` -> [`a`, `a/b`]: the folders a file at that path needs."""
    parents: list[str] = []
    cut = path.find("/")
    while cut >= 0:
        parents.append(path[:cut])
        cut = path.find("/", cut + 1)
    return parents


def collision_message(path: str, other: str) -> str:
    """Why `path` was refused next to `other` (see `find_collisions`)."""
    folded, other_folded = path.casefold(), other.casefold()
    if folded == other_folded:
        return f"{path!r} would be stored as the same file as {other!r}"
    shorter = other if len(other_folded) < len(folded) else path
    return f"{path!r} cannot be stored next to {other!r}: {shorter!r} would have to be both a file and a folder"


def refusal_type(refused: Mapping[str, ManifestError]) -> type[ManifestError]:
    """The error of a manifest with refused paths: path_collision when every refusal is a collision,
    else key_outside_prefix. The intake's and the API's answer, so both say the same of one manifest."""
    if all(isinstance(error, PathCollisionError) for error in refused.values()):
        return PathCollisionError
    return KeyOutsidePrefixError


def confined_keys(upload_prefix: str, paths: Sequence[str]) -> tuple[dict[str, str], dict[str, ManifestError]]:
    """Every path's S3 key, and every path's reason to be refused (hostile, or colliding).

    The one check the trigger, the API and the CLI share: a job goes ahead only with no refusals.
    """
    collisions = find_collisions(paths)
    keys: dict[str, str] = {}
    refused: dict[str, ManifestError] = {}
    for path in paths:
        try:
            key = confined_key(upload_prefix, path)
            if path in collisions:
                raise PathCollisionError(collision_message(path, collisions[path]))
            keys[path] = key
        except ManifestError as exc:
            refused[path] = exc
    return keys, refused
