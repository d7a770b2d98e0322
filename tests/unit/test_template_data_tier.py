"""template.yaml creates the network and data tier when asked (Create*), or takes
existing ones: what it creates is encrypted, TLS-only and private, the security groups
admit security groups only, and every use picks created-or-given with !If."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_template import (
    ROOT,
    SEARCH_FUNCTIONS,
    _actions,
    _env,
    _function,
    _functions,
    _if,
    _statements,
    _sub,
    _template,
    transformed,  # noqa: F401 - the SAM-transformed template (a fixture)
)

CREATE = ("CreateNetwork", "CreateDatabase", "CreateCache", "CreateSearch", "CreateUserPool")
# what each Create* replaces (given when it is "false")
GIVEN = {
    "CreateNetwork": ("VpcSubnetIds", "VpcSecurityGroupIds"),
    "CreateDatabase": ("DbProxyEndpoint", "DbProxyResourceId", "DbProxyName"),
    "CreateCache": ("RedisUrl",),
    "CreateSearch": ("OpenSearchUrl", "OpenSearchDomainArn"),
    "CreateUserPool": ("CognitoUserPoolArn", "JwtIssuer", "JwtAudience"),
}
DATA_TIER_CONDITIONS = {
    "NetworkOn",
    "DatabaseOn",
    "CacheOn",
    "SearchOn",
    "UserPoolOn",
    "DataKeyOn",
    "FunctionSgOn",
    "SearchAdminRoleOn",
    "EndpointSgOn",
    "VpcEndpointsOn",
    "NatOn",
    "NatPerAzOn",
    "DbReaderOn",  # DatabaseOn and a reader wanted (docs/dr.md)
    "MachineClientOn",  # UserPoolOn and an example machine client wanted (docs/security.md)
}
# the functions that run in the VPC (the deploy hook and the Cognito trigger do not)
VPC_FUNCTIONS = (
    "ApiFunction",
    "MigrateFunction",
    "ProcessUploadFunction",
    "ExpireUploadsFunction",
    "PurgeFunction",
    *SEARCH_FUNCTIONS,
)
DATA_KEY = {"GetAtt": "DataKey.Arn"}


def _resources() -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = _template()["Resources"]
    return resources


def _props(name: str) -> dict[str, Any]:
    props: dict[str, Any] = _resources()[name]["Properties"]
    return props


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in _resources().items() if r["Type"] == kind}


# ---------------------------------------------------------------- parameters, rules


def _rule_value(node: Any, params: dict[str, Any]) -> Any:
    """Evaluates a Rules expression (the functions Rules may use) for given parameters."""
    if isinstance(node, str | int | float):
        return node
    if isinstance(node, list):
        return [_rule_value(n, params) for n in node]
    ((fn, arg),) = node.items()
    if fn == "Ref":
        return params[arg]
    args = _rule_value(arg, params)
    if fn == "Equals":
        return args[0] == args[1]
    if fn == "Not":
        return not args[0]
    if fn == "And":
        return all(args)
    if fn == "Or":
        return any(args)
    if fn == "EachMemberEquals":
        return all(member == args[1] for member in args[0])
    if fn == "Contains":
        return str(args[1]) in [str(v) for v in args[0]]
    raise AssertionError(f"not a Rules function: {fn}")


def _failed_rules(**given: str) -> set[str]:
    """The rules a deploy with these parameter values (the rest: defaults, and an
    alarm address, which every stage but a sandbox needs) fails."""
    given = {"AlarmEmail": "oncall@example.com", **given}
    template = _template()
    params: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        value = str(given.get(name, spec.get("Default", "")))
        params[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
    failed = set()
    for name, rule in template["Rules"].items():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], params):
            continue
        if not all(_rule_value(a["Assert"], params) for a in rule["Assertions"]):
            failed.add(name)
    return failed


EXISTING = {  # the parameters a stack made before the data tier could be created had
    "VpcSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1",
    "VpcSecurityGroupIds": "sg-0123456789abcdef0",
    "DbProxyEndpoint": "docs.proxy-abc.us-east-1.rds.amazonaws.com",
    "DbProxyResourceId": "prx-0123456789abcdef0",
    "DbProxyName": "docs",
    "RedisUrl": "rediss://docs.abc.cache.amazonaws.com:6379/0",
    "CognitoUserPoolArn": "arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_Abc",
    "JwtIssuer": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Abc",
    "JwtAudience": "client",
    "OpenSearchUrl": "https://vpc-docs-abc.us-east-1.es.amazonaws.com",
    "OpenSearchDomainArn": "arn:aws:es:us-east-1:123456789012:domain/docs",
}


def test_the_defaults_create_everything_and_need_no_other_parameter() -> None:
    params = _template()["Parameters"]
    for name in CREATE:
        assert params[name]["Default"] == "true", name
        assert params[name]["AllowedValues"] == ["true", "false"], name
        for given in GIVEN[name]:
            assert params[given]["Default"] == "", given  # sam deploy --guided: Enter
    required = [n for n, p in params.items() if "Default" not in p]
    assert required == []
    assert _failed_rules() == set()  # the defaults pass every rule


def test_the_rules_refuse_both_and_neither() -> None:
    # an existing stack upgraded with its saved parameters stops, instead of creating a
    # second data tier
    assert _failed_rules(**EXISTING) == {
        "NetworkIsCreated",
        "DatabaseIsCreated",
        "CacheIsCreated",
        "SearchIsCreated",
        "UserPoolIsCreated",
    }
    keep = dict.fromkeys(CREATE, "false")
    assert _failed_rules(**EXISTING, **keep) == set()
    # neither created nor given
    assert _failed_rules(**keep) == {
        "NetworkIsGiven",
        "DatabaseIsGiven",
        "CacheIsGiven",
        "SearchIsGiven",
        "UserPoolIsGiven",
    }
    # one part created in an existing network needs that network's VpcId
    mixed = {**EXISTING, **keep, "CreateDatabase": "true"}
    for name in GIVEN["CreateDatabase"]:
        mixed.pop(name)
    assert _failed_rules(**mixed) == {"DataTierInAGivenVpc"}
    assert _failed_rules(**mixed, VpcId="vpc-0123456789abcdef0") == set()
    # a created network takes nothing of an existing one
    assert "NetworkIsCreated" in _failed_rules(VpcId="vpc-0123456789abcdef0")


def test_the_existing_parameters_still_accept_what_they_did() -> None:
    import re

    params = _template()["Parameters"]
    issuer = re.compile(params["JwtIssuer"]["AllowedPattern"])
    assert issuer.fullmatch(EXISTING["JwtIssuer"]) and issuer.fullmatch("")
    url = re.compile(params["OpenSearchUrl"]["AllowedPattern"])
    assert url.fullmatch(EXISTING["OpenSearchUrl"]) and url.fullmatch("")
    assert not url.fullmatch("http://vpc-docs-abc.us-east-1.es.amazonaws.com")
    arn = re.compile(params["OpenSearchDomainArn"]["AllowedPattern"])
    assert arn.fullmatch(EXISTING["OpenSearchDomainArn"]) and arn.fullmatch("")
    assert params["RedisUrl"]["NoEcho"] is True  # may carry a password
    for name in ("DbName", "DbUser", "DbMigrationUser"):  # they go into SQL and secrets
        assert re.fullmatch(params[name]["AllowedPattern"], params[name]["Default"]), name
        assert not re.fullmatch(params[name]["AllowedPattern"], "x'; drop role y; --"), name


def test_every_created_resource_has_a_data_tier_condition() -> None:
    conditions = _template()["Conditions"]
    for name in CREATE:
        assert conditions[name.replace("Create", "") + "On"] == {"Equals": [{"Ref": name}, "true"]}
    created_types = {
        "AWS::EC2::VPC",
        "AWS::EC2::Subnet",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup",
        "AWS::RDS::DBCluster",
        "AWS::RDS::DBInstance",
        "AWS::RDS::DBProxy",
        "AWS::ElastiCache::ServerlessCache",
        "AWS::OpenSearchService::Domain",
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
    }
    for name, resource in _resources().items():
        if resource["Type"] in created_types:
            assert resource.get("Condition") in DATA_TIER_CONDITIONS, name


# ------------------------------------------------------------------------ network


def test_the_created_network_is_private_in_two_azs() -> None:
    """Two AZs for the functions, the database and the cache; a third private subnet
    (local route only) for the search domain's third AZ."""
    resources = _resources()
    assert _props("Vpc")["EnableDnsHostnames"] is True  # private DNS of the endpoints
    subnets = [_props(n) for n in ("PrivateSubnetA", "PrivateSubnetB", "PrivateSubnetC")]
    assert [s["AvailabilityZone"]["Select"][0] for s in subnets] == [0, 1, 2]
    assert all(s["MapPublicIpOnLaunch"] is False for s in subnets)
    # the only way out is a NAT gateway (NatGateways), which only the public subnets'
    # route reaches the internet gateway from; nothing of it exists without NatOn
    for kind in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::Route",
                 "AWS::EC2::EIP"):  # fmt: skip
        assert all(r["Condition"] in ("NatOn", "NatPerAzOn") for r in _of_type(kind).values())
    routes = {n: r["Properties"] for n, r in _of_type("AWS::EC2::Route").items()}
    assert routes["PublicDefaultRoute"]["GatewayId"] == {"Ref": "InternetGateway"}
    assert routes["PrivateDefaultRouteA"]["NatGatewayId"] == {"Ref": "NatGatewayA"}
    assert _if(routes["PrivateDefaultRouteB"]["NatGatewayId"], "NatPerAzOn") == (
        {"Ref": "NatGatewayB"}, {"Ref": "NatGatewayA"})  # fmt: skip
    associations = {
        (p["SubnetId"]["Ref"], p["RouteTableId"]["Ref"])
        for p in (
            r["Properties"] for r in _of_type("AWS::EC2::SubnetRouteTableAssociation").values()
        )
    }
    assert associations == {
        ("PrivateSubnetA", "PrivateRouteTableA"),
        ("PrivateSubnetB", "PrivateRouteTableB"),
        ("PrivateSubnetC", "PrivateRouteTableC"),
        ("PublicSubnetA", "PublicRouteTable"),
        ("PublicSubnetB", "PublicRouteTable"),
    }
    assert _template()["Parameters"]["NatGateways"]["Default"] == "one"  # real-time needs it
    assert resources["VpcFlowLog"]["Properties"]["ResourceId"] == {"Ref": "Vpc"}


