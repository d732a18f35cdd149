"""The job manifest: the seed's request fields, validated with the Powertools parser."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from pydantic import AfterValidator, ConfigDict, Field, StrictBool, StringConstraints, WithJsonSchema

from .. import safe_json
from ..clipping import clip
from ..config import DEFAULT_MAX_MANIFEST_FILES
from ..exceptions import ManifestError
from .paths import IDENTIFIER_PATTERN, MAX_PATH_LENGTH, RELATIVE_PATH_PATTERN

FILES_FIELD = "files_relative_paths_to_upload"
QUOTED_NAME_MAX_CHARS = 100  # an unknown field's name, quoted in the refusal, may be megabytes long
IDENTIFIER_MAX_LENGTH = 255
# What JSON Schema says of `.` and `..` (an identifier becomes a URL path segment): the validator below enforces it.
NOT_DOT_SEGMENT: dict[str, Any] = {"not": {"enum": [".", ".."]}}
SCAN_TYPE_PATTERN = r"^xnat:[A-Za-z0-9]+ScanData$"
_SCAN_TYPE = re.compile(SCAN_TYPE_PATTERN)
ABSTRACT_SCAN_TYPE = "xnat:imageScanData"


def _not_dot_segment(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("must not be '.' or '..'")
    return value


def _concrete_scan_type(value: str) -> str:
    if not _SCAN_TYPE.fullmatch(value) or value == ABSTRACT_SCAN_TYPE:
        raise ValueError("must be a concrete XNAT scan type such as xnat:mrScanData or xnat:ctScanData")
    return value


# The field types below validate and say what they validate in JSON Schema: the API's request models use
# them too, so its OpenAPI document states exactly the manifest's rules.
Identifier = Annotated[
    str,
    StringConstraints(pattern=IDENTIFIER_PATTERN, min_length=1, max_length=IDENTIFIER_MAX_LENGTH),
    AfterValidator(_not_dot_segment),
    Field(json_schema_extra=NOT_DOT_SEGMENT),
]
# Project IDs go into XNAT's secondary_ID filter, where `*` and `%` switch to a LIKE match.
ProjectRef = Annotated[str, StringConstraints(pattern=r"^[^*%\x00-\x1f\x7f]+$", min_length=1, max_length=255)]
RelativePath = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_LENGTH)]
ScanType = Annotated[
    str,
    AfterValidator(_concrete_scan_type),
    Field(json_schema_extra={"pattern": SCAN_TYPE_PATTERN, "not": {"const": ABSTRACT_SCAN_TYPE}}),
]
# A requested path as the OpenAPI document states it. Only stated: `confined_keys` enforces it (refusals
# are `key_outside_prefix`, as in the intake), and JSON Schema cannot state the collision rule at all.
DOCUMENTED_PATH_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PATH_LENGTH,
    "pattern": RELATIVE_PATH_PATTERN,
    "description": "relative to <IMAGES_PREFIX><net_id>/upload/; segments of A-Za-z0-9 . _ ~ + @ = , ( ) - "
    "and space (not at either end), never '.' or '..'",
}
DocumentedPath = Annotated[str, WithJsonSchema(DOCUMENTED_PATH_SCHEMA)]


class JobManifest(BaseModel):
    """What to upload where. Unknown fields are refused, not ignored.

    Example::

        manifest = JobManifest.from_json(body)
        manifest.files_relative_paths_to_upload
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    central_hub_project_id: ProjectRef
    accession_id: Identifier
    net_id: Identifier
    scan_id: Identifier
    resource_id: Identifier
    # No max_length here: MAX_MANIFEST_FILES (Settings) is the only limit, checked in `from_data`.
    files_relative_paths_to_upload: list[RelativePath] = Field(min_length=1)
    exist_ok: StrictBool = False
    scan_xsi_type: ScanType | None = None
    resource_format: Identifier | None = None
    resource_content: Identifier | None = None
    # `check`: through the same queue and group, but nothing is written to XNAT; the result says
    # what XNAT holds against the manifest (job/check.py). Absent means "upload" (and stays absent in
    # the manifests the API and the CLI store, so upload manifests keep their bytes).
    mode: Literal["upload", "check"] | None = None

    @classmethod
    def from_data(cls, data: Any, max_files: int = DEFAULT_MAX_MANIFEST_FILES) -> JobManifest:
        """Validate decoded JSON; every problem becomes one ManifestError that lists them all.

        `max_files` is the deployment's MAX_MANIFEST_FILES; it is checked first, so an oversized
        list is refused before each of its entries is validated.
        """
        if not isinstance(data, dict):  # the parser would JSON-decode a string: a double-encoded manifest
            raise ManifestError(f"manifest must be a JSON object, not {type(data).__name__}")
        count = _entry_count(data)
        if count is not None and count > max_files:
            raise ManifestError(f"manifest lists {count} files, more than {max_files} files (MAX_MANIFEST_FILES)")
        try:
            return parse(event=data, model=cls)
        except ValidationError as exc:
            raise ManifestError(f"manifest does not match the schema: {_summarise(exc)}") from None

    @classmethod
    def from_json(cls, body: bytes | str, max_bytes: int, max_files: int = DEFAULT_MAX_MANIFEST_FILES) -> JobManifest:
        """Refuse oversized or malformed JSON before validating it."""
        if len(body) > max_bytes:
            raise ManifestError(f"manifest is larger than {max_bytes} bytes")
        return cls.from_data(decode_json(body), max_files=max_files)


def decode_json(body: bytes | str) -> Any:
    """Untrusted manifest bytes -> JSON value; anything undecodable (deep nesting too) is a ManifestError."""
    try:
        return safe_json.loads(body)
    except safe_json.JsonTooDeepError:
        raise ManifestError("manifest is not valid JSON: it is nested too deeply") from None
    except ValueError as exc:
        raise ManifestError(f"manifest is not valid JSON: {exc}") from None


def _summarise(exc: ValidationError, limit: int = 10) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        location = ".".join(clip(str(p), QUOTED_NAME_MAX_CHARS) for p in error["loc"]) or "manifest"
        parts.append(f"{location}: {clip(str(error['msg']), QUOTED_NAME_MAX_CHARS * 2)}")
    if len(exc.errors()) > limit:
        parts.append(f"... and {len(exc.errors()) - limit} more")
    return "; ".join(parts)


def _entry_count(data: Any) -> int | None:
    """How many entries the manifest's file list has (None when there is no list)."""
    paths = data.get(FILES_FIELD) if isinstance(data, dict) else None
    return len(paths) if isinstance(paths, list) else None


def requested_paths(data: Any, max_files: int = DEFAULT_MAX_MANIFEST_FILES) -> list[str]:
    """The requested paths of a manifest that may be invalid, so each gets a result entry.

    None at all when the list is longer than `max_files`: such a manifest is refused whole, and
    listing millions of entries would make the result itself too big (`unlisted_note` says so).
    """
    count = _entry_count(data)
    if count is None or count > max_files:
        return []
    return [p for p in data[FILES_FIELD] if isinstance(p, str)]


def unlisted_note(data: Any, listed: int) -> str:
    """What a refused manifest's result says when it does not list every requested entry."""
    count = _entry_count(data)
    if count is None or count == listed:
        return ""
    if listed == 0:
        return f"; the result lists none of its {count} entries"
    return f"; the result lists {listed} of its {count} entries (the others are not text)"
