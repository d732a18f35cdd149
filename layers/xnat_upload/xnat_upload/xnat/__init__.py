"""XNAT REST client and the records it returns."""

from .client import Body, XnatClient
from .models import Experiment, RemoteFile
from .retry import RetryPolicy

__all__ = ["Body", "Experiment", "RemoteFile", "RetryPolicy", "XnatClient"]
