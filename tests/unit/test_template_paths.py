"""Every function can reach what it calls (docs/deploy.md, "Network paths").

``functions/manifest.py`` declares, per handler, the services its code calls; the
first test checks that declaration against the code (what the handler's module and
the composition-root members it uses import), the others check each call has a path
out of the function as the template deploys it: a VPC endpoint of the right kind
(gateway for S3, interface with private DNS in the function's subnets and a security
group admitting it on 443), a NAT route in every subnet of the function, the
security groups of a service inside the VPC, or no VPC at all.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest

from functions.manifest import CALLS
from tests.unit.template_paths import (
    NOT_NETWORK,
    Deployment,
    adapter_services,
    reached_modules,
)
from tests.unit.test_template import _env, _functions, _settings_of
from tests.unit.test_template import _template as _read_template

_template = cache(_read_template)  # read once; nothing here changes it

# a service the code reaches is called only when the function's settings say so
GATES = {
    "sqs": lambda s: s.search_nudge == "sqs" or bool(s.realtime_nudge_queue_url),
    "secretsmanager": lambda s: bool(
        s.page_token_secret_arn or s.redis_auth_secret_arn or s.pii_blind_key_arn
    ),
    "execute-api": lambda s: bool(s.realtime_endpoint_url),
    "jwks": lambda s: not s.trust_authorizer_claims and bool(s.jwt_jwks_url),
    "es": lambda s: bool(s.opensearch_url),
    "ses": lambda s: bool(s.notify_sender),
}
REALTIME_OUT = {
    ("RealtimeFunction", "jwks"),
    ("RealtimeFunction", "execute-api"),
    ("RealtimeFanOutFunction", "execute-api"),
    ("WebhookDeliverFunction", "webhooks"),  # receivers are on the internet
}


def _handler(template: dict[str, Any], name: str) -> str:
    return str(template["Resources"][name]["Properties"]["Handler"])


def _unreachable(deployment: Deployment) -> set[tuple[str, str]]:
    missing = set()
    for name in _functions(deployment.t):
        if name not in deployment.resources:
            continue
        for call in CALLS[_handler(deployment.t, name)]:
            if deployment.path(name, call) is None:
                missing.add((name, call.service))
    return missing


def test_every_function_in_the_template_is_declared() -> None:
    template = _template()
    assert {_handler(template, n) for n in _functions(template)} == set(CALLS)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in _functions(_template())
        if "InlineCode" not in _template()["Resources"][n]["Properties"]
    ],
)
def test_the_declaration_is_what_the_code_calls(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The services the handler can reach (under the function's own settings) are the
    declared ones: no call is undeclared, none declared is dead."""
    template = _template()
    handler = _handler(template, name)
    reached = reached_modules(handler)
    settings = _settings_of(template, name, monkeypatch)
    services = adapter_services(reached)
    derived = {s for s in services if GATES.get(s, lambda _: True)(settings)}
    calls = [c for c in CALLS[handler] if c.via not in NOT_NETWORK]
    assert {c.service for c in calls} == derived, (name, sorted(services))
    for call in calls:
        module = handler.rpartition(".")[0]
        assert call.via in services.values() or (
            call.via == module and f"boto3:{call.service}" in reached
        ), (name, call)
    if "chalicelib.adapters.pii" in reached:
        # a deployment's personal-data fields are opened wherever the code meets them
        api = _env(template, "ApiFunction")
        env = _env(template, name)
        for key in ("DOCS_PII_FIELDS", "DOCS_PII_KMS_KEY_ID"):
            assert env.get(key) == api[key], (name, key)


def test_every_call_has_a_network_path() -> None:
    assert _unreachable(Deployment(_template())) == set()


def test_with_a_nat_gateway_per_az_every_call_has_a_path_in_its_own_az() -> None:
    deployment = Deployment(_template(), NatGateways="per-az")
    assert _unreachable(deployment) == set()
    routes = deployment.of_type("AWS::EC2::Route")
    assert routes["PrivateDefaultRouteB"]["NatGatewayId"] == {"Ref": "NatGatewayB"}
    nat_b = deployment.props("NatGatewayB")
    assert (
        deployment.props(nat_b["SubnetId"]["Ref"])["AvailabilityZone"]
        == (deployment.props("PrivateSubnetB")["AvailabilityZone"])
    )


def test_without_a_nat_gateway_only_real_time_and_share_mail_lose_their_way_out() -> None:
    """NatGateways=none is a choice with two consequences, and docs/deploy.md says them
    (a rule refuses it with a NotificationSender)."""
    assert _unreachable(Deployment(_template(), NatGateways="none")) == REALTIME_OUT | {
        ("NotifyFunction", "ses")
    }


def test_an_execute_api_endpoint_would_cut_the_management_api_off() -> None:
    """With an execute-api interface endpoint and private DNS in the VPC, the
    management API's name resolves to the endpoint, which serves private REST APIs
    only: the posts fail even with a NAT gateway (docs/deploy.md cites AWS on it)."""
    template = copy.deepcopy(_template())
    sqs = template["Resources"]["SqsEndpoint"]
    template["Resources"]["ExecuteApiEndpoint"] = {
        **sqs,
        "Properties": {
            **sqs["Properties"],
            "ServiceName": {"Sub": "com.amazonaws.${AWS::Region}.execute-api"},
        },
    }
    cut = {(n, s) for n, s in REALTIME_OUT if s == "execute-api"}
    assert _unreachable(Deployment(template)) == cut


def test_functions_outside_the_vpc_call_nothing_inside_it() -> None:
    deployment = Deployment(_template())
    outside = [
        n
        for n in _functions(deployment.t)
        if n in deployment.resources and not deployment.vpc_of(n)[0]
    ]
    assert set(outside) == {
        "DeployHookFunction",
        "CanaryFunction",
        "TokenClaimsFunction",
        "AuthorizerFunction",  # the issuer's public JWKS only (docs/security.md)
    }
