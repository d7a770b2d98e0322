"""Search: the request, the query it becomes, its page tokens and its results.
Pure functions; no client, no I/O (the indexed form of a document:
domain/search_index.py).

Tenant isolation lives here, once: every query is a ``bool`` whose ``filter``
starts with ``term: {org: <the verified org>}``, and a document's index id
is ``join_key(org, id)`` (length-prefixed components: injective, so two
(org, id) pairs never share an index entry, whatever characters they hold).

Nothing an org sees depends on another org's documents (docs/search.md,
"Tenant independence"): the text fields use the ``boolean`` similarity (a
match scores its boost, no corpus statistics), ties are broken by
``updated_at`` and ``id``, query syntax that expands against the shared term
dictionary with a limit (fuzzy) is off, and page tokens are bound to the org.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from chalicelib.domain.errors import BadRequest, ValidationFailed
from chalicelib.domain.model import ID_PATTERN
from chalicelib.domain.pagination import NOT_VALID, decode_token, encode_token, page_scope
from chalicelib.domain.timestamps import iso_z
from chalicelib.domain.user_id import user_id_problem
from chalicelib.domain.viewer import Viewer


def _json_integer(value: Any) -> Any:
    """JSON Schema's integer: 5 and 5.0, not "5" or true."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


def _timestamp(value: Any) -> Any:
    """RFC 3339 text only (no epoch numbers coerced into dates)."""
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string")
    return value


def _user_id(value: str) -> str:
    """``filter.owner`` is a user id under the one rule (domain/user_id.py)."""
    problem = user_id_problem(value)
    if problem is not None:
        raise ValueError(f"invalid user id: {problem}")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
Timestamp = Annotated[AwareDatetime | None, BeforeValidator(_timestamp)]

TEXT_FIELDS = ("title^3", "body_text", "content_text")
HIGHLIGHT_FIELDS = ("title", "body_text", "content_text")
# the documented syntax only: no FUZZY (its expansion keeps the top 50 terms of
# the whole index, so other orgs' words could crowd out this org's), no SLOP/NEAR
QUERY_FLAGS = "AND|OR|NOT|PHRASE|PREFIX|PRECEDENCE|WHITESPACE|ESCAPE"


class SearchFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[StrictStr] | None = Field(default=None, max_length=20)
    owner: Annotated[StrictStr, Field(max_length=256), AfterValidator(_user_id)] | None = None
    updated_after: Timestamp = None
    updated_before: Timestamp = None
    # exact match on personal-data metadata fields, through their blind index
    # (service_layer/personal_data.py); other metadata is not indexed
    metadata: dict[StrictStr, StrictStr | StrictBool | JsonInt | float | None] | None = Field(
        default=None,
        max_length=10,
        description="Exact match on personal-data metadata fields (DOCS_PII_FIELDS), through "
        "their blind index: strings trimmed and case-insensitive; other fields are a 422.",
    )


class SearchRequest(BaseModel):
    """``POST /search``.  ``q`` uses ``simple_query_string`` syntax (``+`` and,
    ``|`` or, ``-`` not, ``"phrases"``, ``prefix*``); syntax it cannot parse is
    searched as plain words, never an error."""

    model_config = ConfigDict(extra="forbid")

    q: StrictStr = Field(default="", max_length=1000)
    filter: SearchFilter = Field(default_factory=SearchFilter)
    size: JsonInt = Field(default=20, ge=1, le=100)
    page_token: StrictStr | None = Field(default=None, max_length=2000)
    highlight: StrictBool = True
    # relevance (best first) needs a query; "updated" is newest first
    sort: Literal["relevance", "updated"] | None = None

    @model_validator(mode="after")
    def _sort_default(self) -> SearchRequest:
        if self.sort is None:
            self.sort = "relevance" if self.q.strip() else "updated"
        return self

    def token_scope(self, org: str) -> str:
        """What a page token is bound to: the same org, query, filters and sort."""
        filters = self.filter.model_dump(mode="json")
        return page_scope(org, "POST /search", q=self.q, filter=filters, sort=self.sort)


