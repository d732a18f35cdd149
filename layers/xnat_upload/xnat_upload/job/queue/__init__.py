"""The job queue: one FIFO message per job invocation, grouped by XNAT resource.

The message format, its group id and its deduplication id are fixed interfaces
(`../shared/ARCHITECTURE.md`): every producer (the intake, the API, the worker's own
continuations) builds them here, so they serialise the same XNAT resource the same way.

Example::

    from xnat_upload.job.queue import JobMessage, JobQueue

    message = JobMessage(job_id="ab12", manifest_key="manifests/ab12.json", manifest_version="v1", continuation=0)
    JobQueue(sqs_client, queue_url).send(message, group_id=message_group_id(manifest))
"""

from .backoff import redelivery_delay
from .messages import JobMessage, deduplication_id, message_group_id
from .sender import JobQueue, RecordVisibility

__all__ = ["JobMessage", "JobQueue", "RecordVisibility", "deduplication_id", "message_group_id", "redelivery_delay"]
