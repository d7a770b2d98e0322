"""Posting to WebSocket connections through API Gateway's management API
(``apigatewaymanagementapi``): the ``Poster`` of the fan-out in AWS.

boto3 is imported on first use (cold starts of handlers that never post stay
short).  Errors are mapped once, here: ``GoneException`` (the client went
away) is ``gone``, and the fan-out forgets the connection; throttling
(``LimitExceededException``, HTTP 429) is ``throttled``, which the fan-out
retries with backoff; anything else is ``error`` (retried, then the
connection is closed so the client reconnects and resumes from its cursor).
Nothing here raises for one connection's trouble.
"""

from __future__ import annotations

from typing import Any

from chalicelib.aws_client import LazyClient
from chalicelib.domain.realtime import CLOSE_GIVE_UP, PostResult
from chalicelib.observability import count, logger, subsegment

_THROTTLED = {"LimitExceededException", "ThrottlingException", "TooManyRequestsException"}


class ApiGatewayPoster:
    def __init__(
        self, endpoint_url: str, region: str, *, client: Any = None, timeout_s: float = 2.0
    ) -> None:
        if not endpoint_url:
            raise ValueError("the WebSocket API's management endpoint is not configured "
                             "(DOCS_REALTIME_ENDPOINT_URL)")  # fmt: skip
        self.endpoint_url = endpoint_url
        self.region = region
        self.timeout_s = timeout_s
        self._api = LazyClient(
            "apigatewaymanagementapi",
            client=client,
            endpoint_url=endpoint_url,
            region_name=region,
            config={
                "connect_timeout": 1,
                "read_timeout": timeout_s,
                "retries": {"max_attempts": 1, "mode": "standard"},
                "max_pool_connections": 32,
            },
        )

    @property
    def client(self) -> Any:
        return self._api.get()

    def post(self, connection_id: str, data: str) -> PostResult:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with subsegment("apigw.post_to_connection"):
                self.client.post_to_connection(ConnectionId=connection_id, Data=data.encode())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "GoneException" or status == 410:
                return "gone"
            if code in _THROTTLED or status == 429:
                return "throttled"
            logger.warning("post_to_connection failed", connection=connection_id, code=code)
            return "error"
        except BotoCoreError as exc:
            logger.warning("post_to_connection failed", connection=connection_id,
                           error=type(exc).__name__)  # fmt: skip
            return "error"
        return "ok"

    def owns(self, connection_id: str) -> bool:
        return True  # API Gateway holds every connection of the API

    def close(
        self, connection_id: str, code: int = CLOSE_GIVE_UP, reason: str = "closed by the server"
    ) -> None:
        """``delete_connection`` (API Gateway chooses the close code; the fan-out
        posted a ``close`` frame with ``code`` and ``reason`` first).  A failure
        other than a gone connection leaves a client that receives nothing and
        is not told: it is counted (``RealtimeCloseFailed``, alarmed)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with subsegment("apigw.delete_connection"):
                self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            error = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error == "GoneException" or status in (404, 410):
                return  # gone already
            logger.warning("delete_connection failed", connection=connection_id, code=error)
            count("RealtimeCloseFailed")
        except BotoCoreError as exc:
            logger.warning("delete_connection failed", connection=connection_id,
                           error=type(exc).__name__)  # fmt: skip
            count("RealtimeCloseFailed")
