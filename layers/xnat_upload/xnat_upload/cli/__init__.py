"""`xnat-upload`: validate, submit and follow upload jobs from a terminal or a script.

Not part of the Lambda layer's runtime path: the functions never import it. It uses only the
standard library, boto3 and the core package, and talks to S3 exactly as the service does, so it
works against AWS or any S3 endpoint set with `AWS_ENDPOINT_URL` (e.g. `make serve`).

Example::

    xnat-upload validate events/manifest.json
    xnat-upload submit events/manifest.json --bucket my-data-bucket --wait
    xnat-upload status 3f2a9c... --bucket my-data-bucket
"""
