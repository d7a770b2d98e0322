"""Large-content use cases against in-memory fakes of their ports."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain.content.keys import ContentKey
from chalicelib.domain.content.policy import ContentPolicy
from chalicelib.domain.content.uploads import StaleUpload
from chalicelib.domain.errors import Conflict, Forbidden, NotFound, PreconditionFailed
from chalicelib.domain.patching import MERGE_PATCH
from chalicelib.domain.principal import Principal
from chalicelib.service_layer.content import ContentService
from chalicelib.service_layer.documents import DocumentService
from chalicelib.settings_groups import ContentSettings
from tests.unit.fakes import FakeBlobStore, FakeCache, FakeStaleUploads, FakeUnitOfWork, coherence

WRITER = Principal("alice", "acme", frozenset({"writer"}))
READER = Principal("rita", "acme", frozenset({"reader"}))
OTHER = Principal("eve", "evil", frozenset({"admin"}))
BUCKET = "content-bucket"
TEXT = b"The quarterly report, in plain words.\n"


class World:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)
        self.uow = FakeUnitOfWork()
        self.cache = FakeCache()
        self.blobs = FakeBlobStore()
        self.stale = FakeStaleUploads()
        both = coherence(self.uow, self.cache)
        self.documents = DocumentService(self.uow, both, page_secret="s", clock=self.clock)
        self.content = ContentService(
            self.uow, both, self.blobs, self.stale,
            settings=ContentSettings(BUCKET, ContentPolicy(max_bytes=1024), chunk_bytes=7),
            clock=self.clock,
        )  # fmt: skip

    def clock(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def start(self, doc_id: str, data: bytes = TEXT, **request: Any) -> tuple[str, str]:
        """Start an upload; returns (object key, upload id)."""
        body = {"content_type": "text/plain", **request}
        ticket = self.content.start_upload(WRITER, doc_id, body, if_match=None)
        return ContentKey("acme", doc_id, ticket.upload_id).key, ticket.upload_id

    def upload(self, doc_id: str, data: bytes = TEXT, **request: Any) -> tuple[str, str]:
        """Start an upload and PUT its bytes; returns (object key, S3 version id)."""
        key, _ = self.start(doc_id, data, **request)
        return key, self.blobs.put(key, data)

    def doc(self, doc_id: str) -> Any:
        return self.uow.docs[("acme", doc_id)]


@pytest.fixture
def world() -> World:
    w = World()
    w.documents.put(WRITER, "d", {"title": "report"}, if_match=None, if_none_match=None)
    return w


def test_starting_an_upload_records_a_pending_version_and_signs_a_pinned_put(world: World) -> None:
    sha = hashlib.sha256(TEXT).hexdigest()
    ticket = world.content.start_upload(
        WRITER, "d", {"content_type": "text/plain", "sha256": sha, "size": len(TEXT)}, if_match=None
    )
    assert ticket.document.version == 2 and world.doc("d").content["status"] == "pending"
    assert ticket.headers["x-amz-checksum-sha256"] and ticket.headers["Content-Length"] == "38"
    upload = world.uow.uploads[("acme", ticket.upload_id)]
    assert upload.key == ContentKey("acme", "d", ticket.upload_id).key and upload.sha256 == sha
    assert world.cache.fences[-1] == ("acme", "d", 2)
    assert ticket.to_json()["expires_at"].endswith("Z")


def test_only_writers_start_uploads_and_only_on_live_current_documents(world: World) -> None:
    with pytest.raises(Forbidden):
        world.content.start_upload(READER, "d", {"content_type": "text/plain"}, if_match=None)
    with pytest.raises(NotFound):
        world.content.start_upload(WRITER, "nope", {"content_type": "text/plain"}, if_match=None)
    with pytest.raises(PreconditionFailed):
        world.content.start_upload(WRITER, "d", {"content_type": "text/plain"}, if_match='"old"')
    with pytest.raises(NotFound):
        world.content.start_upload(OTHER, "d", {"content_type": "text/plain"}, if_match=None)


def test_a_good_object_becomes_ready_with_its_text_once(world: World) -> None:
    key, version = world.upload("d")
    assert world.content.process_object(BUCKET, key, version_id=version) == "ready"
    doc = world.doc("d")
    assert doc.version == 3 and doc.content["status"] == "ready"
    assert doc.content["sha256"] == hashlib.sha256(TEXT).hexdigest()
    assert world.uow.texts[("acme", "d", 3)][0] == TEXT.decode().strip()
    assert key in world.blobs.objects and world.blobs.deleted == []
    # a duplicate notification changes nothing
    assert world.content.process_object(BUCKET, key, version_id=version) == "duplicate"
    assert world.doc("d").version == 3


def test_a_bad_object_is_rejected_and_deleted(world: World) -> None:
    key, version = world.upload("d", sha256="0" * 64)
    assert world.content.process_object(BUCKET, key, version_id=version) == "rejected"
    assert world.doc("d").content["reason"].startswith("checksum_mismatch")
    assert world.blobs.deleted == [(key, version)] and key not in world.blobs.objects


def test_an_older_upload_finishing_late_is_superseded(world: World) -> None:
    old_key, old_version = world.upload("d")
    new_key, new_version = world.upload("d", b"newer words\n")
    assert world.content.process_object(BUCKET, old_key, version_id=old_version) == "superseded"
    assert world.content.process_object(BUCKET, new_key, version_id=new_version) == "ready"
    assert world.doc("d").content["upload_id"] in new_key
    assert (old_key, old_version) in world.blobs.deleted


def test_an_upload_of_a_deleted_document_is_orphaned(world: World) -> None:
    key, version = world.upload("d")
    world.documents.delete(WRITER, "d", if_match=None)
    assert world.content.process_object(BUCKET, key, version_id=version) == "orphaned"
    assert key not in world.blobs.objects


def test_objects_the_service_did_not_issue_are_ignored(world: World) -> None:
    key, version = world.upload("d")
    assert world.content.process_object("another-bucket", key, version_id=version) == "ignored"
    assert world.content.process_object(BUCKET, "elsewhere/x", version_id=None) == "ignored"
    unissued = ContentKey("acme", "d", "01JC0000000000000000000000").key
    assert world.content.process_object(BUCKET, unissued, version_id=None) == "ignored"
    assert world.doc("d").content["status"] == "pending"


def test_downloads_point_at_the_checked_bytes_only_when_ready(world: World) -> None:
    key, version = world.upload("d")
    with pytest.raises(Conflict):
        world.content.download(READER, "d")
    world.content.process_object(BUCKET, key, version_id=version)
    download = world.content.download(READER, "d")
    assert f"version={version}" in download.url and download.content["status"] == "ready"
    with pytest.raises(NotFound):
        world.content.download(OTHER, "d")
    with pytest.raises(NotFound):
        world.content.download(READER, "d", version=1)  # that version had no content
    assert world.content.download(READER, "d", version=3).content["status"] == "ready"


def test_a_later_edit_keeps_the_content_and_its_version_downloadable(world: World) -> None:
    key, version = world.upload("d")
    world.content.process_object(BUCKET, key, version_id=version)
    doc = world.doc("d")
    world.documents.change(WRITER, "d", MERGE_PATCH, {"title": "renamed"}, if_match=doc.etag)
    assert world.content.download(READER, "d", version=3).content["status"] == "ready"


def test_expired_uploads_are_finished_one_way_or_the_other(world: World) -> None:
    world.documents.put(WRITER, "e", {"title": "empty"}, if_match=None, if_none_match=None)
    late_key, _ = world.upload("d")  # the object arrived; its notification was lost
    _, never = world.start("e")  # nothing was ever uploaded
    world.stale.stale = [StaleUpload("acme", world.doc("d").content["upload_id"], "d"),
                         StaleUpload("acme", never, "e")]  # fmt: skip
    assert world.content.expire_uploads() == {"ready": 1, "rejected": 1}
    assert world.doc("d").content["status"] == "ready" and late_key in world.blobs.objects
    assert world.doc("e").content["reason"].startswith("expired")
