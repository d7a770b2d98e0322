"""Reading template.yaml as a deploy would resolve it, and a handler's code as it can run:
the helpers of test_template_paths.py and test_template_iam.py.

- ``Deployment``: Conditions evaluated for a set of parameters (the defaults unless
  given), ``!If`` resolved, and the network questions: a function's subnets and
  security groups, routes, endpoints, and whether a call has a path.
- ``reached_modules``: the modules a handler can reach, statically: its module's
  imports and the module functions it calls, the composition root's members it uses
  (``bootstrap.container().X``) with what those members import and use in turn.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from functools import cache
from typing import Any

from functions.manifest import ADAPTERS, BY_S3, PLATFORM, Call
from tests.unit.test_template import ROOT

IN_VPC = {
    "rds": ("ProxySecurityGroup", 5432),
    "elasticache": ("CacheSecurityGroup", 6379),
    "es": ("SearchSecurityGroup", 443),
}
GATEWAY = {"s3", "dynamodb"}
# the management API, a public host and the SES API (its one endpoint, email-smtp,
# serves SMTP): NAT only
NO_ENDPOINT = {"execute-api", "jwks", "ses", "webhooks"}  # + webhook receivers
NOT_NETWORK = {PLATFORM, BY_S3}


def canon(node: Any) -> list[str]:
    """A policy Resource (or a reference) as text, each ``!If`` branch one entry."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [c for n in node for c in canon(n)]
    (key, value), *_ = node.items()
    key = key.removeprefix("Fn::")
    if key == "Ref":
        return [] if value == "AWS::NoValue" else [str(value)]
    if key == "GetAtt":
        return [value if isinstance(value, str) else ".".join(value)]
    if key == "Sub":
        return [value if isinstance(value, str) else value[0]]
    if key == "If":
        return canon(value[1]) + canon(value[2])
    raise AssertionError(f"cannot read {node!r}")


