-- Grants changed in a period: grants given, changed or revoked, and visibility changes,
-- oldest first.
-- Parameters, in order: the org's key (org_key), the first and the last day (UTC,
-- yyyy/MM/dd, both included).
SELECT "at", actor, document, action,
       json_extract_scalar(details, '$.grantee') AS grantee,
       json_extract_scalar(details, '$.role') AS granted_role,
       json_extract_scalar(details, '$.previous_role') AS previous_role,
       json_extract_scalar(details, '$.from') AS visibility_from,
       json_extract_scalar(details, '$.to') AS visibility_to,
       request_id
FROM audit_log
WHERE org_key = ?
  AND day BETWEEN ? AND ?
  AND action IN ('grant.put', 'grant.delete', 'visibility.change')
ORDER BY seq
