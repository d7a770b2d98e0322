"""The template's machine clients (docs/security.md, "Machine clients"): the
resource server's scopes are the ones the app maps to roles, the example client
has the client-credentials grant only, and its org reaches the app as a
registration (DOCS_MACHINE_CLIENTS), never as a claim."""

from __future__ import annotations

import re

import pytest

from chalicelib.config import Settings
from chalicelib.domain.principal import SCOPE_ROLES
from tests.unit.test_template import _env, _template


def test_the_resource_servers_scopes_are_the_apps() -> None:
    resources = _template()["Resources"]
    server = resources["ResourceServer"]
    assert server["Condition"] == "UserPoolOn"
    assert server["Properties"]["Identifier"] == Settings().oauth_resource_server
    assert {s["ScopeName"] for s in server["Properties"]["Scopes"]} == set(SCOPE_ROLES)
    assert resources["UserPoolDomain"]["Condition"] == "UserPoolOn"


def test_the_example_machine_client_has_the_client_credentials_grant_only() -> None:
    client = _template()["Resources"]["MachineClient"]
    assert client["Condition"] == "MachineClientOn"
    assert client["DependsOn"] == "ResourceServer"
    props = client["Properties"]
    assert props["GenerateSecret"] is True
    assert props["AllowedOAuthFlows"] == ["client_credentials"]
    assert props["AllowedOAuthFlowsUserPoolClient"] is True
    server = Settings().oauth_resource_server
    assert {s.split("/")[0] for s in props["AllowedOAuthScopes"]} == {server}
    assert all(s.split("/")[1] in SCOPE_ROLES for s in props["AllowedOAuthScopes"])
    # no user sign-in through this client
    assert "ALLOW_USER_PASSWORD_AUTH" not in props["ExplicitAuthFlows"]
    assert "ALLOW_USER_SRP_AUTH" not in props["ExplicitAuthFlows"]


def test_the_registration_reaches_the_app_and_only_the_app_setting_holds_it() -> None:
    template = _template()
    env = _env(template, "ApiFunction")
    created, given = env["DOCS_MACHINE_CLIENTS"]["If"][1:]
    assert env["DOCS_MACHINE_CLIENTS"]["If"][0] == "MachineClientOn"
    assert created == {"Sub": "${MachineClient}=${MachineClientOrg},${MachineClients}"}
    assert given == {"Ref": "MachineClients"}
    # the Cognito trigger must not name the pool's own clients (a circular dependency)
    assert _env(template, "TokenClaimsFunction")["DOCS_MACHINE_CLIENTS"] == ""


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("3n4b5c6d7e8f9g0h1i2j3k4l5m=acme", True),
        ("a=acme,b=Other Org", True),
        ("a", False),
        ("a=", False),
        ("=acme", False),
        ("a=acme,", False),
        ("a b=acme", False),
    ],
)
def test_the_machine_clients_parameter_takes_pairs(value: str, ok: bool) -> None:
    pattern = _template()["Parameters"]["MachineClients"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is ok
    if ok:  # and the app reads what the parameter lets through
        assert len(Settings(machine_clients=value).machine_clients) == value.count("=")
