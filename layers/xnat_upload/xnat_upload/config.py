"""Settings read once from the environment: the only place that knows variable names.

Example::

    from xnat_upload.config import Settings

    settings = Settings.from_env()
    settings.results_key("2026/ab12")  # -> "results/2026/ab12.json"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .exceptions import ConfigurationError, KeyOutsidePrefixError, NetConfinementError

UploadMode = Literal["auto", "zip", "per_file"]

MIB = 1024 * 1024

# Manifest limits: the settings are their only source (the schema, the trigger, the API and the CLI read
# them from Settings); these defaults fit 100,000 paths of ~150 characters.
DEFAULT_MAX_MANIFEST_FILES = 100_000
DEFAULT_MAX_MANIFEST_BYTES = 16 * MIB
# A transient XNAT failure (connection error, timeout, 429, 5xx) is retried this long: an XNAT
# restarting behind a proxy answers 503 for tens of seconds.
DEFAULT_RETRY_WINDOW_SECONDS = 60.0


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


def _s3_uri(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    bucket, _, key = raw.removeprefix("s3://").partition("/")
    if not raw.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise ConfigurationError(f"{name} must be an s3://bucket/key URL of one object, got {raw!r}")
    return raw


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    return _int(env, name, -1) if env.get(name, "").strip() else None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ConfigurationError(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def _prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if value and not value.endswith("/"):
        value += "/"
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told; defaults are safe for production."""

    xnat_url: str
    data_bucket: str
    # Where images are read (never written): the data bucket unless an existing one is named.
    images_bucket: str = ""
    xnat_secret_arn: str | None = None
    xnat_user: str | None = field(default=None, repr=False)
    xnat_password: str | None = field(default=None, repr=False)
    images_prefix: str = ""
    manifests_prefix: str = "manifests/"
    results_prefix: str = "results/"
    scan_xsi_type: str = "xnat:mrScanData"
    ca_bundle: str | None = None
    ca_bundle_s3_uri: str | None = None  # s3://bucket/key of a PEM bundle fetched once per container
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    max_retries: int | None = None  # no cap on the count: the retry window decides
    retry_base_delay: float = 0.5
    retry_window_seconds: float = DEFAULT_RETRY_WINDOW_SECONDS
    upload_mode: UploadMode = "auto"
    upload_concurrency: int = 4
    zip_batch_max_bytes: int = 512 * MIB
    zip_batch_max_files: int = 1000
    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    max_manifest_files: int = DEFAULT_MAX_MANIFEST_FILES
    time_budget_margin_seconds: float = 20.0
    idempotency_table: str | None = None
    api_time_limit_seconds: float = 28.0
    progress_interval_seconds: float = 5.0
    job_queue_url: str | None = None
    max_continuations: int = 100
    job_max_receive_count: int = 8
    intake_max_receive_count: int = 5
    xnat_unavailable_retry_seconds: float = 60.0
    xnat_unavailable_max_retry_seconds: float = 3600.0
    jobs_table: str | None = None
    ledger_retention_days: int = 365
    event_bus_name: str = "default"
    event_source: str = "xnat-upload"
    job_queue_visibility_seconds: float = 5400.0
    crash_retry_seconds: float = 10.0
    crash_max_retry_seconds: float = 300.0
    dead_letter_grace_seconds: float = 120.0
    # Each job belongs to the net its key starts with (manifests/<net_id>/<job>.json): IAM on key
    # prefixes and API paths then confines a producer to its own net.
    confine_to_net: bool = False

    def __post_init__(self) -> None:
        if not self.images_bucket:
            object.__setattr__(self, "images_bucket", self.data_bucket)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (see the README's configuration table)."""
        env = os.environ if env is None else env
        xnat_url = env.get("XNAT_URL", "").strip().rstrip("/")
        if not xnat_url.startswith(("https://", "http://")):
            raise ConfigurationError("XNAT_URL must be set to the base URL of XNAT (https://...)")
        bucket = env.get("DATA_BUCKET", "").strip()
        if not bucket:
            raise ConfigurationError("DATA_BUCKET must be set")
        mode = env.get("UPLOAD_MODE", "auto").strip() or "auto"
        if mode not in ("auto", "zip", "per_file"):
            raise ConfigurationError(f"UPLOAD_MODE must be auto, zip or per_file, got {mode!r}")
        return cls(
            xnat_url=xnat_url,
            data_bucket=bucket,
            images_bucket=env.get("IMAGES_BUCKET", "").strip() or bucket,
            xnat_secret_arn=env.get("XNAT_SECRET_ARN", "").strip() or None,
            xnat_user=env.get("XNAT_SERVICE_USER") or None,
            xnat_password=env.get("XNAT_SERVICE_PASSWORD") or None,
            images_prefix=_prefix(env, "IMAGES_PREFIX", ""),
            manifests_prefix=_prefix(env, "MANIFESTS_PREFIX", "manifests/"),
            results_prefix=_prefix(env, "RESULTS_PREFIX", "results/"),
            scan_xsi_type=env.get("XNAT_SCAN_XSI_TYPE", "").strip() or "xnat:mrScanData",
            ca_bundle=env.get("XNAT_CA_BUNDLE", "").strip() or None,
            ca_bundle_s3_uri=_s3_uri(env, "XNAT_CA_BUNDLE_S3_URI"),
            connect_timeout=_float(env, "XNAT_CONNECT_TIMEOUT", 10.0),
            read_timeout=_float(env, "XNAT_READ_TIMEOUT", 120.0),
            max_retries=_optional_int(env, "XNAT_MAX_RETRIES"),
            retry_base_delay=_float(env, "XNAT_RETRY_BASE_DELAY", 0.5),
            retry_window_seconds=_float(env, "XNAT_RETRY_WINDOW_SECONDS", DEFAULT_RETRY_WINDOW_SECONDS),
            upload_mode=mode,  # type: ignore[arg-type]
            upload_concurrency=_int(env, "UPLOAD_CONCURRENCY", 4, minimum=1),
            zip_batch_max_bytes=_int(env, "ZIP_BATCH_MAX_BYTES", 512 * MIB, minimum=1),
            zip_batch_max_files=_int(env, "ZIP_BATCH_MAX_FILES", 1000, minimum=1),
            max_manifest_bytes=_int(env, "MAX_MANIFEST_BYTES", DEFAULT_MAX_MANIFEST_BYTES, minimum=1),
            max_manifest_files=_int(env, "MAX_MANIFEST_FILES", DEFAULT_MAX_MANIFEST_FILES, minimum=1),
            time_budget_margin_seconds=_float(env, "TIME_BUDGET_MARGIN_SECONDS", 20.0),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", "").strip() or None,
            api_time_limit_seconds=_float(env, "API_TIME_LIMIT_SECONDS", 28.0),
            progress_interval_seconds=_float(env, "PROGRESS_INTERVAL_SECONDS", 5.0),
            job_queue_url=env.get("JOB_QUEUE_URL", "").strip() or None,
            max_continuations=_int(env, "MAX_CONTINUATIONS", 100, minimum=1),
            job_max_receive_count=_int(env, "JOB_MAX_RECEIVE_COUNT", 8, minimum=1),
            intake_max_receive_count=_int(env, "INTAKE_MAX_RECEIVE_COUNT", 5, minimum=1),
            xnat_unavailable_retry_seconds=_float(env, "XNAT_UNAVAILABLE_RETRY_SECONDS", 60.0),
            xnat_unavailable_max_retry_seconds=_float(env, "XNAT_UNAVAILABLE_MAX_RETRY_SECONDS", 3600.0),
            jobs_table=env.get("JOBS_TABLE", "").strip() or None,
            ledger_retention_days=_int(env, "LEDGER_RETENTION_DAYS", 365, minimum=1),
            event_bus_name=env.get("EVENT_BUS_NAME", "").strip() or "default",
            event_source=env.get("EVENT_SOURCE", "").strip() or "xnat-upload",
            job_queue_visibility_seconds=_float(env, "JOB_QUEUE_VISIBILITY_SECONDS", 5400.0),
            crash_retry_seconds=_float(env, "CRASH_RETRY_SECONDS", 10.0),
            crash_max_retry_seconds=_float(env, "CRASH_MAX_RETRY_SECONDS", 300.0),
            dead_letter_grace_seconds=_float(env, "DEAD_LETTER_GRACE_SECONDS", 120.0),
            confine_to_net=_bool(env, "CONFINE_TO_NET", False),
        )

    def require_job_queue(self) -> str:
        """The FIFO job queue's URL; every writer to XNAT goes through it."""
        if not self.job_queue_url:
            raise ConfigurationError("JOB_QUEUE_URL must be set to the FIFO job queue's URL")
        return self.job_queue_url

    def require_jobs_table(self) -> str:
        """The jobs ledger's DynamoDB table: where every job says where it is."""
        if not self.jobs_table:
            raise ConfigurationError("JOBS_TABLE must be set to the jobs ledger's DynamoDB table")
        return self.jobs_table

    def job_id_for(self, manifest_key: str) -> str | None:
        """`manifests/2026/ab12.json` -> `2026/ab12`; None for keys that are not manifests (also
        `manifests/.progress/x.json`: its result would land on another job's progress object)."""
        if not manifest_key.startswith(self.manifests_prefix) or not manifest_key.endswith(".json"):
            return None
        job_id = manifest_key[len(self.manifests_prefix) : -len(".json")]
        # A segment starting with "." (`.progress/x`) would name the service's own state under results/.
        if not job_id or any(not segment or segment.startswith(".") for segment in job_id.split("/")):
            return None
        return job_id

    def net_of(self, job_id: str) -> str | None:
        """The net a job belongs to when jobs are confined to nets: its key's first segment
        (`manifests/net-1/ab12.json` -> job `net-1/ab12` -> `net-1`); None when they are not."""
        if not self.confine_to_net:
            return None
        net, slash, _ = job_id.partition("/")
        return net if slash else ""

    def check_net(self, job_id: str, net_id: str) -> None:
        """Refuse a manifest put under another net's prefix (or under none) when jobs are confined."""
        net = self.net_of(job_id)
        if net is not None and net != net_id:
            where = f"{self.manifests_prefix}{net}/" if net else f"directly under {self.manifests_prefix}"
            raise NetConfinementError(
                f"manifest of net {net_id!r} put {'under ' if net else ''}{where}: with CONFINE_TO_NET=true a "
                f"manifest must be put under {self.manifests_prefix}{net_id}/ (its own net's prefix)"
            )

    def manifest_key(self, job_id: str) -> str:
        return f"{self.manifests_prefix}{job_id}.json"

    def results_key(self, job_id: str) -> str:
        return f"{self.results_prefix}{job_id}.json"

    def upload_prefix(self, net_id: str) -> str:
        """Where a net's images must live: the S3 counterpart of the seed's `<net_id>/upload/`.

        Never inside the manifests or results prefixes (possible when IMAGES_PREFIX is empty and a
        net is called `manifests` or `results`): those objects are not images to hand out.
        """
        prefix = f"{self.images_prefix}{net_id}/upload/"
        for reserved in (self.manifests_prefix, self.results_prefix):
            if reserved and (prefix.startswith(reserved) or reserved.startswith(prefix)):
                raise KeyOutsidePrefixError(f"net_id {net_id!r} would read from {reserved!r}, which holds no images")
        return prefix
