"""Local stand-ins for AWS and XNAT on loopback: moto's S3 server and the XNAT emulator.

Shared by the tests, the local demo (`python -m devserver.demo`) and the benchmark, so that
all three exercise the service over real HTTP and nothing needs Docker.
"""
