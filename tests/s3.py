"""An S3-compatible server for the tests: moto's, in a thread of the test process on a free loopback port.

`S3Server` starts and stops it (a stopped server refuses connections; started again on the same port it
serves the same buckets: moto keeps them in this process). `fresh_bucket` makes a bucket of a test's own.
The tests that need it skip, with the reason, only where moto is not installed (it is a dev dependency).
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from epochstream.broker import free_port

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


def require_moto() -> None:
    pytest.importorskip("moto.server", reason="moto[server] is not installed: pip install -e '.[dev]'")
    pytest.importorskip("s3fs", reason="s3fs is not installed: pip install -e '.[s3]'")


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.running = False

    def start(self) -> None:
        self._server.start()
        self.running = True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # answers once its socket listens
            try:
                self.client().list_buckets()
                return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.05)
        raise RuntimeError(f"moto did not answer on {self.endpoint}")

    def stop(self) -> None:
        if self.running:
            self._server.stop()
            self.running = False

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point a client (ours, s3fs, boto3) at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def client(self):  # noqa: ANN201 - a boto3 S3 client
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def fresh_bucket(self) -> str:
        name = f"es-test-{uuid.uuid4().hex[:10]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under `prefix` (paged)."""
        out: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out
