"""The audit chain verifier and the erasure/filter parsing, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chalicelib.domain.audit import ChainHead, ChainRow, ChainVerifier, canonical, chain_hash
from chalicelib.domain.errors import ValidationFailed
from chalicelib.service_layer.audit import export_key, parse_since
from chalicelib.service_layer.personal_data import parse_erasure, validate_user

AT = datetime(2026, 11, 1, 12, 0, 0, 123456, tzinfo=UTC)


def chain(n: int, org: str = "acme") -> list[ChainRow]:
    rows, previous = [], b""
    for seq in range(1, n + 1):
        row = ChainRow(org, seq, 100 + seq, AT, "p-1", "create", f"d{seq}", 1, None, "rid",
                       '{"deleted": false}', b"")  # fmt: skip
        previous = chain_hash(previous, row)
        rows.append(replace(row, hash=previous))
    return rows


def verify(rows: list[ChainRow], head: ChainHead | None) -> object:
    verifier = ChainVerifier("acme")
    verifier.feed(rows)
    return verifier.finish(head)


def test_canonical_is_length_prefixed_and_marks_nulls() -> None:
    row = chain(1)[0]
    text = canonical(row).decode()
    assert text.startswith("4:acme1:13:101")
    assert "~" in text  # prev_version is NULL
    # a field boundary cannot be moved: "ab"+"c" and "a"+"bc" differ
    a = replace(row, actor="ab", action="c")
    b = replace(row, actor="a", action="bc")
    assert canonical(a) != canonical(b)


def test_an_intact_chain_verifies_in_pages() -> None:
    rows = chain(5)
    verifier = ChainVerifier("acme")
    assert verifier.feed(rows[:2]) and verifier.feed(rows[2:])
    report = verifier.finish(ChainHead("acme", 5, rows[-1].hash))
    assert report.ok and report.rows == 5 and report.last_hash == rows[-1].hash.hex()


def test_a_modified_row_is_reported_at_its_position() -> None:
    rows = chain(5)
    rows[2] = replace(rows[2], action="forged")
    report = verify(rows, ChainHead("acme", 5, rows[-1].hash))
    assert not report.ok and report.broken_at == 3 and report.row_id == 103  # type: ignore[attr-defined]


def test_a_missing_row_and_a_missing_tail_are_reported() -> None:
    rows = chain(5)
    gap = verify(rows[:2] + rows[3:], ChainHead("acme", 5, rows[-1].hash))
    assert gap.broken_at == 3 and "missing" in gap.reason  # type: ignore[attr-defined]
    tail = verify(rows[:4], ChainHead("acme", 5, rows[-1].hash))
    assert tail.broken_at == 5 and "head" in tail.reason  # type: ignore[attr-defined]
    assert verify([], None).ok  # type: ignore[attr-defined]


def test_a_head_that_does_not_match_the_last_row_is_reported() -> None:
    rows = chain(3)
    report = verify(rows, ChainHead("acme", 3, b"\x00" * 32))
    assert not report.ok and report.broken_at == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "target"),
    [({"documents": "delete"}, None), ({"documents": "reassign:bob"}, "bob")],
)
def test_erasure_bodies(body: object, target: str | None) -> None:
    assert parse_erasure(body, "alice") == target


@pytest.mark.parametrize(
    "body",
    [None, [], {}, {"documents": 1}, {"documents": "purge"}, {"documents": "reassign:"},
     {"documents": "reassign:alice"}, {"documents": "delete", "x": 1},
     {"documents": "reassign:a\x00b"}],
)  # fmt: skip
def test_bad_erasure_bodies_are_validation_errors(body: object) -> None:
    with pytest.raises(ValidationFailed):
        parse_erasure(body, "alice")


def test_user_ids_and_since() -> None:
    assert validate_user("a:b.c", ["path"]) == "a:b.c"
    for bad in ("", "x" * 257, "tab\there", 5, "a:b/c", " bob"):
        with pytest.raises(ValidationFailed):
            validate_user(bad, ["path"])
    assert parse_since("2026-11-01T00:00:00Z") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since(None) is None
    with pytest.raises(ValidationFailed):
        parse_since("yesterday")


def test_export_keys_are_one_prefix_per_org() -> None:
    day = datetime(2026, 11, 1, tzinfo=UTC)
    assert export_key("audit", "acme", day, "m.json") == "audit/acme/2026/11/01/m.json"
    assert export_key("audit", "a/b", day, "m.json") == "audit/a%2Fb/2026/11/01/m.json"


def test_anchors_from_the_exports_catch_a_consistent_rewrite_and_a_lost_tail() -> None:
    rows = chain(4)
    head = ChainHead("acme", 4, rows[-1].hash)
    good = ChainVerifier("acme", {2: rows[1].hash})
    good.feed(rows)
    assert good.finish(head).ok
    rewritten = ChainVerifier("acme", {2: b"\x01" * 32})
    rewritten.feed(rows)
    assert rewritten.finish(head).broken_at == 2
    lost = ChainVerifier("acme", {6: b"\x02" * 32})  # exported rows the database lacks
    lost.feed(rows)
    assert lost.finish(head).broken_at == 6
