"""The whole service on loopback: moto's S3 and SQS, the XNAT emulator, the queue flow of template.yaml.

What AWS does is done by moto for real: the bucket's notification puts every new manifest version
on the intake queue (`s3:TestEvent` included), the job queue is FIFO with deduplication and
redrive to dead-letter queues. What Lambda's event source mappings do is `SqsEventSource`'s job:
the intake feeds `functions/manifest_trigger/app.py`, the job queue feeds
`functions/upload_worker/app.py` (BatchSize 1, MaximumConcurrency as configured).

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
MAX_RECEIVE_COUNT = 8  # JobQueue's redrive policy; the worker reads the same number (JOB_MAX_RECEIVE_COUNT)
INTAKE_MAX_RECEIVE_COUNT = 5  # IntakeQueue's redrive policy in template.yaml
TRIGGER_TIMEOUT = 60.0
WORKER_TIMEOUT = 900.0


class LocalStack:
    """Starts both servers, seeds the demo project and session, creates the bucket and the queues."""

    def __init__(
        self,
        aws: LocalAws | None = None,
        xnat: XnatEmulator | None = None,
        bucket: str = BUCKET,
        worker_concurrency: int = 4,
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
        self.worker_concurrency = worker_concurrency
        self.worker_timeout = worker_timeout
        self.queue_urls: dict[str, str] = {}
        self.intake: SqsEventSource | None = None
        self.worker: SqsEventSource | None = None

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
        return self

    def _create_queues(self) -> None:
        """The queues of template.yaml, and the bucket notification that feeds the intake."""
        sqs = self.sqs()
        intake_dlq = self._queue(f"{INTAKE_QUEUE}-dlq", {})
        self.queue_urls["intake"] = self._queue(
            INTAKE_QUEUE,
            {"VisibilityTimeout": str(int(TRIGGER_TIMEOUT * 6)), **_redrive(sqs, intake_dlq, INTAKE_MAX_RECEIVE_COUNT)},
        )
        self.queue_urls["intake_dlq"] = intake_dlq
        job_dlq = self._queue("xnat-upload-jobs-dlq.fifo", {"FifoQueue": "true"})
        self.queue_urls["jobs"] = self._queue(
            JOB_QUEUE,
            {
                "FifoQueue": "true",
                "DeduplicationScope": "messageGroup",  # high-throughput FIFO, as template.yaml declares it
                "FifoThroughputLimit": "perMessageGroupId",
                "VisibilityTimeout": str(int(self.worker_timeout) * 6),  # as template.yaml: six times the timeout
                **_redrive(sqs, job_dlq, MAX_RECEIVE_COUNT),
            },
        )
        self.queue_urls["jobs_dlq"] = job_dlq
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
        self.intake = SqsEventSource(
            sqs,
            self.queue_urls["intake"],
            lambda event, context: load_handler_module("manifest_trigger").lambda_handler(event, context),
            batch_size=10,
            function_timeout=TRIGGER_TIMEOUT,
            function_name="manifest-trigger",
        )
        self.worker = SqsEventSource(
            sqs,
            self.queue_urls["jobs"],
            lambda event, context: load_handler_module("upload_worker").lambda_handler(event, context),
            batch_size=1,
            function_timeout=self.worker_timeout,
            maximum_concurrency=self.worker_concurrency,
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

    def read_progress(self, job_id: str) -> dict[str, Any] | None:
        return self._read_json(f"results/.progress/{job_id}.json")

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

    def queue_depth(self, name: str) -> int:
        """Messages in a queue: visible, in flight and delayed."""
        attributes = self.sqs().get_queue_attributes(
            QueueUrl=self.queue_urls[name],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


def _arn(sqs: Any, queue_url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _redrive(sqs: Any, dlq_url: str, max_receive_count: int) -> dict[str, str]:
    return {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": _arn(sqs, dlq_url), "maxReceiveCount": max_receive_count})
    }
