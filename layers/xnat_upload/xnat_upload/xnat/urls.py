"""URL building: every segment quoted, file paths encoded so XNAT stores the name as given."""

from __future__ import annotations

from urllib.parse import quote

# Safe in a path and left alone by XNAT; space and '+' are escaped, which makes XNAT decode the
# whole path (it decodes only when %20 or %2B is present), restoring them exactly.
_FILE_PATH_SAFE = "/-._~@=,()"


def segment(value: str) -> str:
    """One URL path segment: nothing in it can add a segment or a query."""
    return quote(value, safe="")


def file_path(relative_path: str) -> str:
    """A relative file path, slashes kept so XNAT creates the folders."""
    return quote(relative_path, safe=_FILE_PATH_SAFE)


def join(*segments: str) -> str:
    return "/" + "/".join(segment(s) for s in segments)
