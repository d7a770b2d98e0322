"""S3 adapter: presigned URLs and streamed reads; the API never touches the bytes.

The boto3 client is created lazily, once per process (module scope, cached per
endpoint/region), so cold starts that never need S3 do not pay for it and a
warm Lambda reuses its connections.  Locally ``DOCS_AWS_ENDPOINT_URL`` points
it at the moto server (path-style addressing there).

Vendor errors are mapped here: a missing object is ``None`` (or an empty
iteration for ``chunks``), anything else is ``DependencyUnavailable``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from chalicelib.config import Settings
from chalicelib.domain.content.uploads import ObjectInfo
from chalicelib.domain.errors import DependencyUnavailable
from chalicelib.observability import tracer

_clients: dict[tuple[str | None, str], Any] = {}
_lock = threading.Lock()
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}


def client(endpoint_url: str | None, region: str) -> Any:
    """The process-wide S3 client for this endpoint (boto3 imported on first use)."""
    key = (endpoint_url, region)
    if key not in _clients:
        with _lock:
            if key not in _clients:
                import boto3
                from botocore.config import Config

                config = Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if endpoint_url else "auto"},
                    # presigned URLs must not carry SDK checksum parameters the
                    # client cannot reproduce; we sign an explicit SHA-256 instead
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=3,
                    read_timeout=30,
                )
                _clients[key] = boto3.client(
                    "s3", endpoint_url=endpoint_url, region_name=region, config=config
                )
    return _clients[key]


def _missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code")) in _MISSING


class S3Blobs:
    """Implements ``BlobStore`` on one bucket."""

    def __init__(self, settings: Settings, *, bucket: str | None = None) -> None:
        self.settings = settings
        self.bucket = bucket or settings.content_bucket

    @property
    def s3(self) -> Any:
        return client(self.settings.aws_endpoint_url, self.settings.aws_region)

    def presign_put(
        self,
        key: str,
        *,
        content_type: str,
        sha256_b64: str | None,
        size: int | None,
        expires_s: int,
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL whose signature covers the content type (and the checksum and
        length when declared): S3 refuses a PUT that sends anything else."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        headers = {"Content-Type": content_type}
        if sha256_b64:
            params["ChecksumSHA256"] = sha256_b64
            headers["x-amz-checksum-sha256"] = sha256_b64
        if size is not None:
            params["ContentLength"] = size
            headers["Content-Length"] = str(size)
        url = self.s3.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_s, HttpMethod="PUT"
        )
        return str(url), headers

    def presign_get(
        self,
        key: str,
        *,
        version_id: str | None,
        content_type: str,
        disposition: str,
        expires_s: int,
    ) -> str:
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentType": content_type,
            "ResponseContentDisposition": disposition,
            "ResponseCacheControl": "private, no-store",
        }
        if version_id:
            params["VersionId"] = version_id
        return str(self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))

    @tracer.capture_method(capture_response=False)
    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo | None:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            meta = self.s3.head_object(**params)
        except Exception as exc:
            if _missing(exc):
                return None
            raise DependencyUnavailable("The object store is unavailable.") from exc
        version = meta.get("VersionId")
        return ObjectInfo(
            size=int(meta["ContentLength"]),
            etag=(meta.get("ETag") or "").strip('"') or None,
            version_id=None if version in (None, "null") else str(version),
            content_type=meta.get("ContentType"),
        )

    def chunks(self, key: str, *, version_id: str | None, chunk_bytes: int) -> Iterator[bytes]:
        """Stream the object: one GET, read ``chunk_bytes`` at a time, never whole."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            body = self.s3.get_object(**params)["Body"]
        except Exception as exc:
            if _missing(exc):
                return
            raise DependencyUnavailable("The object store is unavailable.") from exc
        try:
            yield from body.iter_chunks(chunk_size=chunk_bytes)
        finally:
            body.close()

    def delete(self, key: str, *, version_id: str | None = None) -> None:
        """Delete the object (the given version: a rejected upload leaves nothing behind)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        try:
            self.s3.delete_object(**params)
        except Exception as exc:
            if not _missing(exc):
                raise DependencyUnavailable("The object store is unavailable.") from exc

    # -- purge -------------------------------------------------------------
    @tracer.capture_method(capture_response=False)
    def delete_every_version(self, keys: list[str]) -> int:
        """Implements ``ObjectPurger``: every version and delete marker of each
        key (the bucket is versioned: a plain DELETE would only add a marker and
        keep the bytes).  Exact keys only: a listing by prefix is filtered, so
        ``content/o/d/A`` never takes ``content/o/d/AB``.  Idempotent."""
        deleted = 0
        try:
            for key in keys:
                doomed: list[dict[str, str]] = []
                pages = self.s3.get_paginator("list_object_versions").paginate(
                    Bucket=self.bucket, Prefix=key
                )
                for page in pages:
                    for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        if item["Key"] == key:
                            doomed.append({"Key": key, "VersionId": item["VersionId"]})
                for start in range(0, len(doomed), 1000):  # DeleteObjects takes 1000 at most
                    out = self.s3.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": doomed[start : start + 1000], "Quiet": True},
                    )
                    errors = [e for e in out.get("Errors", []) if e.get("Code") != "NoSuchVersion"]
                    if errors:
                        raise DependencyUnavailable(
                            f"The object store refused {len(errors)} deletions "
                            f"({errors[0].get('Code')})."
                        )
                    deleted += len(doomed[start : start + 1000])
        except DependencyUnavailable:
            raise
        except Exception as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc
        return deleted

    def ping(self) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc


# ----------------------------------------------- whole-object archives
class S3Archive:
    """Implements ``ArchiveStore`` on one bucket: audit exports (a bucket under
    Object Lock, which requires an integrity checksum on every PUT: SHA-256
    here) and personal-data export archives."""

    def __init__(self, settings: Settings, *, bucket: str) -> None:
        self.settings = settings
        self.bucket = bucket

    @property
    def s3(self) -> Any:
        return client(self.settings.aws_endpoint_url, self.settings.aws_region)

    @tracer.capture_method(capture_response=False)
    def put(self, key: str, data: bytes, *, content_type: str) -> str:
        import base64
        import hashlib

        digest = hashlib.sha256(data).digest()
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(digest).decode(),
            )  # fmt: skip
        except Exception as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc
        return digest.hex()

    def exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return False
            raise DependencyUnavailable("The object store is unavailable.") from exc
        return True

    def read(self, key: str) -> bytes | None:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if _missing(exc):
                return None
            raise DependencyUnavailable("The object store is unavailable.") from exc
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                found += [str(o["Key"]) for o in page.get("Contents", [])]
        except Exception as exc:
            raise DependencyUnavailable("The object store is unavailable.") from exc
        return found

    def presign_get(self, key: str, *, filename: str, expires_s: int) -> str:
        params = {
            "Bucket": self.bucket, "Key": key, "ResponseContentType": "application/json",
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
            "ResponseCacheControl": "private, no-store",
        }  # fmt: skip
        return str(self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))
