"""Plain-text views of ledger items (where a job is) and result manifests (pure functions, no I/O).

Example::

    print(result_table(result))
    print(summary_line(result))
    print(progress_line(progress))  # "3/10 files, 1.5/4.0 MiB, 0 failed"
"""

from __future__ import annotations

from collections import Counter
from typing import Any

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_bytes(size: object) -> str:
    """`512 B`, `1.5 KiB`, `12.0 MiB`; `-` when unknown."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def clean(value: object) -> str:
    """Text safe for a terminal: control characters (from a hostile path, say) are escaped."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def in_place(entry: dict[str, Any]) -> bool:
    """The file is in XNAT with the requested content (as the result model counts it)."""
    status = entry.get("status")
    return status in ("uploaded", "in_xnat") or (status == "already_exists" and entry.get("identical") is True)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def progress_line(progress: dict[str, Any] | None) -> str:
    """One line for a job that has not finished, from its ledger item: its state, then counts."""
    if not progress:
        return "queued: waiting for the job to start"
    state = clean(progress.get("state") or "running")
    if state == "queued" and "files_total" not in progress:
        return "queued: waiting for the job to start"
    total = _int(progress.get("files_total"))
    done = _int(progress.get("files_done"))
    failed = _int(progress.get("files_failed"))
    bytes_done = human_bytes(_int(progress.get("bytes_done")))
    bytes_total = human_bytes(_int(progress.get("bytes_total")))
    line = f"{state}: {done}/{total} files, {bytes_done} of {bytes_total}, {failed} failed"
    attempt = _int(progress.get("attempt"))
    if state == "waiting_for_xnat":
        line += f"; XNAT unavailable, next try at {clean(progress.get('retry_at', '?'))}"
        if attempt and progress.get("max_attempts"):
            line += f" (delivery {attempt} of {_int(progress['max_attempts'])})"
        elif attempt:
            line += f" (after delivery {attempt})"
    elif progress.get("retry_at"):  # the worker crashed: its message comes back then
        line += f"; retrying at {clean(progress['retry_at'])}"
    elif _int(progress.get("continuation")):
        line += f" (invocation {_int(progress['continuation']) + 1})"
    return line


def _files(result: dict[str, Any]) -> list[dict[str, Any]]:
    files = result.get("files")
    return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []


def result_table(result: dict[str, Any]) -> str:
    """One row per requested file: path, status, bytes, and the error or the XNAT URL."""
    rows = [("PATH", "STATUS", "BYTES", "ERROR OR URL")]
    for entry in _files(result):
        status = clean(entry.get("status", "?"))
        if entry.get("status") == "already_exists" and entry.get("identical") is True:
            status += " (identical)"
        detail = entry.get("error") or entry.get("url") or ""
        rows.append((clean(entry.get("path", "?")), status, human_bytes(entry.get("bytes")), clean(detail)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for path, status, size, detail in rows:
        line = f"{path:<{widths[0]}}  {status:<{widths[1]}}  {size:>{widths[2]}}  {detail}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def summary_line(result: dict[str, Any]) -> str:
    """`job ab12 succeeded: 3/3 files in XNAT (1.5 MiB); uploaded 3`, plus a job-level error."""
    files = _files(result)
    done = [f for f in files if in_place(f)]
    size = sum(_int(f.get("bytes")) for f in done)
    counts = Counter(clean(f.get("status", "?")) for f in files)
    parts = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    line = (
        f"job {clean(result.get('job_id'))} {clean(result.get('status', 'unknown'))}: "
        f"{len(done)}/{len(files)} files in XNAT ({human_bytes(size)})"
    )
    if parts:
        line += f"; {parts}"
    error = result.get("error")
    if isinstance(error, dict):
        line += f"; error {clean(error.get('code'))}: {clean(error.get('message'))}"
    return line


def url_lines(result: dict[str, Any]) -> list[str]:
    urls = result.get("urls")
    return [clean(u) for u in urls if isinstance(u, str)] if isinstance(urls, list) else []


def problem_files(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of the files that are not in XNAT as requested, in manifest order."""
    return [f for f in _files(result) if not in_place(f)]


def problem_lines(result: dict[str, Any]) -> list[str]:
    """`path: status: error` for every file that is not in XNAT as requested."""
    return [
        f"{clean(f.get('path', '?'))}: {clean(f.get('status', '?'))}: {clean(f.get('error') or 'not in XNAT')}"
        for f in _files(result)
        if not in_place(f)
    ]


def check_lines(result: dict[str, Any]) -> list[str]:
    """A check job's findings: the XNAT objects that do not exist, then `status path [detail]` per file."""
    lines = []
    missing = result.get("xnat_missing")
    if isinstance(missing, list) and missing:
        lines.append("not in XNAT: " + ", ".join(clean(m) for m in missing))
    for entry in _files(result):
        detail = entry.get("error") if entry.get("status") != "in_xnat" else f"verified: {entry.get('verified')}"
        lines.append(
            f"{clean(entry.get('status', '?'))}  {clean(entry.get('path', '?'))}  {clean(detail or '')}".rstrip()
        )
    return lines
