"""Errors of the ledger itself (not reported to users: a writer acts on them)."""


class StaleWriteError(Exception):
    """The write's condition failed: another manifest version, a later continuation, or an ended
    job holds the item. The writer is stale; it must not act as if its write had landed."""
