"""The invocation's deadline holds on the S3 side of a transfer too, whatever S3 does.

An XNAT call is cut at its deadline (`xnat/deadline.py`), but a transfer also reads from S3: a
GET trickled by S3 (or by a proxy in front of it) makes progress on every socket read, so no
socket timeout fires, and the thread sending to XNAT waits on it far past the deadline. Here the
S3 client's connections register their sockets with the deadline of the transfer phase in
progress when they serve an image read (`reading_images`; context variables, which the worker
threads of a transfer carry: `carry_context`), and a timer shuts them down when it passes; the
read then fails, and `sources` reports it as `TimeBudgetExceededError`: the file stays `pending`
for the job's next invocation. The job's own bookkeeping (progress, checkpoint, result) goes
through the same client and is never cut: it is what the margin before the deadline is kept for.

Example::

    watch_s3_sockets(s3)  # once, when the client is created (aws.s3_client does it)
    with s3_deadline(seconds=remaining() - margin), reading_images():
        ...  # S3 requests made here, or in threads started with carry_context, are cut in time
"""

from __future__ import annotations

import contextvars
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..observability import logger
from ..xnat.deadline import CallDeadline, watched_pool

T = TypeVar("T")

_current: contextvars.ContextVar[CallDeadline | None] = contextvars.ContextVar("s3_deadline", default=None)
_images: contextvars.ContextVar[bool] = contextvars.ContextVar("reading_images", default=False)


@contextmanager
def s3_deadline(seconds: float | None) -> Iterator[CallDeadline | None]:
    """S3 sockets used in this context are shut down `seconds` from now (None: no deadline)."""
    if seconds is None:
        yield None
        return
    deadline = CallDeadline(seconds)
    token = _current.set(deadline)
    deadline.start()
    try:
        yield deadline
    finally:
        deadline.cancel()
        _current.reset(token)


@contextmanager
def reading_images() -> Iterator[None]:
    """S3 requests made inside are image reads: their sockets are cut at the deadline."""
    token = _images.set(True)
    try:
        yield
    finally:
        _images.reset(token)


def expired() -> bool:
    """Has the S3 deadline of this context passed (a failed read is then the deadline's doing)?"""
    deadline = _current.get()
    return deadline is not None and deadline.expired


def carry_context(function: Callable[..., T]) -> Callable[..., T]:
    """`function`, to be run in another thread under the caller's S3 deadline."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.copy().run(function, *args, **kwargs)


def _watch(sock: socket.socket | None) -> None:
    deadline = _current.get()
    if deadline is not None and sock is not None and _images.get():
        deadline.watch(sock)


def watch_s3_sockets(client: Any) -> bool:
    """Make a boto3 client's connections register with the S3 deadline. botocore offers no hook for
    its sockets, so this swaps the connection classes of its urllib3 pools (before any pool exists);
    False, with a warning, when a botocore release no longer has them (tests/integration catches it)."""
    try:
        classes = client._endpoint.http_session._pool_classes_by_scheme
        for scheme, pool in list(classes.items()):
            classes[scheme] = watched_pool(pool, _watch)
    except AttributeError:
        logger.warning("S3 reads cannot be cut at the deadline: botocore's connection pools are not where expected")
        return False
    return True
