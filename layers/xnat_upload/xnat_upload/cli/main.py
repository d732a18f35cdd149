"""The `xnat-upload` command: validate a job manifest, submit it, follow a job.

Errors are one line on stderr, never a traceback (set XNAT_UPLOAD_DEBUG=1 to get one for an
unexpected error). Exit codes are listed in `EXIT_CODES` and in `xnat-upload --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from ..config import DEFAULT_MAX_MANIFEST_BYTES, DEFAULT_MAX_MANIFEST_FILES, Settings
from ..exceptions import (
    ConfigurationError,
    JobNotFoundError,
    ManifestError,
    XnatUploadError,
)
from ..manifest import JobManifest, confined_keys, decode_json
from ..submission import check_job_id, job_status, submit_job
from . import render
from .upload import MAX_CONCURRENCY, LocalFilesError, UploadProgress, local_files, upload_files

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_PENDING = 4
EXIT_UNKNOWN_JOB = 5
EXIT_AWS = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success: manifest valid, job submitted, job succeeded, or jobs listed
  {EXIT_FAILED}    manifest invalid or refused, or the job finished partial or failed
  {EXIT_USAGE}    usage error: bad arguments, unreadable manifest file, bad configuration
  {EXIT_TIMEOUT}    submit --wait or check --wait timed out (the job may still be running: see `status`)
  {EXIT_PENDING}    status: the job is submitted but has no result yet
  {EXIT_UNKNOWN_JOB}    status: no manifest and no result for this job ID
  {EXIT_AWS}    S3 (or the jobs table) could not be used: endpoint unreachable, no or refused
       credentials, access denied, bucket or table missing
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); a submitted job keeps running"""

DESCRIPTION = """Validate, submit and follow XNAT upload jobs (job manifests in S3).

Talks to S3 only, as the service does: a submitted manifest is put at
s3://BUCKET/<MANIFESTS_PREFIX><job_id>.json and the function writes
s3://BUCKET/<RESULTS_PREFIX><job_id>.json. Honours the usual AWS settings (AWS_PROFILE,
AWS_REGION, AWS_ENDPOINT_URL for a local server such as `make serve`) and the service's
DATA_BUCKET, IMAGES_PREFIX, MANIFESTS_PREFIX, RESULTS_PREFIX, MAX_MANIFEST_BYTES, MAX_MANIFEST_FILES,
and JOBS_TABLE (the jobs ledger in DynamoDB: `jobs`, and where a running job is)."""

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}

UNUSED_XNAT_URL = "https://unused.invalid"  # Settings needs one; the CLI never talks to XNAT