def test_the_vpc_endpoints_follow_the_created_vpc() -> None:
    conditions = _template()["Conditions"]
    assert {"Condition": "NetworkOn"} in conditions["VpcEndpointsOn"]["Or"]  # NAT or not
    endpoints = _of_type("AWS::EC2::VPCEndpoint")
    assert set(endpoints) == {
        "S3GatewayEndpoint", "SqsEndpoint", "SecretsManagerEndpoint", "KmsEndpoint",
        "AppConfigDataEndpoint",
    }  # fmt: skip
    for name, endpoint in endpoints.items():
        props = endpoint["Properties"]
        assert endpoint["Condition"] == "VpcEndpointsOn", name
        assert _if(props["VpcId"], "NetworkOn") == ({"Ref": "Vpc"}, {"Ref": "VpcId"}), name
        if props["VpcEndpointType"] == "Gateway":
            created, given = _if(props["RouteTableIds"], "NetworkOn")
            assert created == [{"Ref": "PrivateRouteTableA"}, {"Ref": "PrivateRouteTableB"}]
            assert given == {"Ref": "PrivateRouteTableIds"}
        else:
            assert props["PrivateDnsEnabled"] is True, name
            created, _ = _if(props["SubnetIds"], "NetworkOn")
            assert created == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}], name
            created, given = _if(props["SecurityGroupIds"], "EndpointSgOn")
            assert created == [{"GetAtt": "EndpointSecurityGroup.GroupId"}], name
            assert given == {"Ref": "VpcSecurityGroupIds"}, name


