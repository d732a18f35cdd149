"""Decoding JSON that someone else wrote (manifests, XNAT answers, S3 documents) without crashing.

`json.loads` raises `RecursionError` on deeply nested input (`[[[[...]]]]`, a few kilobytes
suffice), which is not a `ValueError`: every caller that guards against bad JSON with
`except ValueError` would crash instead. This is the one decoder for untrusted text.

Example::

    try:
        document = safe_json.loads(body)
    except ValueError as exc:
        ...  # not JSON, or nested too deeply
"""

from __future__ import annotations

import json
from typing import Any


class JsonTooDeepError(ValueError):
    """The document nests arrays or objects deeper than the decoder can follow."""


def loads(text: str | bytes | bytearray) -> Any:
    """`json.loads`, but every way untrusted input can fail is a `ValueError`."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTooDeepError("JSON is nested too deeply") from None
