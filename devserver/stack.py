"""The whole service on loopback: moto's S3, SQS, DynamoDB and EventBridge, the XNAT emulator, the
queue flow of template.yaml.

What AWS does is done by moto for real: the bucket's notification puts every new manifest version
on the intake queue (`s3:TestEvent` included), the job queue is FIFO with deduplication and
redrive to dead-letter queues. What Lambda's event source mappings do is `SqsEventSource`'s job:
the intake feeds `functions/manifest_trigger/app.py`, the job queue feeds
`functions/upload_worker/app.py`. Queues, their redrive, the mappings' batch sizes and concurrency
and the functions' timeouts are read from template.yaml (`devserver/template.py`), at the
parameters' defaults: nothing here is a second copy of them. The jobs ledger
is a DynamoDB table created from template.yaml's own `JobsTable` definition, and the job-end events
go through moto's EventBridge to an SQS queue (`events`), where the tests and the demo read them.

Example::

    with LocalStack() as stack:
        os.environ.update(stack.environment())
        stack.put_image("net-1", "ct.nii.gz", b"...")
        stack.put_manifest("job-1", {...})
        stack.drain()                      # runs intake and worker invocations until the queues are empty
        print(stack.read_result("job-1")["urls"])
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .event_source import SqsEventSource
from .events import s3_put_event, sqs_event
from .handlers import load_handler_module
from .lambda_context import LocalLambdaContext
from .local_s3 import LocalAws
from .template import create_table, parameters, queue_attributes, sqs_event_source
from .xnat_emulator import XnatEmulator

BUCKET = "xnat-upload-data-local"
XNAT_USER = "svc-uploader"
XNAT_PASSWORD = "local-only-password"
DEMO_PROJECT = "PRJ001"
DEMO_SECONDARY_ID = "CHP-001"
DEMO_SUBJECT = "SUBJ001"
DEMO_ACCESSION = "ACC0001"
INTAKE_QUEUE = "xnat-upload-intake"
JOB_QUEUE = "xnat-upload-jobs.fifo"
JOBS_TABLE = "xnat-upload-jobs"
EVENTS_QUEUE = "xnat-upload-job-events"  # the local subscriber of the job-end events
EVENT_SOURCE = "xnat-upload"
JOB_END_DETAIL_TYPE = "Upload Job Finished"
# template.yaml's queues (logical id -> the local name and the key of `queue_urls`), dead-letter queues first.
QUEUES = {
    "IntakeDeadLetterQueue": ("xnat-upload-intake-dlq", "intake_dlq"),
    "IntakeQueue": (INTAKE_QUEUE, "intake"),
    "JobDeadLetterQueue": ("xnat-upload-jobs-dlq.fifo", "jobs_dlq"),
    "JobQueue": (JOB_QUEUE, "jobs"),
}
TEMPLATE_DEFAULTS = parameters()
MAX_RECEIVE_COUNT = int(TEMPLATE_DEFAULTS["JobMaxReceiveCount"])  # the job queue's redrive (JOB_MAX_RECEIVE_COUNT)
INTAKE_MAX_RECEIVE_COUNT = int(json.loads(queue_attributes("IntakeQueue", TEMPLATE_DEFAULTS, {
    "IntakeDeadLetterQueue": "arn"}).get("RedrivePolicy", "{}"))["maxReceiveCount"])  # fmt: skip
TRIGGER_TIMEOUT = sqs_event_source("ManifestTriggerFunction", TEMPLATE_DEFAULTS).function_timeout
WORKER_TIMEOUT = float(TEMPLATE_DEFAULTS["FunctionTimeout"])
SWEEPER_TIMEOUT = 120.0


class LocalStack:
    """Starts both servers, seeds the demo project and session, creates the bucket and the queues."""

    def __init__(
        self,
        aws: LocalAws | None = None,
        xnat: XnatEmulator | None = None,
        bucket: str = BUCKET,
        worker_concurrency: int | None = None,
        worker_timeout: float = WORKER_TIMEOUT,
        images_bucket: str | None = None,
    ) -> None:
        self._own_aws = aws is None
        self.aws = aws or LocalAws()
        self.xnat_user, self.xnat_password = XNAT_USER, XNAT_PASSWORD
        self.xnat = xnat or XnatEmulator(username=XNAT_USER, password=XNAT_PASSWORD)
        self.bucket = bucket
        # An existing images bucket apart from the data bucket (IMAGES_BUCKET); None: the data bucket.
        self.images_bucket = images_bucket or bucket
        self.worker_concurrency = worker_concurrency or int(TEMPLATE_DEFAULTS["WorkerMaximumConcurrency"])
        self.worker_timeout = worker_timeout
        self.queue_urls: dict[str, str] = {}
        self.intake: SqsEventSource | None = None
        self.worker: SqsEventSource | None = None
        self._events_seen: list[dict[str, Any]] = []

    def start(self) -> LocalStack:
        if self._own_aws:
            self.aws.start()
        self.xnat.start()
        self.xnat.add_project(DEMO_PROJECT, secondary_id=DEMO_SECONDARY_ID)
        self.xnat.add_experiment(DEMO_PROJECT, DEMO_SUBJECT, DEMO_ACCESSION)
        s3 = self.s3()
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        if self.images_bucket != self.bucket:
            s3.create_bucket(Bucket=self.images_bucket)
        self._create_queues()
        create_table(self.aws.client("dynamodb"), "JobsTable", JOBS_TABLE)
        self._subscribe_to_job_events()
        return self

    def _subscribe_to_job_events(self) -> None:
        """A rule on the default bus that sends every job-end event to an SQS queue, as a user's would."""
        self.queue_urls["events"] = self._queue(EVENTS_QUEUE, {})
        events = self.aws.client("events")
        events.put_rule(
            Name="xnat-upload-job-ended",
            EventPattern=json.dumps({"source": [EVENT_SOURCE], "detail-type": [JOB_END_DETAIL_TYPE]}),
            State="ENABLED",
        )
        events.put_targets(
            Rule="xnat-upload-job-ended",
            Targets=[{"Id": "local-subscriber", "Arn": _arn(self.sqs(), self.queue_urls["events"])}],
        )

    def _create_queues(self) -> None:
        """The queues of template.yaml (attributes and redrive resolved at the parameters' defaults, the
        worker's timeout as given), and the bucket notification that feeds the intake."""
        sqs = self.sqs()
        params = parameters(FunctionTimeout=str(int(self.worker_timeout)))
        arns: dict[str, str] = {}
        for logical_id, (name, key) in QUEUES.items():
            self.queue_urls[key] = self._queue(name, queue_attributes(logical_id, params, arns))
            arns[logical_id] = _arn(sqs, self.queue_urls[key])
        intake_arn = _arn(sqs, self.queue_urls["intake"])
        self.s3().put_bucket_notification_configuration(
            Bucket=self.bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": "ManifestCreated",
                        "QueueArn": intake_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {
                                "FilterRules": [
                                    {"Name": "prefix", "Value": "manifests/"},
                                    {"Name": "suffix", "Value": ".json"},
                                ]
                            }
                        },
                    }
                ]
            },
        )
        intake = sqs_event_source("ManifestTriggerFunction", params)
        self.intake = SqsEventSource(
            sqs,
            self.queue_urls[QUEUES[intake.queue][1]],
            lambda event, context: load_handler_module("manifest_trigger").lambda_handler(event, context),
            batch_size=intake.batch_size,
            function_timeout=intake.function_timeout,
            maximum_concurrency=intake.maximum_concurrency or 1,  # none set: one poller is plenty locally
            function_name="manifest-trigger",
        )
        worker = sqs_event_source("UploadWorkerFunction", params)
        self.worker = SqsEventSource(
            sqs,
            self.queue_urls[QUEUES[worker.queue][1]],
            lambda event, context: load_handler_module("upload_worker").lambda_handler(event, context),
            batch_size=worker.batch_size,
            function_timeout=self.worker_timeout,
            maximum_concurrency=self.worker_concurrency,  # the template's default unless a run asks otherwise
            function_name="upload-worker",
        )

    def _queue(self, name: str, attributes: dict[str, str]) -> str:
        return str(self.sqs().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])

    def stop(self) -> None:
        self.stop_pollers()
        self.xnat.stop()
        if self._own_aws:
            self.aws.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environment(self, **overrides: str) -> dict[str, str]:
        """The functions' configuration, as template.yaml sets it, pointed at the local servers."""
        return {
            **self.aws.environment(),
            "XNAT_URL": self.xnat.url,
            "XNAT_SERVICE_USER": self.xnat_user,
            "XNAT_SERVICE_PASSWORD": self.xnat_password,
            "DATA_BUCKET": self.bucket,
            "IMAGES_BUCKET": self.images_bucket,
            "JOB_QUEUE_URL": self.queue_urls["jobs"],
            "JOB_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
            "INTAKE_MAX_RECEIVE_COUNT": str(INTAKE_MAX_RECEIVE_COUNT),
            "JOB_QUEUE_VISIBILITY_SECONDS": queue_attributes(
                "JobQueue", parameters(FunctionTimeout=str(int(self.worker_timeout))), {"JobDeadLetterQueue": "arn"}
            )["VisibilityTimeout"],
            "JOBS_TABLE": JOBS_TABLE,
            "EVENT_BUS_NAME": "default",
            "EVENT_SOURCE": EVENT_SOURCE,
            "POWERTOOLS_SERVICE_NAME": "xnat-upload",
            "POWERTOOLS_METRICS_NAMESPACE": "XnatUploadLocal",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **overrides,
        }

    # -- clients and data ----------------------------------------------------------------------

    def secrets(self) -> dict[str, str]:
        """What no log line, result or answer may hold, by name: the service password, the Basic
        credentials built from it, and every session id the XNAT emulator handed out so far."""
        basic = base64.b64encode(f"{self.xnat_user}:{self.xnat_password}".encode()).decode()
        found = {"password": self.xnat_password, "basic": basic}
        for index, session_id in enumerate(self.xnat.session_ids):
            found[f"JSESSIONID #{index}"] = session_id
        return found

    def s3(self) -> Any:
        return self.aws.s3()

    def sqs(self) -> Any:
        return self.aws.client("sqs")

    def put_image(self, net_id: str, relative_path: str, data: bytes, images_prefix: str = "") -> str:
        key = f"{images_prefix}{net_id}/upload/{relative_path}"
        self.s3().put_object(Bucket=self.images_bucket, Key=key, Body=data)
        return key

    def put_manifest(self, job_id: str, manifest: dict[str, Any] | bytes) -> dict[str, Any]:
        """Put `manifests/<job_id>.json` (the bucket notifies the intake queue); returns the S3 event
        AWS would deliver for it. A job ID with a slash (`net-1/ab12`) lies under its net's prefix."""
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        key = f"manifests/{job_id}.json"
        put = self.s3().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return s3_put_event(self.bucket, key, len(body), put["ETag"], put.get("VersionId"))

    def manifest_event(self, job_id: str) -> dict[str, Any]:
        """The S3 event for a manifest someone else put (the API, the CLI), as S3 would send it."""
        key = f"manifests/{job_id}.json"
        head = self.s3().head_object(Bucket=self.bucket, Key=key)
        return s3_put_event(self.bucket, key, head["ContentLength"], head["ETag"], head.get("VersionId"))

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        return self._read_json(f"results/{job_id}.json")

    def read_job(self, job_id: str) -> dict[str, Any] | None:
        """The job's ledger item (where it is), as plain values; None before the intake saw it."""
        from xnat_upload.job.ledger import DynamoDBLedger

        record = DynamoDBLedger(self.aws.client("dynamodb"), JOBS_TABLE).get(job_id)
        return None if record is None else record.to_item()

    def job_events(self) -> list[dict[str, Any]]:
        """Every job-end event put so far (read off the subscriber queue, which keeps them)."""
        found: list[dict[str, Any]] = []
        sqs = self.sqs()
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.queue_urls["events"], MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                sqs.delete_message(QueueUrl=self.queue_urls["events"], ReceiptHandle=message["ReceiptHandle"])
                self._events_seen.append(json.loads(message["Body"]))
        found.extend(self._events_seen)
        return found

    def _read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.s3().exceptions.NoSuchKey:
            return None
        return json.loads(body)

    # -- running the functions -----------------------------------------------------------------

    def invoke_trigger(self, s3_event: dict[str, Any], timeout_seconds: float = TRIGGER_TIMEOUT) -> dict[str, Any]:
        """Call the intake handler directly with `s3_event` wrapped in an SQS record, as the intake
        queue would deliver it (the notification's own message still waits in the queue)."""
        app = load_handler_module("manifest_trigger")
        event = sqs_event([json.dumps(s3_event)], _arn(self.sqs(), self.queue_urls["intake"]))
        return app.lambda_handler(event, LocalLambdaContext("manifest-trigger", timeout_seconds))

    def sweep(self) -> dict[str, Any]:
        """One run of the sweeper (`functions/job_sweeper/app.py`), as its schedule starts it."""
        app = load_handler_module("job_sweeper")
        event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}, "resources": []}
        return dict(app.lambda_handler(event, LocalLambdaContext("job-sweeper", SWEEPER_TIMEOUT)))

    def drain(self, max_invocations: int = 10_000) -> int:
        """Run intake and worker invocations, one at a time, until neither queue has a message
        to deliver (messages hidden by a retry delay are left waiting). Returns the invocations."""
        assert self.intake is not None and self.worker is not None
        invocations = 0
        while invocations < max_invocations:
            if self.intake.poll_once():
                invocations += 1
                continue
            if self.worker.poll_once():
                invocations += 1
                continue
            return invocations
        raise AssertionError(f"the queues were not empty after {max_invocations} invocations")

    def run(self, job_id: str, manifest: dict[str, Any] | bytes) -> dict[str, Any] | None:
        """Put the manifest, drain the queues, return the result."""
        self.put_manifest(job_id, manifest)
        self.drain()
        return self.read_result(job_id)

    def start_pollers(self) -> LocalStack:
        """Background pollers, as Lambda runs them (for the API's waiting route and `make serve`)."""
        assert self.intake is not None and self.worker is not None
        self.intake.start()
        self.worker.start()
        return self

    def stop_pollers(self) -> None:
        for source in (self.intake, self.worker):
            if source is not None:
                source.stop()

    def redrive(self, dead_letters: str = "jobs_dlq", to: str = "jobs") -> int:
        """Move every message of a dead-letter queue back to its queue, as `aws sqs start-message-move-task`
        does in AWS (moto has no move task): same body, same group. Returns how many moved."""
        sqs, moved = self.sqs(), 0
        fifo = self.queue_urls[to].endswith(".fifo")
        while True:
            batch = sqs.receive_message(
                QueueUrl=self.queue_urls[dead_letters], MaxNumberOfMessages=10, AttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                return moved
            for message in batch:
                attributes = message.get("Attributes", {})
                group = (
                    {
                        "MessageGroupId": attributes["MessageGroupId"],
                        "MessageDeduplicationId": attributes.get("MessageDeduplicationId") or message["MessageId"],
                    }
                    if fifo
                    else {}
                )
                sqs.send_message(QueueUrl=self.queue_urls[to], MessageBody=message["Body"], **group)
                sqs.delete_message(QueueUrl=self.queue_urls[dead_letters], ReceiptHandle=message["ReceiptHandle"])
                moved += 1

    def queue_depth(self, name: str) -> int:
        """Messages in a queue: visible, in flight and delayed."""
        attributes = self.sqs().get_queue_attributes(
            QueueUrl=self.queue_urls[name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


def _arn(sqs: Any, queue_url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
