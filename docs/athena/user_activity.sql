-- Everything user Y did: every audited action whose actor is the user's pseudonym,
-- oldest first.
-- Parameters, in order: the org's key (org_key), the user's pseudonym (p-...).
SELECT "at", action, document, prev_version, version, request_id, details
FROM audit_log
WHERE org_key = ?
  AND actor = ?
ORDER BY seq