def _ingress_rules() -> list[tuple[str, dict[str, Any]]]:
    """Every ingress rule: inline in a security group, or a SecurityGroupIngress."""
    rules = [
        (name, rule)
        for name, sg in _of_type("AWS::EC2::SecurityGroup").items()
        for rule in sg["Properties"].get("SecurityGroupIngress", [])
    ]
    rules += [
        (p["GroupId"]["GetAtt"].split(".")[0], p)
        for p in (r["Properties"] for r in _of_type("AWS::EC2::SecurityGroupIngress").values())
    ]
    return rules


def test_security_groups_admit_security_groups_only() -> None:
    rules = _ingress_rules()
    assert rules
    admitted: dict[str, set[tuple[str, int, int]]] = {}
    for group, rule in rules:
        assert "CidrIp" not in rule and "CidrIpv6" not in rule, group  # no 0.0.0.0/0
        assert "SourcePrefixListId" not in rule, group
        source = rule["SourceSecurityGroupId"]["GetAtt"].split(".")[0]
        assert rule["IpProtocol"] == "tcp", group
        admitted.setdefault(group, set()).add((source, rule["FromPort"], rule["ToPort"]))
    # only the functions reach the proxy, the cache, the search domain, the endpoints;
    # only the proxy reaches the database
    assert admitted == {
        "ProxySecurityGroup": {("FunctionSecurityGroup", 5432, 5432)},
        "DbSecurityGroup": {("ProxySecurityGroup", 5432, 5432)},
        "CacheSecurityGroup": {("FunctionSecurityGroup", 6379, 6380)},
        "SearchSecurityGroup": {("FunctionSecurityGroup", 443, 443)},
        "EndpointSecurityGroup": {("FunctionSecurityGroup", 443, 443)},
    }


