"""The whole service on loopback: moto's S3 server, the XNAT emulator, a data bucket, the trigger.

Example::

    with LocalStack() as stack:
        os.environ.update(stack.environment())
        stack.put_image("net-1", "ct.nii.gz", b"...")
        event = stack.put_manifest("job-1", {...})
        stack.invoke_trigger(event)
        print(stack.read_result("job-1")["urls"])
"""

from __future__ import annotations

import json
from typing import Any

from .events import s3_put_event
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


class LocalStack:
    """Starts both servers, seeds the demo project and session, creates the versioned bucket."""

    def __init__(self, aws: LocalAws | None = None, xnat: XnatEmulator | None = None, bucket: str = BUCKET) -> None:
        self._own_aws = aws is None
        self.aws = aws or LocalAws()
        self.xnat_user, self.xnat_password = XNAT_USER, XNAT_PASSWORD
        self.xnat = xnat or XnatEmulator(username=XNAT_USER, password=XNAT_PASSWORD)
        self.bucket = bucket

    def start(self) -> LocalStack:
        if self._own_aws:
            self.aws.start()
        self.xnat.start()
        self.xnat.add_project(DEMO_PROJECT, secondary_id=DEMO_SECONDARY_ID)
        self.xnat.add_experiment(DEMO_PROJECT, DEMO_SUBJECT, DEMO_ACCESSION)
        s3 = self.s3()
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        return self

    def stop(self) -> None:
        self.xnat.stop()
        if self._own_aws:
            self.aws.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def environment(self, **overrides: str) -> dict[str, str]:
        """The function's configuration, as template.yaml sets it, pointed at the local servers."""
        return {
            **self.aws.environment(),
            "XNAT_URL": self.xnat.url,
            "XNAT_SERVICE_USER": self.xnat_user,
            "XNAT_SERVICE_PASSWORD": self.xnat_password,
            "DATA_BUCKET": self.bucket,
            "POWERTOOLS_SERVICE_NAME": "xnat-upload",
            "POWERTOOLS_METRICS_NAMESPACE": "XnatUploadLocal",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **overrides,
        }

    def s3(self) -> Any:
        return self.aws.s3()

    def put_image(self, net_id: str, relative_path: str, data: bytes, images_prefix: str = "") -> str:
        key = f"{images_prefix}{net_id}/upload/{relative_path}"
        self.s3().put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def put_manifest(self, job_id: str, manifest: dict[str, Any] | bytes) -> dict[str, Any]:
        """Put `manifests/<job_id>.json` and return the S3 event AWS would deliver for it."""
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        key = f"manifests/{job_id}.json"
        put = self.s3().put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return s3_put_event(self.bucket, key, len(body), put["ETag"], put.get("VersionId"))

    def manifest_event(self, job_id: str) -> dict[str, Any]:
        """The S3 event for a manifest someone else put (the API, the CLI), as S3 would send it."""
        key = f"manifests/{job_id}.json"
        head = self.s3().head_object(Bucket=self.bucket, Key=key)
        return s3_put_event(self.bucket, key, head["ContentLength"], head["ETag"], head.get("VersionId"))

    def invoke_trigger(self, event: dict[str, Any], timeout_seconds: float = 900.0) -> dict[str, Any]:
        """Call the real handler the way Lambda would (same module path, a context with a deadline)."""
        app = load_handler_module("manifest_trigger")
        return app.lambda_handler(event, LocalLambdaContext("manifest-trigger", timeout_seconds))

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        try:
            body = self.s3().get_object(Bucket=self.bucket, Key=f"results/{job_id}.json")["Body"].read()
        except self.s3().exceptions.NoSuchKey:
            return None
        return json.loads(body)
