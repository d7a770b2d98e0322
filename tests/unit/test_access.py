"""Document permissions: the rules (domain/access.py) and their use cases, on fakes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.access import Acl, can_manage, can_read, can_write, parse_grant
from chalicelib.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from chalicelib.domain.principal import Principal
from chalicelib.domain.search import build_query, parse_search_request
from chalicelib.domain.search_index import search_document
from chalicelib.domain.viewer import Viewer
from chalicelib.service_layer.access import AccessService
from chalicelib.service_layer.documents import DocumentService
from chalicelib.service_layer.search import SearchService
from chalicelib.service_layer.search_sync import SearchSync
from tests.unit.fakes import FakeCache, FakeOutbox, FakeSearchIndex, FakeUnitOfWork, coherence


def who(sub: str, *roles: str, org: str = "acme") -> Principal:
    return Principal(sub, org, frozenset(roles))


OWNER = who("olga", "writer")
ADMIN = who("ada", "admin")
WRITER = who("will", "writer")  # a writer of the org, no grant
READER = who("rita", "reader")  # a reader of the org, no grant
GRANTED_R = who("gary", "writer")  # holds a 'reader' grant
GRANTED_W = who("gwen", "writer")  # holds a 'writer' grant
WEAK_W = who("walt", "reader")  # holds a 'writer' grant, but only the org role 'reader'
NOBODY = who("nick")  # no role at all, yet a grant
STRANGER = who("gary", "admin", org="evil")  # another org, the same user id as a grantee

GRANTS = {"gary": "reader", "gwen": "writer", "walt": "writer", "nick": "writer"}
PRIVATE = Acl("private", "olga", GRANTS)
OPEN = Acl("org", "olga", GRANTS)

# (caller, read private, write private, read open, write open, manage)
CASES = [
    (OWNER, True, True, True, True, True),
    (ADMIN, True, True, True, True, True),
    (WRITER, False, False, True, True, False),
    (READER, False, False, True, False, False),
    (GRANTED_R, True, False, True, True, False),
    (GRANTED_W, True, True, True, True, False),
    (WEAK_W, True, False, True, False, False),
    (NOBODY, False, False, False, False, False),
]


@pytest.mark.parametrize(("caller", "rp", "wp", "ro", "wo", "manage"), CASES)
def test_grants_narrow_the_org_role_and_never_widen_it(caller, rp, wp, ro, wo, manage) -> None:
    assert can_read(caller, PRIVATE) is rp
    assert can_write(caller, PRIVATE) is wp
    assert can_read(caller, OPEN) is ro
    assert can_write(caller, OPEN) is wo
    assert can_manage(caller, PRIVATE) is manage


@pytest.mark.parametrize(("caller", "rp", "wp", "ro", "wo", "manage"), CASES)
def test_the_cached_acl_and_the_search_filter_apply_the_same_read_rule(
    caller, rp, wp, ro, wo, manage
) -> None:
    for acl, expected in ((PRIVATE, rp), (OPEN, ro)):
        assert can_read(caller, Acl.decode(acl.encode())) is expected
        # the index's view of the same document, filtered as search filters it
        index = FakeSearchIndex()
        index.create_index("docs-v1")
        index.swap_alias(None, "docs-v1")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        row = {"org": "acme", "id": "d", "title": "t", "body": {}, "tags": [], "owner": "olga",
               "visibility": acl.visibility, "grantees": sorted(acl.grants), "version": 1,
               "created_at": now, "updated_at": now, "deleted_at": None, "content": None}  # fmt: skip
        index.write([search_document(row, max_chars=100)], ["docs"])
        req = parse_search_request({})
        viewer = Viewer(caller.sub, "admin" in caller.roles)
        hits = index.search(build_query("acme", req, None, viewer=viewer))["hits"]["hits"]
        assert bool(hits) is (expected or caller.rank == 0)  # the role is checked before search


def test_an_acl_line_never_holds_a_raw_newline() -> None:
    acl = Acl("private", "o\nwner", {"a\nb": "reader"})
    assert "\n" not in acl.encode() and Acl.decode(acl.encode()).owner == "o\nwner"
    assert Acl("org", "x").encode() == ""


@pytest.mark.parametrize("body", [{}, {"role": "admin"}, {"role": "reader", "org": "evil"}, []])
def test_a_grant_is_a_role_and_nothing_else(body) -> None:
    with pytest.raises(ValidationFailed):
        parse_grant(body)


# --------------------------------------------------------------- use cases
class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


class World:
    def __init__(self) -> None:
        self.uow, self.cache, clock = FakeUnitOfWork(), FakeCache(), Clock()
        both = coherence(self.uow, self.cache)
        self.docs = DocumentService(self.uow, both, page_secret="s", clock=clock)
        self.access = AccessService(self.uow, both, clock=clock)
        self.index = FakeSearchIndex()
        self.search = SearchService(self.index, self.uow, page_secret="s")
        self.sync = SearchSync(FakeOutbox(self.uow), self.index)


@pytest.fixture
def world() -> World:
    w = World()
    w.docs.put(OWNER, "d", {"title": "secret", "visibility": "private"},
               if_match=None, if_none_match=None)  # fmt: skip
    return w


def test_a_private_document_reads_as_absent_to_whoever_may_not_read_it(world: World) -> None:
    for caller in (WRITER, READER, STRANGER):
        with pytest.raises(NotFound):
            world.docs.get(caller, "d")  # a cache hit: the entry carries the ACL
        world.cache.docs.clear()
        with pytest.raises(NotFound):
            world.docs.get(caller, "d")  # a miss, from the database
        with pytest.raises(NotFound):
            world.docs.list_versions(caller, "d", limit=10, page_token=None)
        with pytest.raises(NotFound):
            world.docs.get_version(caller, "d", 1)
    assert world.docs.get(OWNER, "d").body is not None
    assert world.docs.get(ADMIN, "d").cache == "hit"


def test_no_validator_shortcut_answers_304_for_a_private_document(world: World) -> None:
    etag = world.docs.get(OWNER, "d").etag
    assert world.cache.get_etag("acme", "d") is None  # only open documents have one
    with pytest.raises(NotFound):
        world.docs.get(READER, "d", if_none_match=etag)


def test_grants_let_in_exactly_whom_they_name_within_their_role(world: World) -> None:
    world.access.put_grant(OWNER, "d", "gary", {"role": "reader"})
    world.access.put_grant(OWNER, "d", "walt", {"role": "writer"})
    assert world.docs.get(GRANTED_R, "d").body is not None  # served from the cache, new ACL
    with pytest.raises(Forbidden):
        world.docs.change(GRANTED_R, "d", "application/merge-patch+json", {"title": "x"},
                          if_match=world.uow.docs[("acme", "d")].etag)  # fmt: skip
    with pytest.raises(Forbidden):  # a writer grant, but the token only says reader
        world.docs.delete(WEAK_W, "d", if_match=None)
    with pytest.raises(NotFound):  # same user id, another org: the grant means nothing there
        world.docs.get(STRANGER, "d")
    _, grants = world.access.list_grants(ADMIN, "d")
    assert [(g.user, g.role) for g in grants] == [
        ("gary", "reader"), ("walt", "writer"),
    ]  # fmt: skip


def test_every_acl_change_is_a_new_audited_version_that_reaches_cache_and_index(
    world: World,
) -> None:
    before = world.uow.docs[("acme", "d")].version
    doc = world.access.put_grant(OWNER, "d", "gary", {"role": "reader"})
    assert doc.version == before + 1
    assert world.uow.versions[-1][2].action == "grant.put"
    assert world.cache.get("acme", "d").version == doc.version
    assert [r.version for r in world.uow.outbox][-1] == doc.version
    same = world.access.put_grant(OWNER, "d", "gary", {"role": "reader"})  # no change
    assert same.version == doc.version
    world.access.delete_grant(OWNER, "d", "gary")
    world.access.set_visibility(OWNER, "d", {"visibility": "org"}, if_match=None)
    actions = [v.action for _, _, v in world.uow.versions]
    assert actions[-3:] == ["grant.put", "grant.delete", "visibility.change"]
    assert world.docs.get(READER, "d").body is not None  # open to the org now


def test_only_the_owner_or_an_admin_manages_grants(world: World) -> None:
    world.access.put_grant(OWNER, "d", "gwen", {"role": "writer"})
    with pytest.raises(Forbidden):  # may write the document, not its ACL
        world.access.put_grant(GRANTED_W, "d", "will", {"role": "reader"})
    with pytest.raises(NotFound):  # may not even read it
        world.access.list_grants(WRITER, "d")
    with pytest.raises(NotFound):
        world.access.put_grant(STRANGER, "d", "gary", {"role": "reader"})
    with pytest.raises(ValidationFailed):
        world.access.put_grant(OWNER, "d", "olga", {"role": "reader"})
    assert world.access.set_visibility(ADMIN, "d", {"visibility": "org"}, if_match=None)


def test_a_replace_keeps_the_visibility_and_a_new_life_drops_the_grants(world: World) -> None:
    world.access.put_grant(OWNER, "d", "gwen", {"role": "writer"})
    etag = world.uow.docs[("acme", "d")].etag
    with pytest.raises(Conflict):
        world.docs.put(GRANTED_W, "d", {"title": "t", "visibility": "org"},
                       if_match=etag, if_none_match=None)  # fmt: skip
    doc, _ = world.docs.put(GRANTED_W, "d", {"title": "t2"}, if_match=etag, if_none_match=None)
    assert doc.visibility == "private" and doc.owner == "olga"
    # an id taken by a private document: under If-Match the answer of a never-used id;
    # a create is refused as for any taken id, and nothing of the document is told
    for if_match, if_none_match, error in (
        ("*", None, PreconditionFailed), (etag, None, PreconditionFailed),
        (None, "*", PreconditionFailed), (None, None, Conflict),
    ):  # fmt: skip
        with pytest.raises(error) as caught:
            world.docs.put(WRITER, "d", {"title": "mine"}, if_match=if_match,
                           if_none_match=if_none_match)  # fmt: skip
        assert caught.value.headers == {}
        if if_match is not None:
            with pytest.raises(error) as never:
                world.docs.put(WRITER, "n", {"title": "mine"}, if_match=if_match,
                               if_none_match=None)  # fmt: skip
            assert never.value.detail == caught.value.detail.replace("'d'", "'n'")


def test_lists_filter_in_the_query_and_cache_per_audience(world: World) -> None:
    world.docs.create(OWNER, {"title": "open"})
    for caller, titles in ((READER, ["open"]), (OWNER, ["open", "secret"]),
                           (ADMIN, ["open", "secret"]), (READER, ["open"])):  # fmt: skip
        page, _ = world.docs.list_documents(caller, limit=10, page_token=None, tag=None)
        assert sorted(i["title"] for i in json.loads(page)["items"]) == titles


def test_search_and_feed_leave_out_what_the_caller_may_not_read(world: World) -> None:
    world.docs.create(OWNER, {"title": "secret open"})
    world.sync.drain()
    hits = world.search.search(READER, {"q": ""})["hits"]
    assert [h["title"] for h in hits] == ["secret open"]
    assert len(world.search.search(OWNER, {"q": ""})["hits"]) == 2
    changes = world.search.changes(READER, since="0", limit=50)["changes"]
    assert "d" not in {c["id"] for c in changes} and changes
    assert "d" in {c["id"] for c in world.search.changes(ADMIN, since="0", limit=50)["changes"]}
    # a grant reaches the index through the outbox; until it does, PostgreSQL decides
    world.access.put_grant(OWNER, "d", "rita", {"role": "reader"})
    world.sync.drain()
    assert len(world.search.search(READER, {"q": ""})["hits"]) == 2
    world.access.delete_grant(OWNER, "d", "rita")  # not synced yet: the index still names rita
    assert [h["title"] for h in world.search.search(READER, {"q": ""})["hits"]] == ["secret open"]


def test_readable_answers_for_a_batch_of_ids_in_one_query(world: World) -> None:
    world.docs.put(OWNER, "o", {"title": "open"}, if_match=None, if_none_match=None)
    before = world.uow.transactions
    assert world.access.readable_ids("acme", "rita", ["reader"], ["d", "o", "nope"]) == {"o"}
    assert world.uow.transactions == before + 1
    assert world.access.readable_ids("acme", "ada", ["admin"], ["d", "o"]) == {"d", "o"}
    assert world.access.readable_ids("acme", "olga", [], ["d", "o"]) == set()
    assert world.access.readable_ids_for(OWNER, ["d"]) == {"d"}


def test_content_downloads_and_uploads_follow_the_document_acl() -> None:
    from tests.unit.test_content_service import BUCKET
    from tests.unit.test_content_service import READER as RITA
    from tests.unit.test_content_service import WRITER as ALICE
    from tests.unit.test_content_service import World as ContentWorld

    w = ContentWorld()
    w.documents.put(ALICE, "d", {"title": "report", "visibility": "private"},
                    if_match=None, if_none_match=None)  # fmt: skip
    key, version = w.upload("d")
    w.content.process_object(BUCKET, key, version_id=version)
    assert w.content.download(ALICE, "d").content["status"] == "ready"
    with pytest.raises(NotFound):
        w.content.download(RITA, "d")
    with pytest.raises(NotFound):
        w.content.start_upload(WRITER, "d", {"content_type": "text/plain"}, if_match=None)
    access = AccessService(w.uow, coherence(w.uow, w.cache))
    access.put_grant(ALICE, "d", "rita", {"role": "reader"})
    assert w.content.download(RITA, "d").content["status"] == "ready"
