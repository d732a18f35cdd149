"""Test-wide defaults: no X-Ray daemon, a metrics namespace, quiet logs unless a test asks."""

import os

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "XnatUploadTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "xnat-upload")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
