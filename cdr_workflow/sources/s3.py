"""An S3 bucket (or any S3-compatible store) under a prefix.

Listing pages through `list_objects_v2` under the prefix only; API calls retry transient errors
(5xx, throttling, timeouts) through the client's standard retry mode. Reading streams the object
and, if the connection breaks mid-body, resumes from the last byte with a ranged GET pinned to
the same ETag, so a file is never read half or mixed with a newer version.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterable
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from cdr_workflow.sources.base import CdrFile, Source, StoredObject

RESUME_ATTEMPTS = 5


class S3ReadError(OSError):
    """An S3 object could not be listed or read completely; names bucket and key."""


class S3Source(Source):
    def __init__(self, client: Any, bucket: str, prefix: str, pattern: re.Pattern[str]):
        self.client, self.bucket, self.prefix, self.pattern = client, bucket, prefix, pattern

    @property
    def description(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _objects(self) -> Iterable[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue
                    etag = obj["ETag"].strip('"')
                    yield StoredObject(
                        relative_path=key[len(self.prefix):].lstrip("/"),
                        uri=f"s3://{self.bucket}/{key}",
                        size_bytes=obj["Size"],
                        fingerprint=f"{etag}-{obj['Size']}",
                        modified=obj["LastModified"],
                    )
        except (BotoCoreError, ClientError) as exc:
            raise S3ReadError(f"cannot list {self.description}: {exc}") from exc

    def open(self, cdr_file: CdrFile) -> BinaryIO:
        key = cdr_file.uri.removeprefix(f"s3://{self.bucket}/")
        etag = cdr_file.fingerprint.rsplit("-", 1)[0]
        raw = _ResumingBody(self.client, self.bucket, key, etag, cdr_file.size_bytes)
        return io.BufferedReader(raw, buffer_size=1024 * 1024)


class _ResumingBody(io.RawIOBase):
    """A streamed S3 body that resumes after a broken connection and checks its length."""

    def __init__(self, client: Any, bucket: str, key: str, etag: str, size: int):
        self.client, self.bucket, self.key, self.etag, self.size = client, bucket, key, etag, size
        self.position = 0
        self.body: Any = None

    def readable(self) -> bool:
        return True

    def _where(self) -> str:
        return f"s3://{self.bucket}/{self.key} at byte {self.position}"

    def _open_body(self) -> None:
        args = {"Bucket": self.bucket, "Key": self.key, "IfMatch": self.etag}
        if self.position:
            args["Range"] = f"bytes={self.position}-"
        try:
            self.body = self.client.get_object(**args)["Body"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise S3ReadError(f"s3://{self.bucket}/{self.key} was replaced while being "
                                  "read; the next sensor tick loads the new version") from exc
            raise S3ReadError(f"cannot read {self._where()}: {exc}") from exc
        except BotoCoreError as exc:
            raise S3ReadError(f"cannot read {self._where()}: {exc}") from exc

    def readinto(self, buffer: Any) -> int:
        for attempt in range(RESUME_ATTEMPTS):
            try:
                if self.body is None:
                    self._open_body()
                data = self.body.read(len(buffer))
                break
            except S3ReadError:
                raise
            except (BotoCoreError, OSError) as exc:
                if attempt == RESUME_ATTEMPTS - 1:
                    raise S3ReadError(f"cannot read {self._where()}: {exc}") from exc
                self.body = None
                time.sleep(min(2 ** attempt * 0.2, 5))
        if not data and self.position != self.size:
            raise S3ReadError(f"s3://{self.bucket}/{self.key}: got {self.position} of "
                              f"{self.size} bytes; the download is incomplete")
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def close(self) -> None:
        if self.body is not None:
            self.body.close()
        super().close()
