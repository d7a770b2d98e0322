"""One route of the API and its contract (the table of them: ``routes.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalice.app import Response

from chalicelib.api import parameters as p

Body = str | dict[str, Any]


@dataclass(frozen=True)
class Route:
    """One route: where it is, what answers it, and its contract."""

    method: str  # upper case, as Chalice and API Gateway spell it
    path: str
    view: Callable[..., Response]  # of a ``Call`` and the path parameters; of nothing if public
    summary: str
    ok: int = 200  # the success status
    response: str | None = None  # the success body's component schema
    parameters: tuple[p.Parameter, ...] = ()
    # a component schema (sent as application/json) or the whole OpenAPI requestBody
    body: Body | None = None
    errors: tuple[int, ...] = ()  # problem statuses (429 and 503 added unless public)
    public: bool = False  # no token, no rate limit
    also: tuple[tuple[int, str], ...] = ()  # other successes: (status, description)
    description: str | None = None
    # the success response's media types besides application/json
    media: tuple[tuple[str, dict[str, Any]], ...] = ()
