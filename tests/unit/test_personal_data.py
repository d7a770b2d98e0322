"""Personal-data fields without I/O: the envelope, the read path's shortcuts, the
blind index, the configuration."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.adapters.pii import EnvelopeCipher, LocalKeyring, MissingCipher, parse_local_keys
from chalicelib.config import Settings
from chalicelib.domain.errors import KeyUnavailable, ValidationFailed
from chalicelib.domain.model import Document, render
from chalicelib.domain.pii import is_envelope
from chalicelib.domain.search_index import search_document
from chalicelib.service_layer.pii_fields import PiiFields

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _pd(blind: bytes | None = b"b" * 32, **kw: Any) -> PiiFields:
    cipher = EnvelopeCipher(LocalKeyring([("k1", b"1" * 32)]), blind_key=blind, **kw)
    return PiiFields(("email",), cipher)


def _doc(metadata: dict[str, Any], org: str = "acme", doc_id: str = "d1") -> Document:
    return Document(org, doc_id, "t", None, [], metadata, 1, "alice", NOW, NOW)


def test_seal_then_open_round_trips_and_binds_the_value_to_its_place() -> None:
    pd = _pd()
    sealed = pd.seal_document(_doc({"email": {"any": ["json", 1]}, "team": "x"}))
    assert is_envelope(sealed.metadata["email"]) and sealed.metadata["team"] == "x"
    assert pd.open_document(sealed).metadata == {"email": {"any": ["json", 1]}, "team": "x"}
    moved = _doc(sealed.metadata, doc_id="d2")  # the same envelope on another document
    with pytest.raises(KeyUnavailable):
        pd.open_document(moved)


def test_the_read_path_parses_only_what_holds_an_envelope() -> None:
    pd = _pd()
    clear = render(_doc({"team": "x"}))
    assert pd.open_rendered(clear) is clear  # no parse, the same string
    sealed = render(pd.seal_document(_doc({"email": "a@example.com"})))
    assert json.loads(pd.open_rendered(sealed))["metadata"] == {"email": "a@example.com"}
    page = json.dumps({"items": [json.loads(sealed)], "next_page_token": None})
    assert json.loads(pd.open_page(page))["items"][0]["metadata"]["email"] == "a@example.com"


def test_one_data_key_serves_many_values_within_its_bounds() -> None:
    pd = _pd(max_uses=3)
    for _ in range(7):
        pd.seal("acme", "d1", {"email": "x"})
    assert pd.cipher.generated == 3  # type: ignore[union-attr]


def test_blind_tokens_are_normalised_org_bound_and_in_the_indexed_form() -> None:
    pd = _pd()
    sealed = pd.seal("acme", "d1", {"email": " Alice@Example.com "})
    assert pd.blind_filter("acme", {"email": "alice@example.com"}) == [sealed["email"]["bi"]]
    assert pd.blind_filter("other", {"email": "alice@example.com"}) != [sealed["email"]["bi"]]
    row = {"org": "acme", "id": "d1", "title": "t", "body": None, "tags": [], "owner": "a",
           "version": 1, "created_at": NOW, "updated_at": NOW, "metadata": sealed}  # fmt: skip
    source = search_document(row, max_chars=100).source
    assert source is not None and source["pii"] == [sealed["email"]["bi"]]
    assert "alice" not in json.dumps(source).lower()
    with pytest.raises(ValidationFailed):
        pd.blind_filter("acme", {"team": "x"})  # not personal data
    with pytest.raises(ValidationFailed):
        _pd(blind=None).blind_filter("acme", {"email": "x"})  # no blind key


def test_without_a_key_nothing_is_stored_in_clear() -> None:
    pd = PiiFields(("email",), MissingCipher())
    with pytest.raises(KeyUnavailable):
        pd.seal("acme", "d1", {"email": "x"})
    assert pd.seal("acme", "d1", {"team": "x"}) == {"team": "x"}


def test_configuration_parses_fields_and_refuses_bad_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCS_PII_FIELDS", " email, phone ,,")
    assert Settings().pii_fields == ("email", "phone")
    key = base64.b64encode(b"k" * 32).decode()
    assert [kid for kid, _ in parse_local_keys(f"new:{key}, old:{key}")] == ["new", "old"]
    for bad in ("", "k1", f"k1:{key[:-4]}", ":" + key, "k1:not base64!"):
        with pytest.raises(ValueError, match="DOCS_PII_LOCAL_KEYS") as info:
            parse_local_keys(bad)
        assert key not in str(info.value)
