"""Migrations are expand-only within a deploy (docs/operations.md, "Migrations").

The pre-traffic hook runs a release's migrations while the previous version still
serves every request, and a rollback puts that version back on the new schema. So a
migration may only add what the old code does not see (tables, nullable columns or
columns with a default, indexes, functions, policies), never remove or reshape what
it reads or writes. Removing something is a *contract* step: its own migration, in a
release after the one whose code stopped using it, marked in its first lines with

    -- contract: <what is removed>; <the release that stopped using it>

This test reads every file in chalicelib/migrations/ (comments stripped) and refuses,
outside contract files:

- ``DROP`` of anything (tables, columns, constraints, defaults, indexes, functions,
  types, …) — except the re-create pattern below — and ``DROP NOT NULL`` is fine
  (it relaxes);
- ``RENAME`` (of a table, column, constraint, …);
- ``ALTER COLUMN … TYPE`` (``SET DATA TYPE``);
- ``SET NOT NULL`` on a column the same file gives no default;
- ``ADD COLUMN … NOT NULL`` without a ``DEFAULT`` (the old code's INSERTs omit it).

Re-creation is allowed: ``DROP TRIGGER|POLICY|FUNCTION IF EXISTS <name> [ON <table>]``
followed, in the same file, by the ``CREATE`` of the same object. The files use it
because PostgreSQL has no ``CREATE POLICY/TRIGGER IF NOT EXISTS``: dropping and
creating it again keeps a file idempotent, and the object exists again when the
file's transaction commits (migrations run one file per transaction), so no version
of the code ever sees it missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

MIGRATIONS = Path(__file__).resolve().parents[2] / "chalicelib" / "migrations"
CONTRACT = re.compile(r"^--\s*contract:\s*\S.{8,}", re.I | re.M)
NAME = r'(?:"[^"]+"|[\w.]+)'
RECREATED = re.compile(
    rf"\bDROP\s+(TRIGGER|POLICY|FUNCTION)\s+IF\s+EXISTS\s+({NAME})(?:\s*\([^)]*\))?"
    rf"(?:\s+ON\s+({NAME}))?",
    re.I,
)


def _sql(text: str) -> str:
    """The SQL without comments, on one line (string literals are left as they are)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    return re.sub(r"\s+", " ", text)