def test_security_groups_send_only_what_they_must() -> None:
    egress = {
        name: sg["Properties"]["SecurityGroupEgress"]
        for name, sg in _of_type("AWS::EC2::SecurityGroup").items()
    }
    # no group keeps CloudFormation's allow-all egress, and none opens every port
    for name, rules in egress.items():
        assert rules, name
        for rule in rules:
            assert rule["IpProtocol"] != "-1", name
    for name in ("DbSecurityGroup", "CacheSecurityGroup", "SearchSecurityGroup"):
        assert [r["CidrIp"] for r in egress[name]] == ["255.255.255.255/32"], name  # none
    assert [(r["FromPort"], r["ToPort"]) for r in egress["FunctionSecurityGroup"]] == [(443, 443)]
    assert egress["ProxySecurityGroup"] == [
        {
            "Description": "PostgreSQL to the database",
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "DestinationSecurityGroupId": {"GetAtt": "DbSecurityGroup.GroupId"},
        }
    ]
    extra = {
        (p["GroupId"]["GetAtt"], p["DestinationSecurityGroupId"]["GetAtt"], p["FromPort"])
        for p in (r["Properties"] for r in _of_type("AWS::EC2::SecurityGroupEgress").values())
    }
    assert extra == {
        ("FunctionSecurityGroup.GroupId", "ProxySecurityGroup.GroupId", 5432),
        ("FunctionSecurityGroup.GroupId", "CacheSecurityGroup.GroupId", 6379),
    }


# ----------------------------------------------------------------------- database