def parse_search_request(data: Any) -> SearchRequest:
    if not isinstance(data, dict):
        raise ValidationFailed(
            "The search request must be a JSON object.",
            errors=[{"loc": ["body"], "msg": "expected an object", "type": "type_error"}],
        )
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise ValidationFailed("The search request is not valid.", errors=errors) from None


def acl_filter(viewer: Viewer) -> dict[str, Any]:
    """What ``viewer`` (not an admin) may read (domain/access.py): documents not
    private (an index entry without ``visibility`` predates ACLs: open to the
    org), or whose ``readers`` (owner and grantees) name the viewer."""
    return {
        "bool": {
            "should": [
                {"bool": {"must_not": [{"term": {"visibility": "private"}}]}},
                {"term": {"readers": viewer.user}},
            ],
            "minimum_should_match": 1,
        }
    }


def build_query(
    org: str,
    req: SearchRequest,
    search_after: list[Any] | None,
    blind: list[str] | None = None,
    *,
    viewer: Viewer | None,
) -> dict[str, Any]:
    """The OpenSearch request body for one page; ``blind``: the blind-index tokens
    of ``filter.metadata`` (each must match); ``viewer``: whose ACL to apply
    (``None`` or an admin: every document of the org)."""
    filters: list[dict[str, Any]] = [{"term": {"org": org}}]
    if viewer is not None and not viewer.admin:
        filters.append(acl_filter(viewer))
    filters.extend({"term": {"pii": token}} for token in blind or ())
    f = req.filter
    if f.tags:
        filters.extend({"term": {"tags": tag}} for tag in f.tags)  # all of them
    if f.owner:
        filters.append({"term": {"owner": f.owner}})
    if f.updated_after or f.updated_before:
        bounds: dict[str, str] = {}
        if f.updated_after:
            bounds["gt"] = iso_z(f.updated_after)
        if f.updated_before:
            bounds["lt"] = iso_z(f.updated_before)
        filters.append({"range": {"updated_at": bounds}})
    must: list[dict[str, Any]] = []
    if req.q.strip():
        must.append(
            {
                "simple_query_string": {
                    "query": req.q,
                    "fields": list(TEXT_FIELDS),
                    "default_operator": "and",
                    "lenient": True,
                    "flags": QUERY_FLAGS,
                }
            }
        )
    body: dict[str, Any] = {
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
        "size": req.size,
        "track_total_hits": False,  # total: readable documents only (candidates_query)
        "_source": ["id", "title", "version", "updated_at", "tags", "owner"],
        "sort": (
            # scores are small sums of boosts (boolean similarity): ties are
            # common, and broken by recency, then id, never by index internals
            [{"_score": "desc"}, {"updated_at": "desc"}, {"id": "asc"}]
            if req.sort == "relevance"
            else [{"updated_at": "desc"}, {"id": "asc"}]
        ),
    }
    if req.highlight and req.q.strip():
        body["highlight"] = {
            # fragments are HTML-escaped, only the <em> markers are markup:
            # a client may render them as HTML without an injection risk
            "encoder": "html",
            "fields": {name: {"number_of_fragments": 3} for name in HIGHLIGHT_FIELDS},
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
        }
    if search_after is not None:
        body["search_after"] = search_after
    return body


_MAX_SCORE = 1e9  # boolean similarity: a sum of boosts, far below this
_MIN_MILLIS, _MAX_MILLIS = -62135596800000, 253402300799999  # years 1 to 9999


def _score_value(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < _MAX_SCORE
    )


def _millis_value(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and _MIN_MILLIS <= value <= _MAX_MILLIS
    )


