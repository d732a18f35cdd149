"""Job manifests: schema, and confinement of every file to its net's upload prefix."""

from .models import JobManifest, decode_json, requested_paths, unlisted_note
from .paths import check_identifier, check_relative_path, confined_key, confined_keys, find_collisions, refusal_type

__all__ = [
    "JobManifest",
    "check_identifier",
    "check_relative_path",
    "confined_key",
    "confined_keys",
    "decode_json",
    "find_collisions",
    "refusal_type",
    "requested_paths",
    "unlisted_note",
]
