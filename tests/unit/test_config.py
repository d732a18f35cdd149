"""Configuration is read once from the environment, with safe defaults and clear errors."""

from __future__ import annotations

import pytest

from xnat_upload.config import Settings
from xnat_upload.exceptions import ConfigurationError, NetConfinementError

BASE = {"XNAT_URL": "https://xnat.example.org/", "DATA_BUCKET": "data"}


def test_defaults_follow_the_architecture() -> None:
    settings = Settings.from_env(BASE)
    assert settings.xnat_url == "https://xnat.example.org"
    assert (settings.images_prefix, settings.manifests_prefix, settings.results_prefix) == (
        "",
        "manifests/",
        "results/",
    )
    assert settings.scan_xsi_type == "xnat:mrScanData"
    assert settings.upload_mode == "auto"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATA_BUCKET": "data"}, "XNAT_URL"),
        ({"XNAT_URL": "ftp://x", "DATA_BUCKET": "d"}, "XNAT_URL"),
        ({"XNAT_URL": "https://x"}, "DATA_BUCKET"),
        ({**BASE, "UPLOAD_MODE": "fast"}, "UPLOAD_MODE"),
        ({**BASE, "UPLOAD_CONCURRENCY": "0"}, "UPLOAD_CONCURRENCY"),
        ({**BASE, "XNAT_READ_TIMEOUT": "soon"}, "XNAT_READ_TIMEOUT"),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def test_prefixes_gain_a_trailing_slash() -> None:
    settings = Settings.from_env({**BASE, "IMAGES_PREFIX": "images", "RESULTS_PREFIX": "out"})
    assert settings.upload_prefix("net-1") == "images/net-1/upload/"
    assert settings.results_key("2026/ab12") == "out/2026/ab12.json"


@pytest.mark.parametrize(
    ("key", "job_id"),
    [
        ("manifests/ab12.json", "ab12"),
        ("manifests/2026/ab12.json", "2026/ab12"),
        ("manifests/.json", None),
        ("results/ab12.json", None),
        ("manifests/ab12.txt", None),
    ],
)
def test_job_id_is_the_manifest_key_without_prefix_and_suffix(key: str, job_id: str | None) -> None:
    assert Settings.from_env(BASE).job_id_for(key) == job_id


def test_the_password_is_never_in_the_settings_repr() -> None:
    settings = Settings.from_env({**BASE, "XNAT_SERVICE_USER": "svc", "XNAT_SERVICE_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize("net_id", ["manifests", "results"])
def test_a_net_cannot_read_from_the_manifests_or_results_prefix(net_id: str) -> None:
    from xnat_upload.exceptions import KeyOutsidePrefixError

    with pytest.raises(KeyOutsidePrefixError):
        Settings.from_env(BASE).upload_prefix(net_id)
    assert Settings.from_env({**BASE, "IMAGES_PREFIX": "images/"}).upload_prefix(net_id) == f"images/{net_id}/upload/"


def test_images_are_read_from_the_data_bucket_unless_another_is_named() -> None:
    assert Settings.from_env(BASE).images_bucket == "data"
    assert Settings(xnat_url="https://x", data_bucket="data").images_bucket == "data"
    assert Settings.from_env({**BASE, "IMAGES_BUCKET": "pacs"}).images_bucket == "pacs"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CONFINE_TO_NET": "yes"}, "CONFINE_TO_NET"),
        ({"XNAT_CA_BUNDLE_S3_URI": "bucket/key.pem"}, "XNAT_CA_BUNDLE_S3_URI"),
        ({"XNAT_CA_BUNDLE_S3_URI": "s3://bucket/"}, "XNAT_CA_BUNDLE_S3_URI"),
    ],
)
def test_bad_deployment_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env({**BASE, **env})


def test_confined_jobs_belong_to_the_net_their_key_names() -> None:
    confined = Settings.from_env({**BASE, "CONFINE_TO_NET": "true"})
    assert confined.net_of("net-1/ab12") == "net-1"
    assert confined.net_of("ab12") == ""
    confined.check_net("net-1/ab12", "net-1")
    with pytest.raises(NetConfinementError, match="manifests/net-1/"):
        confined.check_net("net-2/ab12", "net-1")
    free = Settings.from_env(BASE)
    assert free.net_of("net-1/ab12") is None
    free.check_net("net-2/ab12", "net-1")
