"""CloudFormation fragments as plain data: the instance modules render their resources, parameters and outputs
as dicts, and the InstanceStack merges them into its template (see docs/cdk.md, "How an InstanceStack is built").
Pure: no CDK here, so every fragment is unit-testable without jsii.

Logical ids are CDK's own (`logical_id`), so templates keep the ids the construct-per-resource version had: a
changed id would make CloudFormation replace the resource.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

Json = dict[str, Any]

_NON_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")
UNRESOLVED_MARKER = "${Token["
"""How a CDK token looks in a Python string: such a value cannot be written into a fragment file."""


_CONSTRUCT_PATHS: dict[str, str] = {}
"""Logical id -> the construct path it was made from (every id `logical_id` returned): the `aws:cdk:path`."""


@cache
def logical_id(*path: str) -> str:
    """CDK's `makeUniqueId` for a construct at `path` below its stack ('Runtime', 'TaskRole' ->
    'RuntimeTaskRoleAB7E1F72'): the human part plus the first 8 hex digits of the md5 of the path."""
    components = [c for c in path if c != "Default"]
    if not components:
        raise ValueError("a logical id needs a path")
    if len(components) == 1:
        made = _NON_ALPHANUMERIC.sub("", components[0])
    else:
        digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()[:8].upper()
        human: list[str] = []
        for component in components:
            if component != "Resource" and (not human or human[-1] != component):
                human.append(component)
        made = "".join(_NON_ALPHANUMERIC.sub("", c) for c in human)[:240] + digest
    _CONSTRUCT_PATHS[made] = "/".join(path)
    return made


def construct_path(logical_id_: str) -> str:
    """The path below its stack that `logical_id` made this id from ('RuntimeTaskRoleAB7E1F72' ->
    'Runtime/TaskRole'), as CDK writes it in `aws:cdk:path` metadata."""
    try:
        return _CONSTRUCT_PATHS[logical_id_]
    except KeyError:
        raise ValueError(f"{logical_id_} was not made by logical_id(), so its construct path is unknown") from None


def ref(target: str) -> Json:
    return {"Ref": target}


def get_att(target: str, attribute: str) -> Json:
    return {"Fn::GetAtt": [target, attribute]}


def join(*parts: str | Json) -> Json:
    return {"Fn::Join": ["", list(parts)]}


PARTITION = ref("AWS::Partition")


def literal(value: str, what: str) -> str:
    """A value that must be known at synth to be written into a fragment (e.g. an asset's bucket and key)."""
    if UNRESOLVED_MARKER in value:
        raise ValueError(f"{what} is not known at synth ({value}); resolve it with Stack.resolve() instead")
    return value


def require_real_reason(rule: str, reason: str) -> None:
    """Every cdk-nag acknowledgement must say why; a placeholder reason is refused where it is written."""
    if len(reason.strip()) < 20:
        raise ValueError(f"the acknowledgement of {rule} needs a real reason, not {reason!r}")


@dataclass(frozen=True)
class Acknowledgement:
    """A cdk-nag finding acknowledged on one resource of a fragment, with the reason (required, not a stub)."""

    logical_id: str
    rule: str
    """As cdk-nag reports it: 'AwsSolutions-IAM5[Resource::*]'."""
    reason: str

    def __post_init__(self) -> None:
        require_real_reason(self.rule, self.reason)


@dataclass
class Fragment:
    """One template's worth of Parameters, Resources and Outputs, plus acknowledgements of its resources."""

    parameters: dict[str, Json] = field(default_factory=dict)
    resources: dict[str, Json] = field(default_factory=dict)
    outputs: dict[str, Json] = field(default_factory=dict)
    acknowledgements: list[Acknowledgement] = field(default_factory=list)

    def add(self, other: Fragment) -> Fragment:
        for mine, theirs in (
            (self.parameters, other.parameters),
            (self.resources, other.resources),
            (self.outputs, other.outputs),
        ):
            clash = mine.keys() & theirs.keys()
            if clash:
                raise ValueError(f"logical ids defined twice: {sorted(clash)}")
            mine.update(theirs)
        self.acknowledgements.extend(other.acknowledgements)
        return self

    def template(self, path_prefix: str | None = None) -> Json:
        """The fragment as a CloudFormation template. With `path_prefix` (the stack's path), each resource carries
        its `aws:cdk:path` metadata as CDK writes it when the CLI asks for path metadata (its default)."""
        template: Json = {}
        if self.parameters:
            template["Parameters"] = self.parameters
        if path_prefix is None:
            template["Resources"] = self.resources
        else:
            template["Resources"] = {
                lid: {**body, "Metadata": {"aws:cdk:path": f"{path_prefix}/{construct_path(lid)}"}}
                for lid, body in self.resources.items()
            }
        if self.outputs:
            template["Outputs"] = self.outputs
        return template


JSON_PROPERTIES = frozenset({"AssumeRolePolicyDocument", "PolicyDocument"})
"""Properties CloudFormation types as free-form JSON: L1 constructs write these as given, not sorted."""


def sorted_keys(value: Any) -> Any:
    """CDK's L1 constructs write typed properties with their keys sorted, at every depth (JSON-typed ones as
    given); so do the fragments, so that a template has the bytes (and asset hash) the constructs would give."""
    if isinstance(value, dict):
        return {key: value[key] if key in JSON_PROPERTIES else sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(item) for item in value]
    return value


def resource(kind: str, properties: Json, depends_on: list[str] | None = None) -> Json:
    body: Json = {"Type": kind, "Properties": sorted_keys(properties)}
    if depends_on:
        body["DependsOn"] = depends_on
    return body


def ssm_parameter(parameter_name: str, *, as_list: bool = False) -> Json:
    """A CloudFormation SSM parameter type, resolved at deploy time (how instances read their platform)."""
    kind = "List<String>" if as_list else "String"
    return {
        "Type": f"AWS::SSM::Parameter::Value<{kind}>",
        "Default": parameter_name,
        "Description": "SSM parameter written by the platform stack",
    }