def test_the_database_is_encrypted_private_and_protected() -> None:
    resources = _resources()
    cluster = resources["DbCluster"]
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    props = cluster["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert str(props["EngineVersion"]).split(".")[0] in {"15", "16"}
    assert "ServerlessV2ScalingConfiguration" in props
    assert props["StorageEncrypted"] is True
    assert props["KmsKeyId"] == DATA_KEY
    assert props["EnableIAMDatabaseAuthentication"] is True
    assert props["DeletionProtection"] is True
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props  # never in the template
    assert props["MasterUserSecret"]["KmsKeyId"] == DATA_KEY
    assert props["BackupRetentionPeriod"] >= 7
    assert props["VpcSecurityGroupIds"] == [{"GetAtt": "DbSecurityGroup.GroupId"}]
    group = _props(props["DBClusterParameterGroupName"]["Ref"])
    assert group["Parameters"]["rds.force_ssl"] == "1"  # the proxy's connections too
    writer = _props("DbWriter")
    assert writer["PubliclyAccessible"] is False
    assert writer["DBInstanceClass"] == "db.serverless"
    assert writer["DBClusterIdentifier"] == {"Ref": "DbCluster"}
    assert writer["PerformanceInsightsKMSKeyId"] == DATA_KEY
    key = resources["DataKey"]
    assert key["DeletionPolicy"] == "Retain"  # the final snapshot is encrypted with it
    assert key["Properties"]["EnableKeyRotation"] is True


def test_the_proxy_requires_iam_auth_and_tls_for_both_logins() -> None:
    proxy = _props("DbProxy")
    assert proxy["EngineFamily"] == "POSTGRESQL"
    assert proxy["RequireTLS"] is True
    assert proxy["VpcSecurityGroupIds"] == [{"GetAtt": "ProxySecurityGroup.GroupId"}]
    secrets = []
    for auth in proxy["Auth"]:
        assert auth["IAMAuth"] == "REQUIRED"
        assert auth["AuthScheme"] == "SECRETS"
        secrets.append(auth["SecretArn"]["Ref"])
    assert secrets == ["DbUserSecret", "DbMigrationUserSecret"]
    for secret, login in zip(secrets, ("DbUser", "DbMigrationUser"), strict=True):
        generated = _props(secret)["GenerateSecretString"]
        assert generated["SecretStringTemplate"] == {"Sub": f'{{"username": "${{{login}}}"}}'}
        assert generated["GenerateStringKey"] == "password"
        assert generated["PasswordLength"] >= 32
        assert generated["ExcludePunctuation"] is True  # pasted into the login SQL
        assert _props(secret)["KmsKeyId"] == DATA_KEY
    role = _props("DbProxyRole")["Policies"][0]["PolicyDocument"]["Statement"]
    reads = [s for s in role if s["Action"] == "secretsmanager:GetSecretValue"]
    assert reads[0]["Resource"] == [{"Ref": s} for s in secrets]
    target = _resources()["DbProxyTargetGroup"]
    assert target["Properties"]["DBClusterIdentifiers"] == [{"Ref": "DbCluster"}]
    # docs/deploy.md's connection formula counts on it
    assert target["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"] == 90


# ---------------------------------------------------------------- cache and search


def test_the_cache_is_tls_with_an_rbac_user() -> None:
    cache = _props("Cache")
    assert cache["Engine"] in {"valkey", "redis"}
    assert cache["KmsKeyId"] == DATA_KEY
    assert cache["SecurityGroupIds"] == [{"GetAtt": "CacheSecurityGroup.GroupId"}]
    users = _props(cache["UserGroupId"]["Ref"])["UserIds"]
    by_name = {_props(u["Ref"])["UserName"]: _props(u["Ref"]) for u in users}
    assert set(by_name) == {"default", "docs-app"}
    assert by_name["default"]["AccessString"].startswith("off")  # nobody without a password
    app = by_name["docs-app"]
    assert app["AuthenticationMode"]["Type"] == "password"
    (password,) = app["AuthenticationMode"]["Passwords"]
    assert password == {
        "Sub": "{{resolve:secretsmanager:${CacheUserSecret}:SecretString:password}}"
    }
    assert "-@dangerous" in app["AccessString"]
    # the functions log in as that user, over TLS, at the created endpoint
    url = _if(
        _template()["Globals"]["Function"]["Environment"]["Variables"]["REDIS_URL"], "CacheOn"
    )
    # ... but the password is not in the environment: they read it by ARN
    assert url[0]["Sub"] == "rediss://docs-app@${Cache.Endpoint.Address}:${Cache.Endpoint.Port}/0"
    env = _template()["Globals"]["Function"]["Environment"]["Variables"]
    assert _if(env["DOCS_REDIS_AUTH_SECRET_ARN"], "CacheOn")[0] == {"Ref": "CacheUserSecret"}
    assert "resolve:secretsmanager" not in json.dumps(env)
    policy = _props("CacheSecretReadPolicy")["PolicyDocument"]["Statement"]
    assert policy == [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                       "Resource": {"Ref": "CacheUserSecret"}}]  # fmt: skip
    resources = _template()["Resources"]
    for name, res in resources.items():
        if res["Type"] == "AWS::Serverless::Function" and "InlineCode" not in res["Properties"]:
            attached = json.dumps(res["Properties"].get("Policies", []))
            # every function that reads the settings; the deploy hook reads none
            reads = name not in ("DeployHookFunction", "CanaryFunction")  # Lambda API only
            if name == "AuthorizerFunction":  # reads the settings, but has no cache
                reads = False
                assert (
                    res["Properties"]["Environment"]["Variables"]["DOCS_REDIS_AUTH_SECRET_ARN"]
                    == ""
                )
            assert ("CacheSecretReadPolicy" in attached) == reads, name


