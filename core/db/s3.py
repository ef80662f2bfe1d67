"""Attachments' bytes in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, ...).

With `CARELINE_FILE_STORE=s3` the `stored_files` row keeps what the ticket needs to know
(name, type, size, owner, checksum) and the bytes go to `CARELINE_S3_BUCKET` under
`<prefix><id>`, so a large install keeps its database small. Credentials come from boto3's
usual chain (environment, shared files, an instance or pod role) unless given in settings.
The object is written before its row, so a row never names a missing object; erasure deletes
the rows in its transaction and the objects after commit, through the relay
(`CustomerErased.file_ids`), so a rolled-back erasure never loses a file.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client


class S3Blobs:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "careline/files/",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5),
        )

    def key(self, file_id: str) -> str:
        return f"{self.prefix}{file_id}"

    async def put(self, file_id: str, content: bytes, mime_type: str, sha256: str) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.key(file_id),
            Body=content,
            ContentType=mime_type,
            Metadata={"sha256": sha256},
        )

    async def get(self, file_id: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                answer: Any = self.client.get_object(Bucket=self.bucket, Key=self.key(file_id))
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            return bytes(answer["Body"].read())

        return await asyncio.to_thread(read)

    async def delete(self, file_ids: list[str]) -> int:
        """Delete the objects (absent ones count as deleted: erasure may run twice)."""
        if not file_ids:
            return 0

        def remove() -> int:
            deleted = 0
            for start in range(0, len(file_ids), 1000):  # DeleteObjects takes 1,000 keys
                chunk = file_ids[start : start + 1000]
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.key(i)} for i in chunk], "Quiet": True},
                )
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise RuntimeError(
                        f"S3 refused to delete {first.get('Key')}: {first.get('Code')}"
                    )
                deleted += len(chunk)
            return deleted

        return await asyncio.to_thread(remove)

    async def check(self) -> None:
        """At start: the bucket exists and these credentials reach it (a clear error if not)."""
        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            raise RuntimeError(f"the S3 bucket {self.bucket!r} is not reachable ({code})") from None
