"""Kill the upload worker at a named point, then redeliver its message as SQS does.

Lambda can stop a function at any instruction (its timeout, out of memory, a crashed host). The
harness reproduces that for real: the worker's handler (`functions/upload_worker/app.py`, loaded as
`devserver/handlers.py` loads it) runs in a CHILD PROCESS on an SQS event received from the local job
queue (moto's server), and the child is SIGKILLed either

* at a named function (`KillAt("module:Qualname.attr", when="before" | "after", call=N)`): the child
  wraps that attribute; on its Nth call it kills itself before the call runs, or after it returned or
  raised. The attribute must be looked up at call time (a method of a class, or a module-level name
  the caller reads through its module), not a name copied by `from x import y` before the wrap; or
* from outside (`Child.kill`), e.g. by the XNAT emulator while a request is in flight
  (`stack.xnat.on_request(child.kill, method="PUT", path_contains="/files/")`).

A killed invocation deletes nothing: its message stays in flight until `redeliver` makes it visible
again (ChangeMessageVisibility 0, as the end of the visibility timeout does); the next `receive`
gets it with ApproximateReceiveCount one higher. An invocation that ends is acted on as Lambda's
event source mapping does: every message not listed in `batchItemFailures` is deleted.

Example::

    delivery = receive(stack)                                   # one message, as Lambda receives it
    first = invoke(stack, delivery, kill_at=KillAt("xnat_upload.xnat.client:XnatClient.upload_file_to_xnat"))
    assert first.killed
    redeliver(stack, delivery)
    second = invoke(stack, receive(stack))                      # receive count 2; runs to its end
    assert second.response == {"batchItemFailures": []}

One child costs about a second (interpreter, boto3, Powertools): choose the points, not every line.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT = 120.0  # seconds a child may run before the test fails (a hang is a bug, never a wait)


@dataclass(frozen=True)
class KillAt:
    """Where the child kills itself: `target` is "module:Qualname.attr"; `call` counts from 1."""

    target: str
    when: Literal["before", "after"] = "after"
    call: int = 1


@dataclass
class Delivery:
    """One job message as the queue handed it out (body, receipt handle, attributes)."""

    message: dict[str, Any]

    @property
    def receive_count(self) -> int:
        return int(self.message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.message["Body"]))


@dataclass
class Child:
    """The running child process; `kill` may be called from any thread (an emulator hook)."""

    pid: int | None = None
    killed_from_outside: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def kill(self) -> None:
        with self._lock:
            if self.pid is not None and not self.killed_from_outside:
                self.killed_from_outside = True
                os.kill(self.pid, signal.SIGKILL)


@dataclass
class Invocation:
    """What one child did: killed (SIGKILL), or ended with the handler's `response` (or `error`)."""

    killed: bool
    response: dict[str, Any] | None = None
    error: str | None = None
    output: str = ""


def receive(stack: Any) -> Delivery | None:
    """One message from the job queue with every attribute, or None when none is visible."""
    messages = (
        stack.sqs()
        .receive_message(
            QueueUrl=stack.queue_urls["jobs"], MaxNumberOfMessages=1, AttributeNames=["All"], WaitTimeSeconds=0
        )
        .get("Messages", [])
    )
    return Delivery(messages[0]) if messages else None


def redeliver(stack: Any, delivery: Delivery) -> None:
    """Make the (killed) delivery's message visible again at once, as its visibility timeout ending would."""
    stack.sqs().change_message_visibility(
        QueueUrl=stack.queue_urls["jobs"], ReceiptHandle=delivery.message["ReceiptHandle"], VisibilityTimeout=0
    )


def sqs_event(stack: Any, delivery: Delivery) -> dict[str, Any]:
    """The event Lambda builds from the message (the shape `SqsEventSource` sends, receive count included)."""
    arn = stack.sqs().get_queue_attributes(QueueUrl=stack.queue_urls["jobs"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    message = delivery.message
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": arn.split(":")[3],
    }
    return {"Records": [record]}


def invoke(
    stack: Any,
    delivery: Delivery,
    *,
    kill_at: KillAt | None = None,
    child: Child | None = None,
    timeout_seconds: float = 900.0,
    environment: dict[str, str] | None = None,
) -> Invocation:
    """Run the worker's handler on `delivery` in a child process (the test's environment, plus
    `environment`), with a Lambda context of `timeout_seconds`. Killed: nothing is deleted. Ended:
    the messages it did not list as failed are deleted, as the event source mapping does."""
    child = child or Child()
    with tempfile.TemporaryDirectory(prefix="kill-harness-") as folder:
        answer = Path(folder) / "response.json"
        request = {
            "event": sqs_event(stack, delivery),
            "timeout_seconds": timeout_seconds,
            "kill_at": None if kill_at is None else [kill_at.target, kill_at.when, kill_at.call],
            "answer": str(answer),
        }
        from tests.processes import popen

        process = popen(
            [sys.executable, "-m", "tests.kill_harness"],
            cwd=ROOT,
            env={**os.environ, **(environment or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        child.pid = process.pid
        try:
            output, _ = process.communicate(json.dumps(request), timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError(f"the worker child ran longer than {CHILD_TIMEOUT} s") from None
        if process.returncode == -signal.SIGKILL:
            return Invocation(killed=True, output=output)
        if not answer.exists():
            raise AssertionError(f"the worker child ended ({process.returncode}) without an answer:\n{output[-4000:]}")
        outcome = json.loads(answer.read_text())
    if outcome.get("error") is None:
        failed = {item["itemIdentifier"] for item in (outcome["response"] or {}).get("batchItemFailures", [])}
        if delivery.message["MessageId"] not in failed:
            stack.sqs().delete_message(
                QueueUrl=stack.queue_urls["jobs"], ReceiptHandle=delivery.message["ReceiptHandle"]
            )
    return Invocation(killed=False, response=outcome.get("response"), error=outcome.get("error"), output=output)


# -- the child ------------------------------------------------------------------------------------


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(kill_at: KillAt) -> None:
    """In the child: wrap `kill_at.target` so that its Nth call kills the process."""
    module_name, qualname = kill_at.target.split(":", 1)
    owner: Any = importlib.import_module(module_name)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0
    lock = threading.Lock()

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        with lock:
            calls += 1
            due = calls == kill_at.call
        if due and kill_at.when == "before":
            _die()
        try:
            return original(*args, **kwargs)
        finally:
            if due and kill_at.when == "after":
                _die()

    setattr(owner, name, wrapper)


def _child_main() -> None:
    request = json.loads(sys.stdin.read())
    sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "xnat_upload")]
    from devserver.handlers import load_handler_module
    from devserver.lambda_context import LocalLambdaContext

    app = load_handler_module("upload_worker")
    if request["kill_at"] is not None:
        target, when, call = request["kill_at"]
        install(KillAt(target, when, call))
    outcome: dict[str, Any] = {"response": None, "error": None}
    try:
        context = LocalLambdaContext("upload-worker", request["timeout_seconds"])
        outcome["response"] = app.lambda_handler(request["event"], context)
    except Exception as exc:  # Lambda: the whole batch returns to the queue
        outcome["error"] = repr(exc)
    Path(request["answer"]).write_text(json.dumps(outcome))


if __name__ == "__main__":
    _child_main()
