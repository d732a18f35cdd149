"""Error types, each mapped once to a result status and an HTTP status.

A handler never inspects messages: it reads `error_code` and `http_status` from the type.
"""

from __future__ import annotations


class XnatUploadError(Exception):
    """Base of every error this service reports on purpose."""

    error_code: str = "error"
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.result: dict | None = None  # the job's result manifest, when the error ends a whole job


class ConfigurationError(XnatUploadError):
    """The deployment is misconfigured (an environment variable is missing or wrong)."""

    error_code = "configuration_error"
    http_status = 500


class UnversionedBucketError(ConfigurationError):
    """The data bucket does not keep versions: the service tells runs apart by manifest version."""

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message
            or "the data bucket must have versioning enabled: a manifest's version is how a re-put, a late or "
            "duplicate event and a job's result are told apart; nothing was uploaded"
        )


class InternalError(XnatUploadError):
    """Something unforeseen (a bug): the job stopped; its result says what was done until then."""

    error_code = "internal_error"
    http_status = 500


class JobEndedAbnormallyError(InternalError):
    """The job stopped through no fault of its input: its message went to the dead-letter queue.
    Its result keeps what was done; redriving the message resumes the job from its checkpoint."""

    error_code = "job_abandoned"


class WorkerCrashedError(JobEndedAbnormallyError):
    """The worker raised an unexpected exception on every delivery the queue allows (a bug, a
    permission missing): the last one ended the job."""

    error_code = "worker_crashed"


class WorkerKilledError(JobEndedAbnormallyError):
    """The worker's process was killed on every delivery (out of memory, or the function timeout)
    before it could write anything: found by the sweeper once the message left for the dead-letter queue."""

    error_code = "worker_killed"


class JobStalledError(JobEndedAbnormallyError):
    """No worker reported on the job for longer than its message can live in the job queue."""

    error_code = "job_stalled"


class IntakeFailedError(JobEndedAbnormallyError):
    """The intake raised an unexpected exception on every delivery of the manifest's S3 event."""

    error_code = "intake_failed"


class ManifestError(XnatUploadError):
    """The job manifest is not valid JSON or does not match the schema."""

    error_code = "invalid_manifest"
    http_status = 400


class KeyOutsidePrefixError(ManifestError):
    """A requested file would resolve outside `<IMAGES_PREFIX><net_id>/upload/`."""

    error_code = "key_outside_prefix"


class NetConfinementError(ManifestError):
    """With CONFINE_TO_NET on, a job may only name the net its manifest key (or API path) names:
    IAM on those prefixes and paths is what confines a producer to its own net."""

    error_code = "net_mismatch"
    http_status = 403


class PathCollisionError(ManifestError):
    """Two requested paths would be stored as the same XNAT file."""

    error_code = "path_collision"


class ObjectNotFoundError(XnatUploadError):
    """A listed S3 object does not exist (the seed's FileNotFoundError)."""

    error_code = "object_not_found"
    http_status = 404


class ProjectNotFoundError(XnatUploadError):
    """No XNAT project has the central hub project ID as its secondary ID."""

    error_code = "project_not_found"
    http_status = 404


class ExperimentNotFoundError(XnatUploadError):
    """No experiment with the accession ID as its label exists in the project."""

    error_code = "experiment_not_found"
    http_status = 404


class AlreadyExistsError(XnatUploadError):
    """A file is already in XNAT and `exist_ok` is false (the seed's AlreadyExistsError)."""

    error_code = "already_exists"
    http_status = 409