def _recreated(sql: str, match: re.Match[str]) -> bool:
    kind, name, table = match.group(1).upper(), match.group(2), match.group(3)
    rest = sql[match.end() :]
    if kind == "FUNCTION":
        create = rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+{re.escape(name)}\s*\("
    else:
        on = rf"\s.*?\bON\s+{re.escape(table)}\b" if table else ""
        create = rf"\bCREATE\s+(?:CONSTRAINT\s+)?{kind}\s+{re.escape(name)}\b{on}"
    return re.search(create, rest, re.I) is not None


def violations(text: str) -> list[str]:
    """What in one migration file is not expand-only ([] for a contract file)."""
    head = "\n".join(text.splitlines()[:15])
    if CONTRACT.search(head):
        return []
    sql = _sql(text)
    found: list[str] = []
    allowed = {m.start() for m in RECREATED.finditer(sql) if _recreated(sql, m)}
    for m in re.finditer(r"\bDROP\b(?!\s+NOT\s+NULL)", sql, re.I):
        if m.start() not in allowed:
            found.append("DROP " + sql[m.end() : m.end() + 60].strip())
    for m in re.finditer(r"\bRENAME\b", sql, re.I):
        found.append("RENAME " + sql[m.end() : m.end() + 60].strip())
    for m in re.finditer(rf"\bALTER\s+(?:COLUMN\s+)?{NAME}\s+(?:SET\s+DATA\s+)?TYPE\b", sql, re.I):
        found.append("column type change: " + m.group(0))
    for m in re.finditer(rf"\bALTER\s+(?:COLUMN\s+)?({NAME})\s+SET\s+NOT\s+NULL\b", sql, re.I):
        column = re.escape(m.group(1))
        if not re.search(rf"\bALTER\s+(?:COLUMN\s+)?{column}\s+SET\s+DEFAULT\b", sql, re.I):
            found.append(f"SET NOT NULL without a default: {m.group(1)}")
    for m in re.finditer(
        rf"\bADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?!CONSTRAINT\b)({NAME})\s+([^,;]*)",
        sql,
        re.I,
    ):
        definition = m.group(2)
        if re.search(r"\bNOT\s+NULL\b", definition, re.I) and not re.search(
            r"\bDEFAULT\b", definition, re.I
        ):
            found.append(f"ADD COLUMN {m.group(1)} NOT NULL without a default")
    return found


@pytest.mark.parametrize("path", sorted(MIGRATIONS.glob("*.sql")), ids=lambda p: p.name)
def test_every_migration_is_expand_only_or_a_marked_contract_step(path: Path) -> None:
    assert violations(path.read_text()) == [], (
        f"{path.name} is not expand-only: split it into an expand migration now and a "
        "'-- contract: ...' migration in a later release (docs/operations.md)"
    )


def test_there_are_migrations_to_check() -> None:
    assert len(list(MIGRATIONS.glob("*.sql"))) >= 6


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE documents;",
        "drop table if exists documents;",
        "ALTER TABLE documents DROP COLUMN title;",
        "ALTER TABLE documents DROP title;",
        "ALTER TABLE documents DROP CONSTRAINT documents_pkey;",
        "ALTER TABLE documents ALTER COLUMN body DROP DEFAULT;",
        "DROP INDEX documents_by_owner;",
        "DROP FUNCTION docs_outbox_claim(int);",
        "DROP POLICY IF EXISTS tenant ON documents;",  # not created again
        "DROP TRIGGER IF EXISTS t ON a; CREATE TRIGGER t BEFORE UPDATE ON b FOR EACH ROW "
        "EXECUTE FUNCTION f();",  # created again on another table
        "ALTER TABLE documents RENAME COLUMN title TO name;",
        "ALTER TABLE documents RENAME TO docs;",
        "ALTER TABLE documents ALTER COLUMN version TYPE int;",
        "ALTER TABLE documents ALTER version SET DATA TYPE int;",
        "ALTER TABLE documents ALTER COLUMN owner SET NOT NULL;",
        "ALTER TABLE documents ADD COLUMN lang text NOT NULL;",
        "ALTER TABLE documents ADD COLUMN IF NOT EXISTS lang text NOT NULL;",
    ],
)
def test_the_check_refuses_what_breaks_the_previous_version(sql: str) -> None:
    assert violations(sql), sql


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE IF NOT EXISTS t (a text NOT NULL, drop_after timestamptz);",
        "ALTER TABLE documents ADD COLUMN IF NOT EXISTS lang text;",
        "ALTER TABLE documents ADD COLUMN lang text NOT NULL DEFAULT 'en';",
        "ALTER TABLE documents ALTER COLUMN owner DROP NOT NULL;",
        "ALTER TABLE documents ALTER COLUMN lang SET DEFAULT 'en'; "
        "ALTER TABLE documents ALTER COLUMN lang SET NOT NULL;",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (org IS NOT NULL) NOT VALID;",
        "DROP POLICY IF EXISTS tenant ON documents; "
        "CREATE POLICY tenant ON documents TO docs_app USING (true);",
        "DROP TRIGGER IF EXISTS no_rewrite ON audit_log; CREATE TRIGGER no_rewrite "
        "BEFORE UPDATE ON audit_log FOR EACH ROW EXECUTE FUNCTION f();",
        "-- we never drop or rename anything here\nCREATE INDEX i ON t (a);",
        "-- contract: drop documents.legacy_title; unused since 2026.11\n"
        "ALTER TABLE documents DROP COLUMN legacy_title;",
    ],
)
def test_the_check_allows_expansions_and_marked_contract_steps(sql: str) -> None:
    assert violations(sql) == [], sql
