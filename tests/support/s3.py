"""An S3-compatible server on 127.0.0.1 for the tests: moto's, which implements the S3 REST
API from AWS's own service model (botocore's), so the real boto3 talks to it as to S3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest
from moto.server import ThreadedMotoServer

KEY_ID, SECRET = "test-key-id", "test-secret-access-key"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    url: str

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )

    def new_bucket(self) -> str:
        name = f"careline-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{server._server.server_port}")  # type: ignore[union-attr]
    finally:
        server.stop()
