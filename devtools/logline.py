"""One JSON log line on stdout, as every process of the local stack writes them:
``{"ts", "level", "msg", ...fields}``, with credentials redacted.  When stdout's
reader went away the line is lost, never the process (no traceback either)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from chalicelib.redaction import redact


def log_line(msg: str, **fields: Any) -> None:
    """``level`` among the fields sets the line's level (INFO)."""
    level = str(fields.pop("level", "INFO"))
    line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level}
    try:
        sys.stdout.write(json.dumps(redact({**line, "msg": msg, **fields})) + "\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
