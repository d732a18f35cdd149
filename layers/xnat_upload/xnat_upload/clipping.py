"""Text that quotes untrusted input stays short: a manifest may hold a 1 MB field name or path.

Results in S3 keep every requested path whole; what the API returns, and what an error message
quotes, is clipped so that no answer can outgrow API Gateway's and Lambda's limits.

Example::

    clip("x" * 5000, 100)  # the first 100 characters, then "… (4900 more characters)"
"""

from __future__ import annotations


def clip(text: str, limit: int) -> str:
    """`text` whole when it has at most `limit` characters, else its start and how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"
