"""Opening an XNAT client from settings: credentials, TLS, timeouts and retries in one place."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from ..exceptions import ConfigurationError
from .client import XnatClient
from .retry import RetryPolicy

SECRET_MAX_AGE_SECONDS = 300  # rotated passwords are picked up within five minutes

XnatConnector = Callable[[Settings, "Callable[[], float] | None"], XnatClient]


def service_credentials(settings: Settings) -> tuple[str, str]:
    """The service account: Secrets Manager (cached by Powertools) in AWS, plain variables locally."""
    if settings.xnat_secret_arn:
        from aws_lambda_powertools.utilities.parameters import get_secret

        secret = get_secret(settings.xnat_secret_arn, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
        if not isinstance(secret, dict) or not secret.get("username") or not secret.get("password"):
            raise ConfigurationError("the XNAT secret must be JSON with 'username' and 'password'")
        return str(secret["username"]), str(secret["password"])
    if settings.xnat_user and settings.xnat_password:
        return settings.xnat_user, settings.xnat_password
    raise ConfigurationError("set XNAT_SECRET_ARN, or XNAT_SERVICE_USER and XNAT_SERVICE_PASSWORD")


def open_xnat(settings: Settings, remaining_seconds: Callable[[], float] | None = None) -> XnatClient:
    """A client that is not yet logged in; enter it with `with` to log in and out."""
    username, password = service_credentials(settings)
    return XnatClient(
        settings.xnat_url,
        username,
        password,
        verify=settings.ca_bundle or True,
        timeout=(settings.connect_timeout, settings.read_timeout),
        pool_size=settings.upload_concurrency + 2,
        deadline_margin=settings.time_budget_margin_seconds / 2,
        retry=RetryPolicy(
            max_retries=settings.max_retries,
            base_delay=settings.retry_base_delay,
            window_seconds=settings.retry_window_seconds,
            remaining_seconds=remaining_seconds,
        ),
    )