class Deployment:
    """template.yaml with its Conditions evaluated for ``overrides`` of the defaults."""

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.t = template
        self.params = {n: str(p.get("Default", "")) for n, p in template["Parameters"].items()}
        self.params.update(overrides)
        self.conds: dict[str, bool] = {}
        for name in template["Conditions"]:
            self.condition(name)
        self.resources = {
            n: r
            for n, r in template["Resources"].items()
            if self.conds.get(r.get("Condition", ""), True)
        }

    def condition(self, name: str) -> bool:
        if name not in self.conds:
            self.conds[name] = bool(self._eval(self.t["Conditions"][name]))
        return self.conds[name]

    def _eval(self, node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        (key, value), *_ = node.items()
        if key == "Equals":
            return self._eval(value[0]) == self._eval(value[1])
        if key == "Not":
            return not self._eval(value[0])
        if key == "And":
            return all(self._eval(v) for v in value)
        if key == "Or":
            return any(self._eval(v) for v in value)
        if key == "Condition":
            return self.condition(value)
        if key == "Ref":
            return self.params[value]
        if key == "Join":
            return value[0].join(self.params[value[1]["Ref"]].split(","))
        raise AssertionError(f"cannot evaluate {node!r}")

    def resolve(self, node: Any) -> Any:
        """``node`` with every ``!If`` decided and ``AWS::NoValue`` dropped (None)."""
        if isinstance(node, list):
            return [v for v in (self.resolve(n) for n in node) if v is not None]
        if isinstance(node, dict):
            if set(node) == {"If"}:
                name, yes, no = node["If"]
                return self.resolve(yes if self.condition(name) else no)
            if node == {"Ref": "AWS::NoValue"}:
                return None
            return {k: self.resolve(v) for k, v in node.items()}
        return node

    def props(self, name: str) -> dict[str, Any]:
        props: dict[str, Any] = self.resolve(self.resources[name]["Properties"])
        return props

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {n: self.props(n) for n, r in self.resources.items() if r["Type"] == kind}

    # ------------------------------------------------------------------ network
    def vpc_of(self, function: str) -> tuple[list[str], list[str]]:
        """(subnets, security groups) of a function; ([], []) outside any VPC."""
        vpc = self.props(function).get("VpcConfig") or {}
        subnets = [r["Ref"] for r in vpc.get("SubnetIds") or []]
        groups = [r["Ref"] for r in vpc.get("SecurityGroupIds") or []] if subnets else []
        return subnets, groups

    def _rules(self, group: str, direction: str) -> list[dict[str, Any]]:
        inline = "SecurityGroupIngress" if direction == "in" else "SecurityGroupEgress"
        kind = "AWS::EC2::" + inline
        rules = list(self.props(group).get(inline, []))
        rules += [
            p for p in self.of_type(kind).values() if p["GroupId"] == {"GetAtt": f"{group}.GroupId"}
        ]
        return rules

    @staticmethod
    def _covers(rule: dict[str, Any], port: int) -> bool:
        if str(rule["IpProtocol"]) == "-1":
            return True
        return rule["IpProtocol"] == "tcp" and rule["FromPort"] <= port <= rule["ToPort"]

    def admits(self, target_group: str, from_groups: list[str], port: int) -> bool:
        """Ingress to ``target_group`` on ``port`` from one of ``from_groups``, and
        their egress to it (or anywhere)."""
        ingress = any(
            self._covers(r, port)
            and r.get("SourceSecurityGroupId", {}).get("GetAtt", "").split(".")[0] in from_groups
            for r in self._rules(target_group, "in")
        )
        return ingress and self.egress(from_groups, port, to=target_group)

    def egress(self, groups: list[str], port: int, *, to: str | None = None) -> bool:
        for group in groups:
            for rule in self._rules(group, "out"):
                dest = rule.get("DestinationSecurityGroupId", {}).get("GetAtt", "").split(".")[0]
                if self._covers(rule, port) and (
                    rule.get("CidrIp") == "0.0.0.0/0" or (to is not None and dest == to)
                ):
                    return True
        return False

    def route_table(self, subnet: str) -> str:
        (table,) = [
            p["RouteTableId"]["Ref"]
            for p in self.of_type("AWS::EC2::SubnetRouteTableAssociation").values()
            if p["SubnetId"] == {"Ref": subnet}
        ]
        return table

    def default_route(self, table: str) -> dict[str, Any] | None:
        for route in self.of_type("AWS::EC2::Route").values():
            if route["RouteTableId"] == {"Ref": table} and route["DestinationCidrBlock"] == (
                "0.0.0.0/0"
            ):
                return route
        return None

    def nat_route(self, subnet: str) -> bool:
        """0.0.0.0/0 to a NAT gateway that sits in a subnet routed to an attached IGW."""
        route = self.default_route(self.route_table(subnet))
        if route is None or "NatGatewayId" not in route:
            return False
        nat = self.props(route["NatGatewayId"]["Ref"])
        out = self.default_route(self.route_table(nat["SubnetId"]["Ref"]))
        if out is None or "GatewayId" not in out:
            return False
        igw = out["GatewayId"]["Ref"]
        return any(
            p["InternetGatewayId"] == {"Ref": igw}
            for p in self.of_type("AWS::EC2::VPCGatewayAttachment").values()
        )

    def endpoints(self, service: str) -> dict[str, dict[str, Any]]:
        return {
            n: p
            for n, p in self.of_type("AWS::EC2::VPCEndpoint").items()
            if canon(p["ServiceName"])[0].endswith("." + service)
        }

    def path(self, function: str, call: Call) -> str | None:
        """How ``call`` leaves ``function``, or None when it cannot."""
        if call.via in NOT_NETWORK:
            return "the Lambda service"
        subnets, groups = self.vpc_of(function)
        if not subnets:
            return None if call.service in IN_VPC else "no VPC"
        if call.service in IN_VPC:
            group, port = IN_VPC[call.service]
            ok = group in self.resources and self.admits(group, groups, port)
            return "security groups" if ok else None
        tables = {self.route_table(s) for s in subnets}
        for endpoint in self.endpoints(call.service).values():
            if call.service in GATEWAY and endpoint["VpcEndpointType"] == "Gateway":
                if tables <= {r["Ref"] for r in endpoint["RouteTableIds"]}:
                    return "gateway endpoint"
            elif call.service not in NO_ENDPOINT and endpoint["VpcEndpointType"] == "Interface":
                in_subnets = set(subnets) <= {r["Ref"] for r in endpoint["SubnetIds"]}
                admitted = any(
                    self.admits(g["GetAtt"].split(".")[0], groups, 443)
                    for g in endpoint["SecurityGroupIds"]
                )
                if endpoint.get("PrivateDnsEnabled") and in_subnets and admitted:
                    return "interface endpoint"
        if call.service == "execute-api" and any(
            e.get("PrivateDnsEnabled") for e in self.endpoints("execute-api").values()
        ):
            return None  # the endpoint's private DNS captures the API's name, then 403
        if all(self.nat_route(s) for s in subnets) and self.egress(groups, 443):
            return "NAT gateway"
        return None


# ---------------------------------------------------------------------- the code
def _tree(module: str) -> ast.Module:
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    return ast.parse(path.read_text())


def _imports(node: ast.AST, package: str) -> set[str]:
    found: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - n.level + 1]
                    + ([base] if base else [])
                )
            found |= {base} | {f"{base}.{a.name}" for a in n.names}
    return {m for m in found if m.split(".")[0] in ("chalicelib", "functions")}


