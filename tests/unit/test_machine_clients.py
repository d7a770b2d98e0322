"""Machine clients (docs/security.md, "Machine clients"): scopes to roles, the org
from the registration only, and the local CLI that mints their tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from chalicelib.api.auth import authenticate, mint_machine_token, mint_token, verify_token
from chalicelib.config import Settings
from chalicelib.domain.errors import Forbidden, Unauthorized
from chalicelib.domain.principal import roles_for_scopes
from devtools import cli, machine_clients

SECRET = "m" * 48
SETTINGS = Settings(jwt_secret=SECRET, machine_clients=("bot-a=org-a", "bot-b=org-b"))


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "bot-a", "client_id": "bot-a", "token_use": "access", "scope": "docs/read",
            "iss": "docs-local", "iat": now, "exp": now + 300, **extra}  # fmt: skip


def token(**extra: Any) -> str:
    return jwt.encode(claims(**extra), SECRET, algorithm="HS256")


def who(raw: str, settings: Settings = SETTINGS) -> Any:
    return authenticate({"authorization": f"Bearer {raw}"}, {}, settings, "rid")


@pytest.mark.parametrize(
    ("scopes", "roles"),
    [
        (["docs/read"], {"reader"}),
        (["docs/write"], {"writer"}),
        (["docs/read", "docs/write"], {"writer"}),  # the highest wins
        (["docs/admin", "docs/read"], {"admin"}),
        (["docs/read", "other/admin", "docs/superuser"], {"reader"}),  # unknown: ignored
        (["other/admin", "admin", "docs/", "docsx/admin", "docs/admin/x"], set()),
        ([], set()),
    ],
)
def test_scopes_map_to_the_highest_role(scopes: list[str], roles: set[str]) -> None:
    assert roles_for_scopes(scopes, "docs") == roles


def test_the_resource_server_may_be_a_url() -> None:
    server = "https://docs.example/api"
    assert roles_for_scopes([f"{server}/write"], server) == {"writer"}
    assert roles_for_scopes(["docs/write"], server) == set()


def test_a_registered_client_acts_in_its_registered_org_with_its_scopes_role() -> None:
    p = who(token(scope="docs/read docs/write"))
    assert (p.sub, p.org, p.roles, p.machine) == ("bot-a", "org-a", {"writer"}, True)
    assert who(token(sub="bot-b", client_id="bot-b")).org == "org-b"


def test_the_org_never_comes_from_the_token() -> None:
    with pytest.raises(Unauthorized, match="org comes from its registration"):
        who(token(org="org-b"))  # a claim naming another org is refused, not obeyed
    assert who(token(org="org-a")).org == "org-a"  # the registered one is harmless
    # roles are not read for machine clients: scopes only
    assert who(token(roles=["admin"])).roles == {"reader"}


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"client_id": "bot-z", "sub": "bot-z"}, "not registered"),
        ({"sub": "bot-b"}, "'sub' must be its 'client_id'"),
        ({"scope": ["docs/admin"]}, "space-separated string"),
        ({"client_id": "a/b", "sub": "a/b"}, "not a usable id"),
        ({"client_id": 7}, "'client_id' claim must be"),
    ],
)
def test_refused_machine_tokens(extra: dict[str, Any], match: str) -> None:
    with pytest.raises(Unauthorized, match=match):
        who(token(**extra))


def test_a_token_with_none_of_the_apis_scopes_is_forbidden() -> None:
    for scope in ("", "openid email", "other/admin"):
        with pytest.raises(Forbidden, match="docs/read, docs/write, docs/admin"):
            who(token(scope=scope))


def test_user_tokens_still_need_their_audience() -> None:
    now = int(time.time())
    base = {"sub": "alice", "org": "acme", "roles": ["reader"], "iss": "docs-local",
            "iat": now, "exp": now + 300}  # fmt: skip
    with pytest.raises(Unauthorized, match="lacks a required claim"):
        who(jwt.encode(base, SECRET, algorithm="HS256"))
    for aud in ("other-api", ["other-api"], [1]):
        with pytest.raises(Unauthorized, match="not meant for this API"):
            who(jwt.encode({**base, "aud": aud}, SECRET, algorithm="HS256"))
    assert who(jwt.encode({**base, "aud": ["x", "docs-api"]}, SECRET, algorithm="HS256")).org == (
        "acme"
    )
    # an access token of the users' own app client is a user's token: org claim, no machine
    user_access = {**base, "aud": "docs-api", "token_use": "access", "client_id": "docs-api"}
    p = who(jwt.encode(user_access, SECRET, algorithm="HS256"))
    assert (p.org, p.machine) == ("acme", False)
    assert not who(mint_token(SETTINGS, org="acme", sub="alice", roles=["reader"])).machine


def test_the_authorizers_claims_of_a_machine_client() -> None:
    settings = SETTINGS.model_copy(update={"trust_authorizer_claims": True})
    context = {"authorizer": {"claims": {**claims(scope="docs/write"), "exp": "1"}}}
    p = authenticate({}, context, settings, "rid")
    assert (p.sub, p.org, p.roles, p.machine) == ("bot-a", "org-a", {"writer"}, True)
    for bad in ({"client_id": "bot-z", "sub": "bot-z"}, {"org": "org-b"}, {"iss": "elsewhere"},
                {"sub": "3f1c-user-uuid"}, {"sub": None}):  # fmt: skip
        context = {"authorizer": {"claims": {**claims(), **bad}}}
        with pytest.raises(Unauthorized):
            authenticate({}, context, settings, "rid")


def test_registrations_from_a_file_are_re_read_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    settings = Settings(jwt_secret=SECRET, machine_clients_file=str(path))
    with pytest.raises(Unauthorized, match="not registered"):
        who(token(), settings)  # no file yet
    assert machine_clients.register("bot-a", "org-a", path)
    assert who(token(), settings).org == "org-a"
    path.write_text(json.dumps({"clients": {"bot-a": {"org": "org-c"}}}))
    assert who(token(), settings).org == "org-c"  # the operator moved it
    path.write_text(json.dumps({"clients": {"bot-a": {"org": "org\u0000c"}}}))
    with pytest.raises(Unauthorized, match="not registered"):
        who(token(), settings)  # an org no user token could carry either
    path.write_text("{not json")
    with pytest.raises(Unauthorized, match="not registered"):
        who(token(), settings)  # a broken file registers nobody


def test_a_registration_setting_must_be_pairs() -> None:
    assert Settings(machine_clients="a=x, b = y ,").machine_clients == ("a=x", "b = y")
    for bad in ("a", "=x", "a="):
        with pytest.raises(ValidationError, match="client_id=org"):
            Settings(machine_clients=bad)


def test_the_cli_registers_the_client_then_mints_a_cognito_shaped_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "machine-clients.json"
    monkeypatch.setenv("DOCS_JWT_SECRET", SECRET)
    monkeypatch.setenv("DOCS_MACHINE_CLIENTS_FILE", str(path))
    args = ["token", "--client", "sync-bot", "--org", "acme", "--scopes", "docs/read docs/write"]
    assert cli.main(args) == 0
    raw = capsys.readouterr().out.strip()
    minted = verify_token(raw, Settings(jwt_secret=SECRET))
    assert minted["token_use"] == "access" and minted["scope"] == "docs/read docs/write"
    assert minted["client_id"] == minted["sub"] == "sync-bot"
    assert "org" not in minted and "aud" not in minted and "roles" not in minted
    assert json.loads(path.read_text())["clients"]["sync-bot"]["org"] == "acme"
    p = who(raw, Settings(jwt_secret=SECRET, machine_clients_file=str(path)))
    assert (p.org, p.roles) == ("acme", {"writer"})
    # a client is bound to one org: another --org is refused, the registration kept
    assert cli.main([*args[:4], "other", *args[5:]]) == 2
    assert "registered for org 'acme'" in capsys.readouterr().err
    assert json.loads(path.read_text())["clients"]["sync-bot"]["org"] == "acme"
    assert cli.main(["token", "--client", "x", "--org", "acme", "--scopes", "openid"]) == 2
    assert cli.main(["token", "--org", "acme"]) == 2  # neither --sub nor --client


def test_mint_machine_token_needs_the_dev_secret() -> None:
    with pytest.raises(RuntimeError):
        mint_machine_token(Settings(jwt_secret=None), client_id="x", scopes=["docs/read"])
