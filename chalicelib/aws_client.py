"""One boto3 client per process, made on first use: the SDK's import and set-up stay
off the cold start of functions that never call it, and threads racing for the
first call still share one client."""

from __future__ import annotations

import threading
from typing import Any


class LazyClient:
    """``boto3.client(service, **options)`` on the first ``get()``, or ``client`` when
    one is given (tests pass a fake).  ``config`` holds botocore ``Config`` keywords."""

    def __init__(
        self,
        service: str,
        *,
        client: Any = None,
        config: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.service = service
        self.options = options
        self.config = config or {}
        self._client = client
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    make: Any = boto3.client  # the service is a parameter, not a literal
                    self._client = make(self.service, config=Config(**self.config), **self.options)
        return self._client
