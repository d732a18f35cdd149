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


@dataclass(frozen=True)
class RemoteFile:
    """One catalogued file of a resource, keyed by its path relative to the resource."""

    path: str
    size: int | None
    digest: str | None
    uri: str
