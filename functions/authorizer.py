"""The API's Lambda TOKEN authorizer: the bearer token verified with the app's own code.

API Gateway's Cognito user-pool authorizer takes only ID tokens on methods without
OAuth scopes, so a machine client's access token (client credentials, docs/security.md
"Machine clients") would get a 401 at the gateway.  This authorizer (template.yaml
``AuthorizerFunction``, the ``tokenAuthorizer`` scheme on every API path) verifies
the token with chalicelib/api/auth.py (``verify_token``: the pool's JWKS fetched and
cached per process by chalicelib/api/oidc.py, issuer, audience, times) and
``principal_for`` (a user, or a registered machine client), and answers:

* an IAM policy allowing ``execute-api:Invoke`` on the whole stage
  (``<api>/<stage>/*/*``): API Gateway caches the answer per token for
  ``authorizerResultTtlInSeconds`` across every method, so a policy naming one
  method would deny the next one from the cache;
* a flat context with the verified principal (``sub``, ``org``, ``roles``
  comma-joined, ``machine``) and what the app checks again (``iss``, ``aud``,
  ``client_id``, ``token_use``, ``exp``): ``chalicelib.api.auth.principal_from_context``.
  The cache may outlive the token, so the app refuses a context whose ``exp`` passed.

An invalid or expired token raises ``Exception("Unauthorized")``, which API Gateway
answers with its 401 (the ``UNAUTHORIZED`` gateway response, problem+json); a machine
client with none of the API's scopes gets a Deny (403, ``ACCESS_DENIED``); an issuer
whose keys cannot be fetched is a failure of the authorizer (a 500, not a 401 that
would be cached).  It runs outside the VPC (the JWKS is on the internet; no database,
no cache, no search): it imports the token code and Powertools, nothing else.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chalicelib.api.auth import principal_for, verify_token
from chalicelib.config import get_settings
from chalicelib.domain.errors import DependencyUnavailable, Forbidden, Unauthorized
from chalicelib.domain.principal import Principal
from chalicelib.observability import count, lambda_handler, logger, per_version


class AuthorizerUnavailable(RuntimeError):
    """The token could not be checked (the issuer's keys are out of reach): API
    Gateway answers 500, and caches nothing."""


def stage_arn(method_arn: str) -> str:
    """``arn:...:execute-api:<region>:<account>:<api>/<stage>/*/*`` of a method's ARN."""
    prefix, _, rest = method_arn.partition(":execute-api:")
    parts = rest.split("/")
    if not prefix or len(parts) < 2 or not parts[0] or not parts[1]:
        raise ValueError("not an execute-api method ARN")
    return f"{prefix}:execute-api:{parts[0]}/{parts[1]}/*/*"


def _aud(raw: Any) -> str:
    """``aud`` as a context value: one string, or a list as ``"[a b]"`` (what the
    app's ``check_authorizer_claims`` reads)."""
    if isinstance(raw, list):
        return "[" + " ".join(a for a in raw if isinstance(a, str)) + "]"
    return raw if isinstance(raw, str) else ""


def context_of(claims: dict[str, Any], who: Principal) -> dict[str, str]:
    """The verified principal, flat and as strings (API Gateway passes context
    values on as strings)."""
    return {
        "sub": who.sub,
        "org": who.org,
        "roles": ",".join(sorted(who.roles)),
        "machine": "true" if who.machine else "false",
        "iss": str(claims["iss"]),
        "aud": _aud(claims.get("aud")),
        "client_id": str(claims.get("client_id") or ""),
        "token_use": str(claims.get("token_use") or ""),
        "exp": str(int(claims["exp"])),
    }


def _policy(principal_id: str, effect: str, resource: str) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


def _refuse(reason: str) -> Exception:
    """API Gateway's 401: the exact message ``Unauthorized``.  Lambda counts the raise
    as a function error, so refusals are counted apart (``AuthorizerRejected``) and the
    errors alarms subtract them (template.yaml ``AuthorizerFunctionErrorsAlarm``)."""
    count("AuthorizerRejected")
    logger.info("token refused", extra={"reason": reason})
    return Exception("Unauthorized")  # the exact text API Gateway reads


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    per_version()  # the deploy's rollback alarm reads the new version's refusals
    settings = get_settings()
    resource = stage_arn(str(event.get("methodArn") or ""))
    scheme, _, token = str(event.get("authorizationToken") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refuse("not a bearer token")
    try:
        claims = verify_token(token.strip(), settings)
        who = principal_for(claims, settings, None)
    except Unauthorized as exc:
        raise _refuse(exc.detail) from None
    except Forbidden as exc:  # a machine client with none of the API's scopes: a 403
        logger.info("token denied", extra={"reason": exc.detail})
        return _policy("forbidden", "Deny", resource)
    except DependencyUnavailable:
        logger.error("the issuer's signing keys are out of reach")
        raise AuthorizerUnavailable("the token issuer's keys cannot be fetched") from None
    answer = _policy(who.sub, "Allow", resource)
    answer["context"] = context_of(claims, who)
    logger.info("token allowed", extra={"machine": who.machine})
    return answer
