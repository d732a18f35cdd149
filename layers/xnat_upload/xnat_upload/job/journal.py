"""The job's write-ahead journal: which paths it is about to send to which XNAT target, and after
each PUT what came of it, in S3 before XNAT can hold a byte of it.

Why: a PUT that fails or is cut off may leave the job's bytes on XNAT's disk, uncatalogued; only
bytes the job knows to be its own may ever be replaced without `exist_ok` (transfer/engine.py,
"Integrity rule"). The checkpoint holds that knowledge between invocations, but an invocation can
be killed at any instruction (timeout, out of memory) long after its last checkpoint. So every PUT
is preceded by a journal write naming its paths and target, and followed by one with the outcome
(skipped when it says nothing new). A kill then loses at most the outcome of the one PUT in flight
(one zip batch or one file), whose paths stay marked as possibly this job's own, for that target.

Layout: `results/.journal/<job_id>/<seq>.json` segments (at most `SEGMENT_MAX_PATHS` paths each,
so no write grows with the job) and, once per manifest version, `<seq>-base.json`: the markers the
version carries over from earlier versions, per target. A reader starts at the latest base; the
checkpoint's `journal_seq` says which segments it has absorbed already.

Example::

    journal, previous = open_journal(store, job_id, version, state, dropped, result_document)
    run_job(..., previous=previous, journal=journal)   # the engine calls journal.bind(xnat).before/after
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..observability import logger
from ..result import FileResult, PreviousOutcomes, target_key
from ..store import JobStore
from .checkpoint import JobState

FORMAT = 1
SEGMENT_MAX_PATHS = 1000
BASE_SUFFIX = "-base.json"


def _name(seq: int, base: bool = False) -> str:
    return f"{seq:010d}{BASE_SUFFIX if base else '.json'}"


def _seq(name: str) -> int | None:
    stem = name.removesuffix(BASE_SUFFIX).removesuffix(".json")
    return int(stem) if stem.isdigit() else None


@dataclass
class TargetJournal:
    """The journal bound to the XNAT target the transfers go to (what the engine sees)."""

    journal: Journal
    xnat: dict[str, str]

    def before(self, files: Sequence[FileResult], md5: dict[str, str | None]) -> None:
        """Record, durably, that `files` are about to be sent (with the MD5 of their bytes where known)."""
        self.journal.record(self.xnat, {f.path: (md5.get(f.path) or f.md5, True) for f in files})

    def after(self, files: Sequence[FileResult]) -> None:
        """Record what the PUT left: a path stays marked while bytes of ours may be uncatalogued there."""
        self.journal.record(
            self.xnat, {f.path: (f.md5 if f.put_unconfirmed else None, f.put_unconfirmed) for f in files}
        )


@dataclass
class Journal:
    store: JobStore
    state: JobState
    next_seq: int
    _seq: int | None = None  # the segment being written in this invocation
    _files: dict[str, list[Any]] = field(default_factory=dict)
    _xnat: dict[str, str] = field(default_factory=dict)

    def bind(self, xnat: dict[str, str]) -> TargetJournal:
        return TargetJournal(self, dict(xnat))

    def record(self, xnat: dict[str, str], entries: dict[str, tuple[str | None, bool]]) -> None:
        """Add entries to the current segment and write it (nothing when nothing changed)."""
        rows = {path: [md5, 1 if mine else 0] for path, (md5, mine) in entries.items()}
        if self._seq is not None and xnat == self._xnat and all(self._files.get(p) == r for p, r in rows.items()):
            return
        full = self._seq is not None and len(self._files.keys() | rows.keys()) > SEGMENT_MAX_PATHS
        if self._seq is None or full or xnat != self._xnat:
            self._seq, self._files, self._xnat = self.next_seq, {}, dict(xnat)
            self.next_seq += 1
        self._files.update(rows)
        self.store.write_journal(
            self.state.job_id,
            _name(self._seq),
            {
                "format": FORMAT,
                "manifest_version": self.state.manifest_version,
                "seq": self._seq,
                "xnat": self._xnat,
                "files": self._files,
            },
        )
        self.state.journal_seq = self._seq  # a checkpoint of this state absorbs every segment up to here


def open_journal(
    store: JobStore,
    job_id: str,
    version: str | None,
    state: JobState,
    dropped: JobState | None,
    result_document: dict[str, Any] | None,
    previous: PreviousOutcomes,
    listed: list[str] | None = None,
) -> tuple[Journal, PreviousOutcomes]:
    """Read what the journal holds for this invocation and return the journal to write on, and
    `previous` completed with it.

    * This version's own segments since its checkpoint (`state.journal_seq`): paths it sent in an
      invocation killed before checkpointing (`PreviousOutcomes.sent`, per target).
    * A new version (no base of its own yet): the markers earlier versions left, per target: the
      latest base's, replaced for its version's target by that version's result when there is one
      (the result absorbed them), else joined with its segments and its checkpoint. They are
      written as this version's base before anything is sent, so a kill cannot lose them.
    """
    if listed is None:  # else the caller listed the segment names already
        listed = store.journal_names(job_id)
    names = sorted((seq, name) for name in listed if (seq := _seq(name)) is not None)
    next_seq = (names[-1][0] + 1) if names else 1
    base_at = max((i for i, (_, name) in enumerate(names) if name.endswith(BASE_SUFFIX)), default=None)
    base = store.read_journal(job_id, names[base_at][1]) if base_at is not None else None
    after_base = names[base_at + 1 :] if base_at is not None else names
    carried: dict[str, set[str]] = {}
    if isinstance(base, dict):
        for target, paths in (base.get("carried") or {}).items():
            carried[str(target)] = {str(p) for p in paths}
    own_version = isinstance(base, dict) and base.get("manifest_version") == version and version is not None
    journal = Journal(store, state, next_seq)
    if own_version:
        absorbed = state.journal_seq
        sent = _sent(store, job_id, [(s, n) for s, n in after_base if s > absorbed], version)
        return journal, previous.merged(carried, sent)

    # A new manifest version: gather what earlier ones may have left on XNAT's disk, per target.
    base_version = base.get("manifest_version") if isinstance(base, dict) else None
    result_version = (result_document or {}).get("manifest_version")
    from_result = PreviousOutcomes.from_document(result_document).unconfirmed
    if base_version is not None and result_version == base_version:
        # That version finished: its result absorbed its segments and the markers for its target.
        for target, paths in from_result.items():
            carried[target] = set(paths)
        if not from_result:
            xnat = (result_document or {}).get("xnat")
            target = target_key(xnat) if isinstance(xnat, dict) else None
            carried.pop(target or "", None)
    else:
        for target, paths in from_result.items():
            carried.setdefault(target, set()).update(paths)
        for target, paths in _unconfirmed(store, job_id, after_base).items():
            carried.setdefault(target, set()).update(paths)
        if dropped is not None and (target := target_key(dropped.xnat)):
            carried.setdefault(target, set()).update(f.path for f in dropped.files if f.put_unconfirmed)
    carried = {target: paths for target, paths in carried.items() if paths}
    store.write_journal(
        job_id,
        _name(journal.next_seq, base=True),
        {"format": FORMAT, "manifest_version": version, "seq": journal.next_seq, "carried": _lists(carried)},
    )
    journal.next_seq += 1
    state.journal_seq = journal.next_seq - 1
    if carried:
        logger.info("markers carried from earlier manifest versions", extra={"targets": len(carried)})
    return journal, previous.merged(carried, {})


def _segments(store: JobStore, job_id: str, names: list[tuple[int, str]]) -> list[dict[str, Any]]:
    documents = []
    for _, name in names:
        if name.endswith(BASE_SUFFIX):
            continue
        document = store.read_journal(job_id, name)
        if isinstance(document, dict) and document.get("format") == FORMAT and isinstance(document.get("files"), dict):
            documents.append(document)
    return documents


def _sent(
    store: JobStore, job_id: str, names: list[tuple[int, str]], version: str | None
) -> dict[str, dict[str, str | None]]:
    """Per target, the paths this version's journal still marks as possibly sent, later segments winning."""
    sent: dict[str, dict[str, str | None]] = {}
    for document in _segments(store, job_id, names):
        xnat = document.get("xnat")
        target = target_key(xnat) if isinstance(xnat, dict) else None
        if document.get("manifest_version") != version or target is None:
            continue
        paths = sent.setdefault(target, {})
        for path, row in document["files"].items():
            if isinstance(row, list) and len(row) == 2 and row[1]:
                paths[str(path)] = str(row[0]) if row[0] else paths.get(str(path))
            else:
                paths.pop(str(path), None)
    return sent


def _unconfirmed(store: JobStore, job_id: str, names: list[tuple[int, str]]) -> dict[str, set[str]]:
    """Per target, paths any version's segments still mark: bytes of this job may lie there."""
    marked: dict[str, set[str]] = {}
    for document in _segments(store, job_id, names):
        xnat = document.get("xnat")
        target = target_key(xnat) if isinstance(xnat, dict) else None
        if target is None:
            continue
        for path, row in document["files"].items():
            if isinstance(row, list) and len(row) == 2 and row[1]:
                marked.setdefault(target, set()).add(str(path))
            else:
                marked.get(target, set()).discard(str(path))
    return marked


def _lists(carried: dict[str, set[str]]) -> dict[str, list[str]]:
    return {target: sorted(paths) for target, paths in sorted(carried.items())}
