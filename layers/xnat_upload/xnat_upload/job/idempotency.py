"""Duplicate S3 events do the work once: Powertools idempotency on (bucket, key, version, ETag).

S3 delivers notifications at least once. A manifest version already processed returns the stored
summary instead of running again; a new version of the same key (a re-put) is a new job. A job
that crashed leaves no record, so Lambda's retry runs it again.

Example::

    run_once = deduplicated(process, settings, lambda_context)
    summary = run_once(job={"bucket": b, "key": k, "version_id": v, "etag": e})
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..config import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

DEDUPLICATION_WINDOW_SECONDS = 24 * 3600  # longer than Lambda's async retries (6 h maximum event age)

JobFunction = Callable[..., dict[str, Any]]


@lru_cache(maxsize=2)
def _persistence(table: str) -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table)


def deduplicated(function: JobFunction, settings: Settings, context: LambdaContext | None = None) -> JobFunction:
    """`function(job=...)` run at most once per distinct `job` dict; unchanged without a table."""
    if not settings.idempotency_table:
        return function
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    config = IdempotencyConfig(expires_after_seconds=DEDUPLICATION_WINDOW_SECONDS, raise_on_no_idempotency_key=True)
    if context is not None:
        config.register_lambda_context(context)  # an in-progress record expires with the invocation
    return idempotent_function(
        data_keyword_argument="job", persistence_store=_persistence(settings.idempotency_table), config=config
    )(function)