def _exists(module: str) -> bool:
    base = ROOT / module.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _adapter(module: str) -> str | None:
    return next((a for a in ADAPTERS if module == a or module.startswith(a + ".")), None)


@cache
def _module_closure(module: str) -> frozenset[str]:
    """``module`` and what it imports, anywhere in it, transitively; adapters are
    leaves (what they import is theirs), the composition root is read by members."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen or not _exists(current):
            continue
        seen.add(current)
        if _adapter(current) or current == "chalicelib.bootstrap":
            continue
        package = (
            current if (ROOT / current.replace(".", "/")).is_dir() else current.rsplit(".", 1)[0]
        )
        todo += sorted(_imports(_tree(current), package))
    return frozenset(seen)


def _container_members() -> tuple[dict[str, ast.AST], ast.Module]:
    tree = _tree("chalicelib.bootstrap")
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Container"]
    members: dict[str, ast.AST] = {}
    # the members of its bases (e.g. webhook_wiring.WebhookMembers) first: the class's own win
    sources = {
        a.name: n.module for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
    }
    for base in cls.bases:
        if isinstance(base, ast.Name) and sources.get(base.id):
            base_tree = _tree(str(sources[base.id]))
            for node in base_tree.body:
                if isinstance(node, ast.ClassDef) and node.name == base.id:
                    members |= {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name != "__init__":
            members[node.name] = node
        elif isinstance(node, ast.FunctionDef):  # attributes set in __init__
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Attribute):
                    members[stmt.targets[0].attr] = stmt.value
    return members, tree


def _self_attrs(node: ast.AST) -> set[str]:
    return {
        n.attr
        for n in ast.walk(node)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"
    }


def container_modules(used: set[str]) -> set[str]:
    """What the container members ``used`` import, following ``self.X`` between members;
    ``build()`` (every container's adapters) included."""
    members, tree = _container_members()
    build = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef)
        and n.name in ("build", "_with_realtime_nudge", "_document_cache")
    ]
    modules: set[str] = set()
    for fn in build:
        modules |= _imports(fn, "chalicelib")
    seen: set[str] = set()
    todo = sorted(used)
    while todo:
        name = todo.pop()
        if name in seen or name not in members:
            continue
        seen.add(name)
        modules |= _imports(members[name], "chalicelib")
        todo += sorted(_self_attrs(members[name]))
    return modules


def _container_uses(fn: ast.AST) -> set[str]:
    """``X`` of every ``bootstrap.container().X`` in ``fn`` (directly or via a name)."""

    def is_container(n: ast.AST) -> bool:
        return (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute)
            and n.func.attr == "container"
        )

    names = {
        t.id
        for n in ast.walk(fn)
        if isinstance(n, ast.Assign) and is_container(n.value)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    return {
        n.attr
        for n in ast.walk(fn)
        if isinstance(n, ast.Attribute)
        and (is_container(n.value) or (isinstance(n.value, ast.Name) and n.value.id in names))
    }


def reached_modules(handler: str) -> set[str]:
    """The modules (ours) the handler's code can reach, and the boto3 clients it builds
    itself (as ``boto3:<service>``)."""
    module, _, name = handler.rpartition(".")
    tree = _tree(module)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if module == "app":  # the API: every route, so every member of the composition root
        used = set(_container_members()[0])
        visited: list[ast.AST] = [tree]
    else:
        visited, todo = [], [name]
        while todo:
            fn = functions.get(todo.pop())
            if fn is None or fn in visited:
                continue
            visited.append(fn)
            # called, or handed on (a record handler): a module function it can run
            todo += [n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in functions]
        used = {attr for fn in visited for attr in _container_uses(fn)}
    modules = _imports(tree, module.rpartition(".")[0] or module)
    if used or "chalicelib.bootstrap" in modules:
        modules.add("chalicelib.config")  # the container reads the settings
    modules |= {m for fn in visited for m in _imports(fn, module.rpartition(".")[0])}
    if used:
        modules |= container_modules(used)
    reached = {m for start in modules for m in _module_closure(start)}
    clients = {
        f"boto3:{n.args[0].value}"
        for fn in visited
        for n in ast.walk(fn)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "client"
        and n.args
        and isinstance(n.args[0], ast.Constant)
    }
    return reached | clients


def adapter_services(reached: set[str]) -> dict[str, str]:
    """service -> the adapter module that reaches it, for the reached modules."""
    out: dict[str, str] = {}
    for module in sorted(reached):
        if module.startswith("boto3:"):
            out[module.removeprefix("boto3:")] = module
        elif (adapter := _adapter(module)) is not None:
            out[ADAPTERS[adapter]] = adapter
    return out


def matches(pattern: str, value: str) -> bool:
    return fnmatch(value, pattern)
