"""Check mode (`"mode": "check"`): what XNAT holds against a manifest, with nothing written to XNAT.

A check job goes through the same queue and message group as an upload (so it never reads a
resource while one of our jobs writes it), logs in, and only reads: the project, the session, the
scan, the resource and its one listing. Nothing is created, not even the scan or the resource.
Each file ends as one of

* `in_xnat`: XNAT lists it with the same size and MD5 (`verified: md5`), or the same size where XNAT
  lists no digest (`verified: size`);
* `missing`: not in XNAT (nor is anything above it, when `xnat_missing` names that object);
* `different`: XNAT lists another size or digest at that path (`error` says which);
* `source_missing`: the S3 object does not exist, so there is nothing to compare.

`xnat_missing` lists the XNAT objects that do not exist, from the top: a missing project means no
session, scan or resource either. (xnat-ingest's `check-upload` is the peer tool.)

Example::

    experiment, missing = find_target(xnat, manifest, result)
    compare(result.files, sources, listing, url_of)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..exceptions import ExperimentNotFoundError, ProjectNotFoundError
from ..manifest import JobManifest
from ..result import FileResult, FileStatus, JobResult, Verified
from ..transfer.sources import SourceObject
from ..xnat import Experiment, RemoteFile, XnatClient
from ..xnat.models import target_names

LEVELS = ("project", "session", "scan", "resource")


def find_target(xnat: XnatClient, manifest: JobManifest, result: JobResult) -> Experiment | None:
    """Look the target up, top down, without creating anything. Fills `result.xnat` with what was
    found and `result.xnat_missing` with what was not; returns the session when the resource exists."""
    result.xnat_missing = []
    try:
        project_id = xnat.find_project_by_secondary_id(manifest.central_hub_project_id)
    except ProjectNotFoundError:
        result.xnat_missing = list(LEVELS)
        return None
    try:
        experiment = xnat.get_experiment(project_id, manifest.accession_id)
    except ExperimentNotFoundError:
        result.xnat = {"project": project_id}
        result.xnat_missing = list(LEVELS[1:])
        return None
    result.xnat = target_names(project_id, experiment, manifest.scan_id, manifest.resource_id)
    if not xnat.scan_exists(experiment, manifest.scan_id):
        result.xnat_missing = list(LEVELS[2:])
        return None
    if not xnat.resource_exists(experiment, manifest.scan_id, manifest.resource_id):
        result.xnat_missing = list(LEVELS[3:])
        return None
    return experiment


def compare(
    files: Sequence[FileResult],
    sources: Mapping[str, SourceObject],
    listing: Mapping[str, RemoteFile],
    url_of: Callable[[str], str] | None,
) -> None:
    """Settle every file whose S3 object exists against the resource's listing (empty when the
    resource does not exist). `sources` carry the MD5 where XNAT's digest has to be compared."""
    for file in files:
        if file.status is FileStatus.SOURCE_MISSING:
            continue
        source = sources.get(file.path)
        if source is None:
            continue
        file.error = file.error_code = file.verified = None
        file.bytes = source.size
        remote = listing.get(file.path)
        if remote is None:
            file.status, file.url = FileStatus.MISSING, None
            file.error = "not in XNAT"
            continue
        file.url = url_of(file.path) if url_of else None
        file.md5 = remote.digest
        if remote.size is not None and remote.size != source.size:
            file.status = FileStatus.DIFFERENT
            file.error = f"XNAT lists {remote.size} bytes, the S3 object has {source.size}"
        elif remote.digest and source.md5 and remote.digest != source.md5:
            file.status = FileStatus.DIFFERENT
            file.error = f"XNAT lists MD5 {remote.digest}, the S3 object's is {source.md5}"
        elif remote.digest and source.md5:
            file.status, file.verified = FileStatus.IN_XNAT, Verified.MD5
        elif remote.digest:
            file.status = FileStatus.PENDING  # its MD5 could not be read in time: the next invocation compares it
            file.error = "not compared before the time budget ran out; the job continues it"
        elif remote.size is not None:
            file.status, file.verified = FileStatus.IN_XNAT, Verified.SIZE
        else:
            file.status = FileStatus.DIFFERENT
            file.error = "XNAT lists neither a size nor a digest for this file: it cannot be compared"
