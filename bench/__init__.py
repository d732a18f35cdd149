"""Benchmark of the S3 -> XNAT uploader on loopback (GitHub issue 5): `python -m bench.run`."""
