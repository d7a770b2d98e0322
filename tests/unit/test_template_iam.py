"""Every function's role grants what its code calls, on the resources it calls it on,
and nothing wider (docs/deploy.md, "Network paths").

Read from the template as CloudFormation gets it after the SAM transform: inline
policies, SAM's generated ones (the DLQ's, an SQS event's) and the managed policies it
attaches, the template's own managed policies, and the standalone policies attached to
a function's role.  The calls are ``functions/manifest.py``'s (checked against the code
in test_template_paths.py).
"""

from __future__ import annotations

from typing import Any

from functions.manifest import CALLS, MANAGED_POLICIES, Call
from tests.unit.template_paths import canon, matches
from tests.unit.test_template import (
    _functions,
    _template,
    transformed,  # noqa: F401 - the SAM-transformed template (a fixture)
)

Statement = dict[str, Any]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(out: dict[str, Any], function: str) -> tuple[list[Statement], list[str]]:
    """(Allow statements, AWS managed policy names) of the function's role."""
    resources = out["Resources"]
    role_name = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
    role = resources[role_name]["Properties"]
    statements: list[Statement] = []
    for entry in role.get("Policies", []):
        # a policy of a condition (SES: NotificationSender set) counts as when it holds
        policy = entry["Fn::If"][1] if "Fn::If" in entry else entry
        statements += _as_list(policy["PolicyDocument"]["Statement"])
    aws_managed: list[str] = []
    for arn in role.get("ManagedPolicyArns", []):
        for ref in canon(arn):
            if ref in resources:  # the template's own managed policy
                doc = resources[ref]["Properties"]["PolicyDocument"]
                statements += _as_list(doc["Statement"])
            else:
                aws_managed.append(ref.split(":policy/", 1)[1])
    for resource in resources.values():
        if (
            resource["Type"] == "AWS::IAM::Policy"
            and {"Ref": role_name} in resource["Properties"]["Roles"]
        ):
            statements += _as_list(resource["Properties"]["PolicyDocument"]["Statement"])
    assert all(s["Effect"] == "Allow" for s in statements)
    return statements, aws_managed


def _conditions(statement: Statement) -> dict[str, str]:
    flat: dict[str, str] = {}
    for values in statement.get("Condition", {}).values():
        flat.update({k: str(v) for k, v in values.items()})
    return flat


def _grants(statement: Statement, call: Call, action: str) -> bool:
    """The statement allows ``action`` of ``call``, on its resource, in its context."""
    if not any(matches(a, action) for a in _as_list(statement["Action"])):
        return False
    if not any(matches(call.resource, r) for r in canon(statement["Resource"])):
        return False
    return _conditions(statement).items() <= dict(call.condition).items()


def _declared(statement: Statement, calls: tuple[Call, ...]) -> list[tuple[str, str]]:
    """(action, resource) pairs of the statement no declared call needs."""
    extra = []
    for action in _as_list(statement["Action"]):
        for resource in canon(statement["Resource"]):
            needed = any(
                action in c.actions
                and matches(c.resource, resource)
                and _conditions(statement).items() <= dict(c.condition).items()
                for c in calls
            )
            if not needed or "*" in action or resource == "*":
                extra.append((action, resource))
    return extra


def _each_function(out: dict[str, Any]) -> list[tuple[str, tuple[Call, ...]]]:
    template = _template()
    return [
        (name, CALLS[template["Resources"][name]["Properties"]["Handler"]])
        for name in _functions(template)
    ]


def test_every_call_is_granted(transformed: dict[str, Any]) -> None:  # noqa: F811
    missing = []
    for name, calls in _each_function(transformed):
        statements, _ = _role_statements(transformed, name)
        for call in calls:
            for action in call.actions:
                if not any(_grants(s, call, action) for s in statements):
                    missing.append((name, action, call.resource))
    assert not missing, "\n".join(map(str, missing))


def test_no_grant_is_wider_than_the_calls(transformed: dict[str, Any]) -> None:  # noqa: F811
    """No action, resource or missing condition beyond what the code calls: no ``*``
    (the AWS managed policies below are the named exceptions)."""
    wider = []
    for name, calls in _each_function(transformed):
        statements, _ = _role_statements(transformed, name)
        wider += [(name, *pair) for s in statements for pair in _declared(s, calls)]
    assert not wider, "\n".join(map(str, wider))


def test_only_the_named_aws_managed_policies(transformed: dict[str, Any]) -> None:  # noqa: F811
    """SAM attaches these (logs, X-Ray, a VPC function's network interfaces); an SQS
    event would add AWSLambdaSQSQueueExecutionRole (receive and delete on every queue),
    which the explicit event source mappings avoid."""
    resources = _template()["Resources"]
    for name, _ in _each_function(transformed):
        _, managed = _role_statements(transformed, name)
        assert set(managed) <= set(MANAGED_POLICIES), (name, managed)
        in_vpc = "VpcConfig" in resources[name]["Properties"]
        assert ("service-role/AWSLambdaVPCAccessExecutionRole" in managed) == in_vpc, name