class XnatError(XnatUploadError):
    """XNAT refused or failed a request; `status` is its HTTP status when it answered."""

    error_code = "xnat_error"
    http_status = 502

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Connection failures, timeouts, 429 and 5xx may pass; other answers will not."""
        return self.status is None or self.status == 429 or self.status >= 500


class XnatAuthError(XnatError):
    """XNAT rejected the service credentials or the session."""

    error_code = "xnat_auth_failed"


class XnatUnavailableError(XnatError):
    """XNAT could not be reached, or failed the job's transfers even after retries: the job waits
    and is tried again later (the queue redelivers it) instead of failing."""

    error_code = "xnat_unavailable"


class XnatDuplicateError(XnatError):
    """XNAT kept an existing file and answered 200 with a `duplicates` body."""

    error_code = "xnat_kept_existing_file"

    def __init__(self, message: str, status: int | None = None, duplicates: list[str] | None = None) -> None:
        super().__init__(message, status)
        self.duplicates = duplicates or []


class IntegrityError(XnatUploadError):
    """The file XNAT lists differs from what was sent (size or MD5), or is missing."""

    error_code = "integrity_mismatch"
    http_status = 502


class SourceChangedError(XnatUploadError):
    """The S3 object vanished or changed between validation and upload."""

    error_code = "source_changed"
    http_status = 409


class SourceReadError(XnatError):
    """Reading the S3 object failed in passing (network, throttling, 5xx): retried like XNAT's
    own transient failures, each attempt from the first byte."""

    error_code = "source_read_failed"


class TimeBudgetExceededError(XnatUploadError):
    """The job ran out of time before every file was started; a re-run finishes it."""

    error_code = "time_budget_exceeded"
    http_status = 504


class TransferTooLargeError(XnatUploadError):
    """One file would take longer than a whole invocation at the measured rate: retrying it
    would never finish, so it is reported instead."""

    error_code = "too_large_for_invocation"
    http_status = 413


class ContinuationLimitError(XnatUploadError):
    """The job used `MAX_CONTINUATIONS` invocations and still had files pending."""

    error_code = "continuation_limit"
    http_status = 504


class NoProgressError(XnatUploadError):
    """Several invocations in a row finished no file: continuing would loop without end."""

    error_code = "no_progress"
    http_status = 504


class ManifestDeletedError(XnatUploadError):
    """The manifest was deleted before its job ran: nothing was uploaded."""

    error_code = "manifest_deleted"
    http_status = 404


class InvalidJobMessageError(XnatUploadError):
    """A job queue message that does not match the fixed job message format."""

    error_code = "invalid_job_message"
    http_status = 500


def error_for_code(code: str, message: str) -> XnatUploadError:
    """The error type behind a result manifest's `error_code` (unknown codes map to the base type)."""
    pending: list[type[XnatUploadError]] = [XnatUploadError]
    while pending:
        cls = pending.pop()
        if cls.error_code == code:
            return cls(message)
        pending.extend(cls.__subclasses__())
    error = XnatUploadError(message)
    error.error_code = code
    return error


class JobConflictError(XnatUploadError):
    """A job with this ID was already submitted with a different manifest."""

    error_code = "job_conflict"
    http_status = 409


class JobStillRunningError(XnatUploadError):
    """The job did not end within the time the caller could wait; it keeps running."""

    error_code = "job_running"
    http_status = 202

    def __init__(self, message: str, job_id: str = "") -> None:
        super().__init__(message)
        self.job_id = job_id


class JobNotFoundError(XnatUploadError):
    """No manifest and no result exist for this job ID."""

    error_code = "job_not_found"
    http_status = 404


# -- what only the API answers: the request itself is wrong ------------------------------------------


class InvalidRequestError(XnatUploadError):
    """The request does not match the operation's schema in the OpenAPI document (a body that is
    not UTF-8 JSON, or nested too deeply to read, included)."""

    error_code = "invalid_request"
    http_status = 400


class RouteNotFoundError(XnatUploadError):
    """No route has this path (a path parameter that is not one path segment included)."""

    error_code = "not_found"
    http_status = 404


class MethodNotAllowedError(XnatUploadError):
    """The path is a route, but not for this method; `allowed` lists the methods it has."""

    error_code = "method_not_allowed"
    http_status = 405

    def __init__(self, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class UnsupportedMediaTypeError(XnatUploadError):
    """The body is declared as something other than application/json."""

    error_code = "unsupported_media_type"
    http_status = 415


def error_codes_by_status() -> dict[int, list[str]]:
    """Every error code an HTTP answer can carry, by status (the API's document lists them)."""
    codes: dict[int, set[str]] = {}
    pending: list[type[XnatUploadError]] = [XnatUploadError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls is not XnatUploadError and cls.http_status >= 400:
            codes.setdefault(cls.http_status, set()).add(cls.error_code)
    return {status: sorted(codes[status]) for status in sorted(codes)}