class CliError(Exception):
    """A failure already phrased for the user, with the exit code to return."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# -- configuration ------------------------------------------------------------------------------


def _env_prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    return value + "/" if value and not value.endswith("/") else value


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigurationError(f"{name} must be >= 1, got {value}")
    return value


def make_settings(bucket: str, env: Mapping[str, str] | None = None) -> Settings:
    """The service's settings that matter to a client: bucket, prefixes, manifest limits, and the jobs
    ledger (JOBS_TABLE: where a job is while it runs; without it, only results are read)."""
    env = os.environ if env is None else env
    return Settings(
        xnat_url=UNUSED_XNAT_URL,
        data_bucket=bucket,
        images_prefix=_env_prefix(env, "IMAGES_PREFIX", ""),
        manifests_prefix=_env_prefix(env, "MANIFESTS_PREFIX", "manifests/"),
        results_prefix=_env_prefix(env, "RESULTS_PREFIX", "results/"),
        max_manifest_bytes=_env_int(env, "MAX_MANIFEST_BYTES", DEFAULT_MAX_MANIFEST_BYTES),
        max_manifest_files=_env_int(env, "MAX_MANIFEST_FILES", DEFAULT_MAX_MANIFEST_FILES),
        jobs_table=env.get("JOBS_TABLE", "").strip() or None,
    )


def _bucket(args: argparse.Namespace) -> str:
    bucket = (args.bucket or os.environ.get("DATA_BUCKET", "")).strip()
    if not bucket:
        raise CliError("no bucket: pass --bucket or set DATA_BUCKET", EXIT_USAGE)
    return bucket


def _s3_client() -> S3Client:
    """boto3's S3 client; fewer retries than boto3's default unless AWS_MAX_ATTEMPTS/AWS_RETRY_MODE say."""
    import boto3
    from botocore.config import Config

    # One pooled connection per transfer thread of --from-dir (boto3's default pool is 10).
    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60, "max_pool_connections": MAX_CONCURRENCY}
    if not os.environ.get("AWS_MAX_ATTEMPTS") and not os.environ.get("AWS_RETRY_MODE"):
        options["retries"] = {"mode": "standard", "max_attempts": 3}
    return boto3.session.Session().client("s3", config=Config(**options))


# -- validation -----------------------------------------------------------------------------------


def read_manifest(path: str, max_bytes: int) -> bytes:
    """At most `max_bytes + 1` bytes of the file (`-` is stdin), so an oversized one is refused."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(max_bytes + 1)
        with open(path, "rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from None


def manifest_problems(body: bytes, settings: Settings) -> tuple[JobManifest | None, list[str]]:
    """Every reason the function would refuse this manifest: schema, path rules, collisions."""
    try:
        manifest = JobManifest.from_json(
            body, max_bytes=settings.max_manifest_bytes, max_files=settings.max_manifest_files
        )
    except ManifestError as exc:
        return None, [exc.message]
    try:
        prefix = settings.upload_prefix(manifest.net_id)
    except ManifestError as exc:
        return manifest, [exc.message]
    _, refused = confined_keys(prefix, manifest.files_relative_paths_to_upload)
    return manifest, [exc.message for exc in refused.values()]


def _validated(path: str, settings: Settings) -> JobManifest:
    body = read_manifest(path, settings.max_manifest_bytes)
    manifest, problems = manifest_problems(body, settings)
    if problems or manifest is None:
        for problem in problems:
            _err(f"error: {path}: {render.clean(problem)}")
        raise CliError(f"{path}: invalid manifest ({len(problems)} problem{'s' if len(problems) != 1 else ''})")
    return manifest


def cmd_validate(args: argparse.Namespace) -> int:
    settings = make_settings(os.environ.get("DATA_BUCKET", "") or "unused")
    manifest = _validated(args.manifest, settings)
    count = len(manifest.files_relative_paths_to_upload)
    _out(f"valid: {count} file{'s' if count != 1 else ''}")
    return EXIT_OK


# -- submit and wait -------------------------------------------------------------------------------


class ProgressDisplay:
    """A live line on a terminal (carriage return updates); plain lines, on change, otherwise."""

    def __init__(self, stream: IO[str], live: bool, heartbeat: float = 30.0) -> None:
        self._stream = stream
        self._live = live
        self._heartbeat = heartbeat
        self._width = 0
        self._last = ""
        self._last_at = float("-inf")

    def update(self, text: str, elapsed: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if self._live:
            if elapsed is not None:
                text = f"{text} [{elapsed:.0f}s]"
            padding = " " * max(0, self._width - len(text))
            self._stream.write(f"\r{text}{padding}")
            self._width = len(text)
        else:
            now = clock()
            if text == self._last and now - self._last_at < self._heartbeat:
                return
            self._stream.write(text + "\n")
            self._last, self._last_at = text, now
        self._stream.flush()

    def finish(self) -> None:
        if self._live and self._width:
            self._stream.write("\n")
            self._stream.flush()
            self._width = 0


def wait_for_result(
    job_id: str,
    *,
    settings: Settings,
    s3: S3Client,
    timeout: float,
    poll_interval: float,
    display: ProgressDisplay,
) -> dict[str, Any] | None:
    """Poll the job's ledger item, then read its result once it finished; None when `timeout` passes first."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        while True:
            try:
                state, document = job_status(job_id, settings=settings, s3=s3)
            except JobNotFoundError:
                raise CliError(f"job {job_id!r} disappeared: its manifest was deleted", EXIT_UNKNOWN_JOB) from None
            if state == "done" and document is not None:
                return document
            display.update(f"job {job_id}: {render.progress_line(document)}", time.monotonic() - started)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(poll_interval, remaining))
    finally:
        display.finish()


def upload_from_dir(folder: str, manifest: JobManifest, *, settings: Settings, s3: S3Client) -> None:
    """Every file of the manifest from `folder` to its key under the net's upload prefix, with progress on
    stderr; nothing is sent unless every file is there."""
    try:
        files = local_files(Path(folder), manifest.files_relative_paths_to_upload)
    except LocalFilesError as exc:
        raise CliError(exc.message, EXIT_USAGE) from None
    prefix = settings.upload_prefix(manifest.net_id)
    live = sys.stderr.isatty()
    display = ProgressDisplay(sys.stderr, live=live)
    started = time.monotonic()
    shown_at = float("-inf")

    def show(progress: UploadProgress) -> None:
        nonlocal shown_at
        now = time.monotonic()
        if live or now - shown_at >= 5 or progress.files_done == progress.files_total:
            display.update(progress.line(), now - started)
            shown_at = now

    try:
        done = upload_files(s3, settings.data_bucket, prefix, files, on_progress=show)
    finally:
        display.finish()
    _err(
        f"uploaded {done.files_total} file{'s' if done.files_total != 1 else ''} "
        f"({render.human_bytes(done.bytes_total)}) to s3://{settings.data_bucket}/{prefix} "
        f"in {time.monotonic() - started:.1f}s"
    )


def cmd_submit(args: argparse.Namespace) -> int:
    settings = make_settings(_bucket(args))
    if args.job_id:
        _check_job_id(args.job_id)
    manifest = _validated(args.manifest, settings)
    data = decode_json(read_manifest(args.manifest, settings.max_manifest_bytes))
    s3 = _s3_client()
    if args.from_dir is not None:
        upload_from_dir(args.from_dir, manifest, settings=settings, s3=s3)
    submission = submit_job(data, settings=settings, s3=s3, job_id=args.job_id)
    _out(submission.job_id)
    where = f"s3://{settings.data_bucket}/{submission.manifest_key}"
    if not submission.created:
        _err(f"job {submission.job_id} was already submitted with this manifest ({where})")
    if not args.wait:
        _err(f"submitted {where}; follow it with: xnat-upload status {submission.job_id}")
        return EXIT_OK
    display = ProgressDisplay(sys.stderr, live=sys.stderr.isatty())
    try:
        result = wait_for_result(
            submission.job_id,
            settings=settings,
            s3=s3,
            timeout=args.timeout,
            poll_interval=args.poll_interval,
            display=display,
        )
    except KeyboardInterrupt:
        _err(f"interrupted; job {submission.job_id} keeps running: xnat-upload status {submission.job_id}")
        return EXIT_INTERRUPTED
    if result is None:
        _err(
            f"timed out after {args.timeout:g}s waiting for job {submission.job_id}; "
            f"it may still be running: xnat-upload status {submission.job_id}"
        )
        return EXIT_TIMEOUT
    for url in render.url_lines(result):
        _out(url)
    for problem in render.problem_lines(result):
        _err(problem)
    _err(render.summary_line(result))
    return EXIT_OK if result.get("status") == "succeeded" else EXIT_FAILED


# -- check --------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Submit the manifest as a check job (`"mode": "check"`): nothing is written to XNAT; with
    --wait, print what XNAT holds against it. Exit 0 only when every file is in XNAT, identical."""
    settings = make_settings(_bucket(args))
    if args.job_id:
        _check_job_id(args.job_id)
    _validated(args.manifest, settings)
    data = decode_json(read_manifest(args.manifest, settings.max_manifest_bytes))
    data["mode"] = "check"
    s3 = _s3_client()
    submission = submit_job(data, settings=settings, s3=s3, job_id=args.job_id)
    _out(submission.job_id)
    if not args.wait:
        _err(f"check submitted; follow it with: xnat-upload status {submission.job_id}")
        return EXIT_OK
    display = ProgressDisplay(sys.stderr, live=sys.stderr.isatty())
    try:
        result = wait_for_result(
            submission.job_id, settings=settings, s3=s3, timeout=args.timeout,
            poll_interval=args.poll_interval, display=display,
        )  # fmt: skip
    except KeyboardInterrupt:
        _err(f"interrupted; check {submission.job_id} keeps running: xnat-upload status {submission.job_id}")
        return EXIT_INTERRUPTED
    if result is None:
        _err(f"timed out after {args.timeout:g}s waiting for check {submission.job_id}")
        return EXIT_TIMEOUT
    for line in render.check_lines(result):
        _out(line)
    _err(render.summary_line(result))
    return EXIT_OK if result.get("status") == "succeeded" else EXIT_FAILED


# -- status -------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    settings = make_settings(_bucket(args))
    job_id = _check_job_id(args.job_id)
    try:
        state, document = job_status(job_id, settings=settings, s3=_s3_client())
    except JobNotFoundError:
        if args.json:
            _out(json.dumps({"job_id": job_id, "state": "unknown"}))
        _err(
            f"unknown job {job_id!r}: no manifest and no result in s3://{settings.data_bucket} "
            "(check the job ID, and --bucket or DATA_BUCKET)"
        )
        return EXIT_UNKNOWN_JOB
    if state == "pending" or document is None:
        if args.json:
            _out(json.dumps({"job_id": job_id, "state": "pending", "progress": document}, indent=2))
        else:
            _out(render.progress_line(document))
        return EXIT_PENDING
    if args.problems:
        return _print_problems(document, as_json=args.json)
    if args.json:
        _out(json.dumps(document, indent=2))
    else:
        _out(render.result_table(document))
        _out(render.summary_line(document))
    return EXIT_OK if document.get("status") == "succeeded" else EXIT_FAILED


def _print_problems(result: dict[str, Any], *, as_json: bool) -> int:
    """`status --problems`: only the files not in XNAT as requested, then the summary line."""
    problems = render.problem_files(result)
    if as_json:
        _out(json.dumps({"job_id": result.get("job_id"), "status": result.get("status"), "files": problems}, indent=2))
    else:
        if problems:
            _out(render.result_table({**result, "files": problems}))
        _out(render.summary_line(result))
    return EXIT_OK if result.get("status") == "succeeded" else EXIT_FAILED


# -- plumbing -----------------------------------------------------------------------------------


def _out(line: str) -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _check_job_id(job_id: str) -> str:
    try:
        return check_job_id(job_id)
    except ManifestError as exc:
        raise CliError(exc.message, EXIT_USAGE) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xnat-upload",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check a manifest offline, with the function's own rules",
        description="Check a job manifest offline with the function's own models and path rules "
        "(IMAGES_PREFIX from the environment). Prints 'valid: N files' or the problems.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("manifest", metavar="MANIFEST", help="path of the manifest JSON file ('-' for stdin)")
    validate.set_defaults(handler=cmd_validate)

    submit = commands.add_parser(
        "submit",
        help="validate, then put the manifest in the bucket (prints the job ID)",
        description="Validate a manifest, put it at s3://BUCKET/manifests/<job_id>.json (once: the same "
        "manifest under the same job ID is not put again) and print the job ID. With --from-dir, upload its "
        "images from a local folder first. With --wait, follow the job and print the XNAT URLs of its files.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    submit.add_argument("manifest", metavar="MANIFEST", help="path of the manifest JSON file ('-' for stdin)")
    submit.add_argument("--bucket", help="data bucket (default: $DATA_BUCKET)")
    submit.add_argument(
        "--from-dir",
        metavar="DIR",
        help="first upload the manifest's files from DIR (DIR/<path> for each of files_relative_paths_to_upload) "
        "to s3://BUCKET/<IMAGES_PREFIX><net_id>/upload/<path>: parallel, multipart for big files, progress on "
        "stderr; nothing is sent unless every file is there",
    )
    submit.add_argument("--job-id", help="job ID (default: a random one); resubmitting the same manifest is safe")
    submit.add_argument("--wait", action="store_true", help="wait for the result, showing progress on stderr")
    submit.add_argument("--timeout", type=_positive, default=900.0, help="seconds --wait waits (default 900)")
    submit.add_argument(
        "--poll-interval", type=_positive, default=2.0, help="seconds between polls with --wait (default 2)"
    )
    submit.set_defaults(handler=cmd_submit)

    checking = commands.add_parser(
        "check",
        help="compare a manifest with what XNAT holds, writing nothing to XNAT (prints the job ID)",
        description='Submit the manifest as a check job ("mode": "check"): it goes through the same queue, '
        "writes nothing to XNAT, and reports per file in_xnat, missing, different or source_missing, plus the "
        "XNAT objects that do not exist. With --wait, print those findings; exit 0 when every file is in XNAT.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    checking.add_argument("manifest", metavar="MANIFEST", help="path of the manifest JSON file ('-' for stdin)")
    checking.add_argument("--bucket", help="data bucket (default: $DATA_BUCKET)")
    checking.add_argument("--job-id", help="job ID (default: a random one)")
    checking.add_argument("--wait", action="store_true", help="wait for the findings, showing progress on stderr")
    checking.add_argument("--timeout", type=_positive, default=900.0, help="seconds --wait waits (default 900)")
    checking.add_argument(
        "--poll-interval", type=_positive, default=2.0, help="seconds between polls with --wait (default 2)"
    )
    checking.set_defaults(handler=cmd_check)

    status = commands.add_parser(
        "status",
        help="show a job's result (table of files) or its progress",
        description="Show a job's result manifest as a table (path, status, bytes, error or URL) and a "
        "summary line, or 'pending' with its progress while it runs.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("job_id", metavar="JOB_ID")
    status.add_argument("--bucket", help="data bucket (default: $DATA_BUCKET)")
    status.add_argument("--json", action="store_true", help="print the result manifest (or the state) as JSON")
    status.add_argument(
        "--problems", action="store_true", help="only the files not in XNAT as requested (failed, missing, ...)"
    )
    status.set_defaults(handler=cmd_status)

    from .jobs import add_jobs_command  # its own module: it imports this one

    add_jobs_command(commands)
    return parser


def aws_error_message(exc: Exception, bucket: str | None) -> str:
    """One line saying what went wrong with S3, and what to check."""
    where = f"bucket {bucket!r}" if bucket else "the bucket"
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, EndpointConnectionError):
        endpoint = exc.kwargs.get("endpoint_url", "S3")
        hint = " (is AWS_ENDPOINT_URL right, and is the server running?)" if os.environ.get("AWS_ENDPOINT_URL") else ""
        return f"could not connect to {endpoint}{hint}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        message = render.clean(error.get("Message", "") or "")
        operation = exc.operation_name
        if code == "NoSuchBucket":
            return f"{where} does not exist (check --bucket or DATA_BUCKET)"
        if code in _CREDENTIAL_CODES:
            return f"AWS refused the credentials ({code}): {message}".rstrip(": ")
        if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
            return f"access denied to {where} ({operation}): check the credentials and their permissions"
        return f"S3 {operation} failed ({code}): {message}".rstrip(": ")
    return f"AWS error: {render.clean(exc)}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    bucket = getattr(args, "bucket", None) or os.environ.get("DATA_BUCKET")
    try:
        return args.handler(args)
    except CliError as exc:
        _err(f"error: {render.clean(exc.message)}")
        return exc.code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except (NoCredentialsError, ClientError, BotoCoreError) as exc:
        _err(f"error: {aws_error_message(exc, bucket)}")
        return EXIT_AWS
    except ConfigurationError as exc:
        _err(f"error: {render.clean(exc.message)}")
        return EXIT_USAGE
    except XnatUploadError as exc:  # ManifestError, JobConflictError
        _err(f"error: {render.clean(exc.message)}")
        return EXIT_FAILED
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("XNAT_UPLOAD_DEBUG"):
            raise
        _err(f"error: unexpected {type(exc).__name__}: {render.clean(exc)} (XNAT_UPLOAD_DEBUG=1 shows a traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
