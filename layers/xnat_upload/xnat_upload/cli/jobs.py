"""`xnat-upload jobs`: the jobs ledger as a table, newest first ("which jobs failed today?").

Reads the ledger (DynamoDB table JOBS_TABLE, as the functions read it) directly with boto3, never
the results in S3: one small query per page, whatever the jobs' sizes.

Example::

    xnat-upload jobs --status failed --since 1d
    xnat-upload jobs --state waiting_for_xnat --json
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import InvalidRequestError
from ..job.ledger import STATES, DynamoDBLedger, JobRecord
from ..submission import ledger_time, parse_timestamp
from . import render
from .main import EXIT_AWS, EXIT_CODES, EXIT_OK, EXIT_USAGE, CliError, _out, aws_error_message

STATUSES = ("succeeded", "partial", "failed")
_AGO = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIMIT = 10_000


def since_time(text: str, now: datetime | None = None) -> str:
    """`30m`, `12h`, `1d`, `7d`, `2w` ago, or an ISO-8601 time (no offset: UTC), as the ledger writes times."""
    match = _AGO.fullmatch(text.strip())
    if match:
        moment = (now or datetime.now(UTC)) - timedelta(**{_UNITS[match[2]]: int(match[1])})
        return ledger_time(moment)
    try:
        return ledger_time(parse_timestamp(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (give 30m, 12h, 1d, 7d, or an ISO-8601 time such as 2026-12-01T08:00:00Z)"
        ) from None


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}, got {value}")
    return value


def _ledger() -> DynamoDBLedger:
    table = os.environ.get("JOBS_TABLE", "").strip()
    if not table:
        raise CliError("no jobs table: set JOBS_TABLE (the stack's JobsTableName output)", EXIT_USAGE)
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client("dynamodb", config=Config(connect_timeout=10, read_timeout=30))
    return DynamoDBLedger(client, table)


def state_text(record: JobRecord) -> str:
    """`finished/failed`, `running`, `waiting_for_xnat until 12:00:00Z`, `finished/failed (given up)`."""
    if record.state == "finished":
        text = f"finished/{record.status or '?'}"
        return text + " (given up)" if record.given_up else text
    if record.retry_at:
        return f"{record.state} until {record.retry_at}"
    return str(record.state)


def jobs_table(records: list[JobRecord]) -> str:
    """One row per job: ID, where it is (or how it ended), files in XNAT of all, when and by whom submitted."""
    rows = [("JOB ID", "STATE", "FILES", "SUBMITTED", "SUBMITTED BY", "ERROR")]
    for record in records:
        error = (record.error or {}).get("code", "")
        rows.append(
            (
                render.clean(record.job_id),
                render.clean(state_text(record)),
                f"{record.files_done}/{record.files_total}",
                render.clean(record.submitted_at or "-"),
                render.clean(record.submitted_by or "-"),
                render.clean(error),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [f"{cell:<{width}}" for cell, width in zip(row[:5], widths, strict=True)]
        lines.append("  ".join([*cells, row[5]]).rstrip())
    return "\n".join(lines)


def cmd_jobs(args: argparse.Namespace) -> int:
    ledger = _ledger()
    records: list[JobRecord] = []
    token = args.next
    try:
        while len(records) < args.limit:
            page, token = ledger.list_jobs(
                status=args.status,
                state=args.state,
                since=args.since,
                limit=args.limit - len(records),
                next_token=token,
            )
            records.extend(page)
            if token is None:
                break
    except InvalidRequestError as exc:
        raise CliError(f"--next: {exc.message}", EXIT_USAGE) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            raise CliError(f"no jobs table {ledger.table!r} (check JOBS_TABLE and the region)", EXIT_AWS) from None
        raise CliError(aws_error_message(exc, None).replace("S3 ", "DynamoDB "), EXIT_AWS) from None
    except BotoCoreError as exc:
        raise CliError(aws_error_message(exc, None), EXIT_AWS) from None
    if args.json:
        _out(json.dumps({"jobs": [_entry(r) for r in records], "next": token}, indent=2))
        return EXIT_OK
    _out(jobs_table(records) if records else "no jobs")
    if token is not None:
        _out(f"(more: --next {token})")
    return EXIT_OK


def _entry(record: JobRecord) -> dict[str, Any]:
    return {**record.summary(), "manifest_version": record.manifest_version or None}


def add_jobs_command(commands: Any) -> None:
    """Register `jobs` on the CLI's subcommands."""
    jobs = commands.add_parser(
        "jobs",
        help="list jobs from the jobs ledger, newest first (which failed today?)",
        description="List jobs from the jobs ledger (DynamoDB table JOBS_TABLE), newest first: job ID, where "
        "it is or how it ended, files in XNAT of all, when and by whom it was submitted. Reads the ledger "
        "only, never the results.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    jobs.add_argument("--status", choices=STATUSES, help="only finished jobs that ended so")
    jobs.add_argument("--state", choices=STATES, help="only jobs there now")
    jobs.add_argument(
        "--since", type=since_time, help="only jobs submitted since: 30m, 12h, 1d, 7d, or an ISO-8601 time"
    )
    jobs.add_argument("--limit", type=_limit, default=50, help="print at most this many jobs (default 50)")
    jobs.add_argument("--next", help="go on where an earlier listing stopped (the token it printed)")
    jobs.add_argument("--json", action="store_true", help='print {"jobs": [...], "next": ...} as GET /jobs does')
    jobs.set_defaults(handler=cmd_jobs)