def test_the_search_domain_is_encrypted_https_only_and_fine_grained() -> None:
    domain = _props("SearchDomain")
    assert domain["EncryptionAtRestOptions"] == {"Enabled": True, "KmsKeyId": DATA_KEY}
    assert domain["NodeToNodeEncryptionOptions"] == {"Enabled": True}
    endpoint = domain["DomainEndpointOptions"]
    assert endpoint["EnforceHTTPS"] is True
    assert endpoint["TLSSecurityPolicy"].startswith("Policy-Min-TLS-1-2")
    security = domain["AdvancedSecurityOptions"]
    assert security["Enabled"] is True
    assert security["InternalUserDatabaseEnabled"] is False  # IAM only
    master, given = _if(security["MasterUserOptions"]["MasterUserARN"], "SearchAdminRoleOn")
    assert master == {"GetAtt": "SearchAdminRole.Arn"}
    assert given == {"Ref": "SearchMasterUserArn"}
    assert domain["VPCOptions"]["SecurityGroupIds"] == [{"GetAtt": "SearchSecurityGroup.GroupId"}]
    assert domain["ClusterConfig"]["ZoneAwarenessEnabled"] is True  # a replica per shard
    assert {"ES_APPLICATION_LOGS", "AUDIT_LOGS"} <= set(domain["LogPublishingOptions"])
    # the access policy: the search functions' roles, the API's for reads only
    statements = {s["Sid"]: s for s in domain["AccessPolicies"]["Statement"]}
    api = statements["ApiReads"]
    assert api["Principal"]["AWS"] == {"GetAtt": "ApiFunctionRole.Arn"}
    assert set(api["Action"]) == {"es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"}
    writers = statements["SyncAndAdminWrite"]["Principal"]["AWS"]
    for name in SEARCH_FUNCTIONS:
        assert {"GetAtt": f"{name}Role.Arn"} in writers, name
    assert all(s["Effect"] == "Allow" and "Condition" not in s for s in statements.values())
    # the policies name the domain the template names
    name = _sub(domain["DomainName"])
    for statement in statements.values():
        assert _sub(statement["Resource"]).endswith(f":domain/{name}/*")
    for function in ("ApiFunction", *SEARCH_FUNCTIONS):
        (es,) = [s for s in _statements(_template(), function) if "es:ESHttpGet" in _actions(s)]
        created, _ = _if(es["Resource"]["Sub"][1]["DomainArn"], "SearchOn")
        assert _sub(created).endswith(f":domain/{name}"), function


# -------------------------------------------------------------------------- users


