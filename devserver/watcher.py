"""Delivers an S3 `ObjectCreated` event to the trigger for each new manifest version, as S3 would.

moto's server does not send bucket notifications to a Lambda, so the local stack polls the
manifests prefix instead. `deliver_new()` is one synchronous pass (tests call it directly).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .events import s3_put_event
from .stack import LocalStack


class ManifestWatcher:
    def __init__(self, stack: LocalStack, prefix: str = "manifests/", interval: float = 0.5) -> None:
        self._stack = stack
        self._prefix = prefix
        self._interval = interval
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered: list[str] = []
        self.on_error: Callable[[str, Exception], None] = lambda key, exc: print(f"trigger failed for {key}: {exc!r}")

    def _new_versions(self) -> list[dict[str, Any]]:
        s3 = self._stack.s3()
        found = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=self._stack.bucket, Prefix=self._prefix):
            for version in page.get("Versions", []):
                if not version["Key"].endswith(".json"):
                    continue
                marker = (version["Key"], version.get("VersionId") or version["ETag"])
                if marker not in self._seen:
                    self._seen.add(marker)
                    found.append(version)
        return sorted(found, key=lambda v: v["LastModified"])

    def deliver_new(self) -> list[str]:
        """Run the trigger once per manifest version not seen before; returns their keys."""
        keys = []
        for version in self._new_versions():
            key = version["Key"]
            event = s3_put_event(self._stack.bucket, key, version["Size"], version["ETag"], version.get("VersionId"))
            try:
                self._stack.invoke_trigger(event)
            except Exception as exc:  # the result manifest says what happened; keep watching
                self.on_error(key, exc)
            keys.append(key)
            self.delivered.append(key)
        return keys

    def start(self) -> ManifestWatcher:
        self._new_versions()  # what is already there was already delivered
        self._thread = threading.Thread(target=self._run, daemon=True, name="manifest-watcher")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.deliver_new()
            except Exception as exc:
                self.on_error(self._prefix, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