def _id_value(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def valid_search_after(sort: str | None, after: Any) -> bool:
    """Exactly the sort values OpenSearch gives the last hit of a page: with
    ``relevance`` ``[score, updated_at millis, id]``, with ``updated``
    ``[updated_at millis, id]``.  Nothing else is ever sent as ``search_after``."""
    if not isinstance(after, list):
        return False
    if sort == "relevance":
        return (
            len(after) == 3
            and _score_value(after[0])
            and _millis_value(after[1])
            and _id_value(after[2])
        )
    return len(after) == 2 and _millis_value(after[0]) and _id_value(after[1])


_NOT_THIS_SEARCH = (
    "page_token belongs to a different search; repeat the same q, filter and "
    "sort with it, or start again without a page_token."
)


def decode_page_token(req: SearchRequest, secret: str, org: str) -> list[Any] | None:
    cursor = decode_token(req.page_token, secret, req.token_scope(org), mismatch=_NOT_THIS_SEARCH)
    if cursor is None:
        return None
    after = cursor.get("a")
    if not valid_search_after(req.sort, after):  # (a token of an older release, say)
        raise BadRequest(NOT_VALID)
    assert isinstance(after, list)
    return after


def encode_page_token(req: SearchRequest, last_sort: list[Any], secret: str, org: str) -> str:
    return encode_token({"a": last_sort}, secret, req.token_scope(org))


# how many matches (in the page's order) a search checks against PostgreSQL to
# count its ``total`` exactly; past it the total is a lower bound ("gte")
TOTAL_CHECKED = 1000


def candidates_query(page: dict[str, Any]) -> dict[str, Any]:
    """The ids of the first ``TOTAL_CHECKED`` (+1, to know whether there are more)
    matches of the search whose page body is ``page``, in the page's order and
    from its start: what ``total`` counts once PostgreSQL has kept the readable."""
    return {
        "query": page["query"],
        "size": TOTAL_CHECKED + 1,
        "track_total_hits": False,
        "_source": ["id"],
        "sort": page["sort"],
    }


def without(page: dict[str, Any], hidden: list[str]) -> dict[str, Any]:
    """``page`` that leaves out ``hidden`` (matches the caller may not read now:
    the index learns of an ACL change a moment after PostgreSQL), so that no hit,
    sort value or page token comes from one."""
    if not hidden:
        return page
    query = page["query"]["bool"]
    return {**page, "query": {"bool": {**query, "must_not": [{"terms": {"id": hidden}}]}}}


def candidate_ids(raw: dict[str, Any]) -> list[str]:
    return [
        str(hit.get("_source", {}).get("id"))
        for hit in raw.get("hits", {}).get("hits", [])
        if hit.get("_source", {}).get("id") is not None
    ]


def shape_results(
    raw: dict[str, Any], req: SearchRequest, secret: str, org: str, *, total: int, exact: bool
) -> dict[str, Any]:
    """The answer to a search: ``total`` counts readable documents only (the caller
    counts them; OpenSearch's own count is never used), ``exact`` tells whether it
    is the whole count (``total_relation: "eq"``) or a lower bound (``"gte"``)."""
    hits = raw.get("hits", {})
    out = []
    for hit in hits.get("hits", []):
        src = hit.get("_source", {})
        item: dict[str, Any] = {
            "id": src.get("id"),
            "title": src.get("title"),
            "score": hit.get("_score"),
            "version": src.get("version"),
            "updated_at": src.get("updated_at"),
        }
        if req.highlight and req.q.strip():
            item["highlight"] = hit.get("highlight", {})
        out.append(item)
    raw_hits = hits.get("hits", [])
    next_token = None
    if len(raw_hits) == req.size and valid_search_after(req.sort, raw_hits[-1].get("sort")):
        next_token = encode_page_token(req, raw_hits[-1]["sort"], secret, org)
    return {
        "hits": out,
        "total": total,
        "total_relation": "eq" if exact else "gte",
        "next_page_token": next_token,
    }
