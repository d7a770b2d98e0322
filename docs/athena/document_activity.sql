-- Who changed document X, and how: every audited action on one document, oldest first
-- (writes, grants, visibility, delete and restore, erasure, purge).
-- Parameters, in order: the org's key (org_key), the document id.
-- Reads are not audited: docs/compliance.md, "The audit trail in Athena".
SELECT "at", actor, action, prev_version, version, request_id, details
FROM audit_log
WHERE org_key = ?
  AND document = ?
ORDER BY seq
