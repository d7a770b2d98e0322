"""The database's identity: what every Redis key of a process is bound to.

Three parts, hashed into 32 hex digits (adapters/redis/namespace.py puts them in
every key):

- the random id the database generated for itself (migration 0013,
  ``database_identity``): two databases created apart never share it;
- the database's OID: a database created from another as a template, or
  restored from a dump into the same cluster, copies the row but gets its own OID;
- the cluster's ``system_identifier`` (``pg_control_system()``): a dump restored
  into another cluster, where the OID may repeat, lands under another one.

Only a physical copy (a storage snapshot, a point-in-time restore) keeps all
three: give such a copy a new id before it serves beside its original
(docs/operations.md, "Restore or copy a database").
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg import sql

_READ = (
    "SELECT i.id::text AS id, d.oid::bigint AS oid, {cluster} AS cluster "
    "FROM database_identity i, pg_database d WHERE d.datname = current_database()"
)
_CLUSTER = "(SELECT system_identifier FROM pg_control_system())::text"


def namespace_id(stored: str, oid: int, cluster: str | None) -> str:
    """The three parts as 32 hex digits (the same parts, the same digits)."""
    raw = "\0".join((stored, str(oid), cluster or "")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def read_identity(conn: psycopg.Connection[dict[str, Any]], begin: sql.Composable) -> str | None:
    """The namespace id, read in one round trip after ``begin`` (BEGIN and the
    tenant role); None when the database is not migrated yet.  A server that
    does not let the role read its control data costs a second try without it."""
    for cluster in (_CLUSTER, "NULL"):
        query = sql.Composed([begin, sql.SQL("; " + _READ.format(cluster=cluster) + "; COMMIT")])
        try:
            cur = conn.execute(query)
        except psycopg.errors.UndefinedTable:
            conn.execute("ROLLBACK")
            return None
        except psycopg.errors.InsufficientPrivilege:
            conn.execute("ROLLBACK")
            continue
        cur.nextset()
        cur.nextset()
        row = cur.fetchone()
        if row is None:
            return None
        return namespace_id(str(row["id"]), int(row["oid"]), row["cluster"])
    return None