def test_the_user_pool_feeds_the_authorizer_and_the_app() -> None:
    template = _template()
    body = template["Resources"]["Api"]["Properties"]["DefinitionBody"]
    # the Lambda authorizer verifies the pool's tokens with the app's settings (Globals:
    # the pool's issuer and JWKS): tests/unit/test_template_authorizer.py
    authorizer = body["components"]["securitySchemes"]["tokenAuthorizer"]
    assert (
        "${AuthorizerFunction.Alias}"
        in authorizer["x-amazon-apigateway-authorizer"]["authorizerUri"]["Sub"]
    )
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert _if(env["DOCS_JWT_JWKS_URL"], "UserPoolOn")[0]["Sub"].endswith(
        "/${UserPool}/.well-known/jwks.json"
    )
    pool = template["Resources"]["UserPool"]
    assert pool["DeletionPolicy"] == "Retain"
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert props["LambdaConfig"]["PreTokenGeneration"] == {"Ref": "TokenClaimsFunction.Alias"}
    client = _props("UserPoolClient")
    assert client["GenerateSecret"] is False
    assert "custom:org" not in client["WriteAttributes"]  # users cannot change their org
    groups = {
        r["Properties"]["GroupName"] for r in _of_type("AWS::Cognito::UserPoolGroup").values()
    }
    from chalicelib.domain.principal import ROLE_RANK

    assert groups == set(ROLE_RANK)


def _token_claims_handler() -> Any:
    namespace: dict[str, Any] = {}
    exec(_props("TokenClaimsFunction")["InlineCode"], namespace)  # our own template's code
    return namespace["handler"]


def test_the_token_claims_trigger_gives_the_app_its_org_and_roles() -> None:
    from chalicelib.api.auth import principal_from_claims

    handler = _token_claims_handler()
    event = {
        "request": {
            "userAttributes": {"sub": "u-1", "email": "a@example.com", "custom:org": "acme"},
            "groupConfiguration": {"groupsToOverride": ["writer", "reader", "someone-elses"]},
        },
        "response": {},
    }
    claims = handler(event, None)["response"]["claimsOverrideDetails"]["claimsToAddOrOverride"]
    assert claims == {"roles": "[writer reader]", "org": "acme"}
    assert all(isinstance(v, str) for v in claims.values())  # V1 triggers take strings
    # what API Gateway's authorizer hands the app: the token's claims, as strings
    principal = principal_from_claims({"sub": "u-1", **claims}, "rid", stringified=True)
    assert (principal.org, set(principal.roles)) == ("acme", {"reader", "writer"})
    # no org, no group: no org claim (the app answers 401), no role
    bare = {"request": {"userAttributes": {"sub": "u-2"}}, "response": {}}
    claims = handler(bare, None)["response"]["claimsOverrideDetails"]["claimsToAddOrOverride"]
    assert claims == {"roles": "[]"}


def test_the_token_claims_trigger_carries_no_data_tier_setting() -> None:
    env = _env(_template(), "TokenClaimsFunction")
    for name in ("REDIS_URL", "DOCS_JWT_ISSUER", "DOCS_JWT_AUDIENCE"):
        assert env[name] == "unused", name  # no cache password; no pool -> trigger -> pool
    assert "VpcConfig" not in _function(_template(), "TokenClaimsFunction")


def test_sam_keeps_the_triggers_condition_on_what_it_generates(
    transformed: dict[str, Any],  # noqa: F811 - the fixture imported above
) -> None:
    resources = transformed["Resources"]
    for name in ("TokenClaimsFunction", "TokenClaimsFunctionRole", "TokenClaimsFunctionAliaslive"):
        assert resources[name]["Condition"] == "UserPoolOn", name


# ------------------------------------------------------- every use: created or given


