"""What the XNAT client hands back: small immutable records, no JSON envelopes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Experiment:
    """An XNAT session (experiment), found by its label inside a project."""

    project_id: str
    subject_id: str
    experiment_id: str
    label: str


def target_names(project_id: str, experiment: Experiment, scan_id: str, resource_id: str) -> dict[str, str]:
    """Where a job writes (or checks), as its result's `xnat` names it: XNAT's own IDs where XNAT has them."""
    return {
        "project": project_id,
        "subject": experiment.subject_id,
        "experiment": experiment.experiment_id,
        "scan": scan_id,
        "resource": resource_id,
    }


@dataclass(frozen=True)
class RemoteFile:
    """One catalogued file of a resource, keyed by its path relative to the resource."""

    path: str
    size: int | None
    digest: str | None
    uri: str
