-- Exports and erasures in a period: personal-data exports requested, ready or failed,
-- and erasures (one row per erasure, one per document it reassigned or deleted),
-- oldest first.
-- Parameters, in order: the org's key (org_key), the first and the last day (UTC,
-- yyyy/MM/dd, both included).
SELECT "at", actor, action, document,
       json_extract_scalar(details, '$.job') AS export_job,
       json_extract_scalar(details, '$.error') AS export_error,
       json_extract_scalar(details, '$.subject') AS erased_subject,
       request_id
FROM audit_log
WHERE org_key = ?
  AND day BETWEEN ? AND ?
  AND (action LIKE 'export-%' OR action LIKE 'erasure%')
ORDER BY seq