@pytest.mark.parametrize("name", VPC_FUNCTIONS)
def test_every_function_points_at_the_created_endpoints(name: str) -> None:
    template = _template()
    env = _env(template, name)
    runtime, _ = _if(env["DOCS_DB_RUNTIME_URL"], "DatabaseOn")
    assert "@${DbProxy.Endpoint}:5432/" in runtime["Sub"]
    redis, _ = _if(env["REDIS_URL"], "CacheOn")
    assert "@${Cache.Endpoint.Address}:" in redis["Sub"]
    issuer, _ = _if(env["DOCS_JWT_ISSUER"], "UserPoolOn")
    assert "${UserPool}" in issuer["Sub"]
    assert _if(env["DOCS_JWT_AUDIENCE"], "UserPoolOn")[0] == {"Ref": "UserPoolClient"}
    if "OPENSEARCH_URL" in env:
        search, _ = _if(env["OPENSEARCH_URL"], "SearchOn")
        assert search == {"Sub": "https://${SearchDomain.DomainEndpoint}"}
        assert env["DOCS_OPENSEARCH_SIGV4"] == "true"
    if name == "MigrateFunction":
        migration, _ = _if(env["DATABASE_URL"], "DatabaseOn")
        assert "@${DbProxy.Endpoint}:5432/" in migration["Sub"]
    # rds-db:connect on the created proxy's resource id
    for statement in _statements(template, name):
        if "rds-db:connect" in _actions(statement):
            _, variables = statement["Resource"]["Sub"]
            created, given = _if(variables["ProxyId"], "DatabaseOn")
            assert created == {"Select": [6, {"Split": [":", {"GetAtt": "DbProxy.DBProxyArn"}]}]}
            assert given == {"Ref": "DbProxyResourceId"}
    # in the created subnets with the functions' own security group
    vpc = _function(template, name)["VpcConfig"]
    subnets, _ = _if(vpc["SubnetIds"], "NetworkOn")
    assert subnets == [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}]
    only, mixed = _if(vpc["SecurityGroupIds"], "FunctionSgOnly")
    assert only == [{"Ref": "FunctionSecurityGroup"}]
    with_given, given = _if(mixed, "FunctionSgAndGiven")
    assert "FunctionSecurityGroup" in str(with_given)
    assert given == {"Ref": "VpcSecurityGroupIds"}


def test_alarms_and_dashboard_watch_the_created_resources() -> None:
    template = _template()
    resources = template["Resources"]
    proxy = resources["DbProxyConnectionsAlarm"]
    assert template["Conditions"]["HasDbProxyName"]["Or"][0] == {"Condition": "DatabaseOn"}
    (stat,) = [m for m in proxy["Properties"]["Metrics"] if "MetricStat" in m]
    (dimension,) = stat["MetricStat"]["Metric"]["Dimensions"]
    assert _if(dimension["Value"], "DatabaseOn") == ({"Ref": "DbProxy"}, {"Ref": "DbProxyName"})
    for name in ("SearchClusterRedAlarm", "SearchClusterYellowAlarm", "SearchFreeStorageAlarm",
                 "SearchJvmMemoryPressureAlarm"):  # fmt: skip
        dims = {d["Name"]: d["Value"] for d in resources[name]["Properties"]["Dimensions"]}
        assert _if(dims["DomainName"], "SearchOn")[0] == {"Ref": "SearchDomain"}, name
        assert _if(dims["ClientId"], "SearchOn")[0] == {"Ref": "AWS::AccountId"}, name
    capacity = resources["DbCapacityAlarm"]
    assert capacity["Condition"] == "DatabaseOn"
    assert capacity["Properties"]["Dimensions"] == [
        {"Name": "DBClusterIdentifier", "Value": {"Ref": "DbCluster"}}
    ]
    _, variables = resources["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    assert _if(variables["ProxyName"], "DatabaseOn")[0] == {"Ref": "DbProxy"}
    assert _if(variables["OpenSearchDomainName"], "SearchOn")[0] == {"Ref": "SearchDomain"}
    assert _if(variables["TokenClaimsFunction"], "UserPoolOn")[0] == {"Ref": "TokenClaimsFunction"}
    assert "TokenClaimsFunction" in _functions(template)


def test_the_one_command_deploy_is_documented() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    for needle in (
        "## One command",
        "sam deploy --guided",
        *CREATE,
        "CREATE ROLE docs_migrator",
        "CREATE ROLE docs_app_login",
        "rds-data execute-statement",
        "rolesmapping",
        "admin-create-user",
        "custom:org",
        "confirm",
    ):
        assert needle in deploy, needle
    assert "GRANT rds_iam TO" not in deploy  # the proxy logs in with passwords, not IAM
