"""Is the environment's platform stack ready for one instance's deploy? Read from AWS, never deployed from here.

`foundry.deploy_instance` deploys only the instance's stack (`cdk deploy --exclusively`): the shared platform
(`af-<env>-platform`: VPC, cluster, zone, ALB shards) is deployed on purpose by a platform engineer, never as a side
effect of one tenant's deploy. Before the instance's stack is deployed, the platform must be

* **present and settled**: the stack exists and is in a `*_COMPLETE` state other than a failed create
  (`ROLLBACK_COMPLETE`) or a delete; `*_IN_PROGRESS` means someone is deploying it right now;
* **up to date**: the template CloudFormation holds for it equals the one just synthesized from the same
  manifests (ignoring `AWS::CDK::Metadata`, the CLI's version analytics, which deploys nothing); a difference means
  the manifests changed the shared infrastructure (a new ALB shard, new settings) and that change is not deployed;
* **publishing the contract**: every platform SSM parameter the instance's template reads
  (`/agentfoundry/<env>/platform/...`, CloudFormation SSM parameter types) exists.

Otherwise the deploy is refused, naming the platform stack to deploy first and every reason found.
The comparison and the parameter list are pure functions; the AWS reads are synchronous boto3 calls, run in a
worker thread with a time limit (`check_assembly_platform`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from foundry.aws.clients import READ_TIMEOUT_SECONDS, ClientFactory
from foundry.aws.cloudformation import read_deployed_template, read_stack_status
from foundry.cdk.cloud_assembly import stack_templates
from foundry.manifests.naming import platform_stack_name

IGNORED_RESOURCE_TYPES = frozenset({"AWS::CDK::Metadata"})
SETTLED_UNUSABLE = frozenset({"ROLLBACK_COMPLETE", "DELETE_COMPLETE", "REVIEW_IN_PROGRESS"})
"""ROLLBACK_COMPLETE: the first create failed and left nothing usable; REVIEW_IN_PROGRESS: only a change set."""
SSM_BATCH = 10  # ssm.get_parameters takes at most 10 names
SHOWN_DIFFERENCES = 12


@dataclass(frozen=True)
class PlatformCheck:
    stack: str
    status: str | None
    """CloudFormation's status of the platform stack; None when it does not exist."""
    ready: bool
    problems: list[str] = field(default_factory=list)
    deploy_command: str = ""
    """What a platform engineer runs to deploy it (deliberately, from a shell with the account's credentials)."""


def contract_prefix(environment: str) -> str:
    """Where the platform publishes its SSM parameters (constructs/af_platform_contract.py's parameter_prefix; kept
    here so that the MCP server does not import the CDK side, and tested to agree)."""
    return f"/agentfoundry/{environment}/platform"


def platform_deploy_command(environment: str, stack: str) -> str:
    return f"cdk deploy -c environment={environment} {stack}"


# --- pure --------------------------------------------------------------------------------------------------


def _comparable(template: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(template)
    resources = body.get("Resources") or {}
    body["Resources"] = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if not (isinstance(resource, Mapping) and resource.get("Type") in IGNORED_RESOURCE_TYPES)
    }
    conditions = dict(body.get("Conditions") or {})
    conditions.pop("CDKMetadataAvailable", None)  # exists only to place AWS::CDK::Metadata
    body["Conditions"] = conditions
    return body


def template_differences(deployed: Mapping[str, Any], synthesized: Mapping[str, Any]) -> list[str]:
    """What differs between the deployed and the synthesized template, by section and logical id, sorted."""
    old, new = _comparable(deployed), _comparable(synthesized)
    found: list[str] = []
    for section in sorted(set(old) | set(new)):
        before, after = old.get(section), new.get(section)
        if before == after or (not before and not after):
            continue
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            for key in sorted(set(before) | set(after)):
                if key not in before:
                    found.append(f"{section}.{key} is not deployed yet")
                elif key not in after:
                    found.append(f"{section}.{key} is deployed but no longer synthesized")
                elif before[key] != after[key]:
                    found.append(f"{section}.{key} differs")
        else:
            found.append(f"{section} differs")
    return found


def contract_parameters(instance_template: Mapping[str, Any], environment: str) -> list[str]:
    """The platform's SSM parameters an instance template reads (CloudFormation SSM parameter types), sorted."""
    prefix = contract_prefix(environment) + "/"
    names = {
        str(parameter.get("Default"))
        for parameter in (instance_template.get("Parameters") or {}).values()
        if isinstance(parameter, Mapping)
        and str(parameter.get("Type", "")).startswith("AWS::SSM::Parameter::Value<")
        and str(parameter.get("Default", "")).startswith(prefix)
    }
    return sorted(names)


def assess_platform(
    environment: str,
    stack: str,
    status: str | None,
    differences: list[str],
    missing_parameters: list[str],
) -> PlatformCheck:
    """One verdict over what was read; every problem found is listed."""
    command = platform_deploy_command(environment, stack)
    problems: list[str] = []
    if status is None:
        problems.append(f"the platform stack {stack} is not deployed")
    elif status.endswith("_IN_PROGRESS"):
        problems.append(f"the platform stack {stack} is {status}: it is being deployed right now")
    elif status in SETTLED_UNUSABLE or status.endswith("_FAILED"):
        problems.append(f"the platform stack {stack} is {status}: it holds no usable platform")
    if differences:
        # What changes or goes away matters more than what is only new: those come first.
        ranked = sorted(differences, key=lambda d: (d.endswith("is not deployed yet"), "no longer" not in d))
        shown = ranked[:SHOWN_DIFFERENCES]
        more = f" (and {len(differences) - len(shown)} more)" if len(differences) > len(shown) else ""
        problems.append(
            f"the platform stack {stack} is out of date: its deployed template differs from the one synthesized "
            f"from the manifests: {'; '.join(shown)}{more}"
        )
    if missing_parameters:
        problems.append(
            f"the platform's SSM parameters this instance reads are missing: {', '.join(missing_parameters)}"
        )
    return PlatformCheck(stack=stack, status=status, ready=not problems, problems=problems, deploy_command=command)


def refusal(check: PlatformCheck, label: str) -> str:
    """The message of a deploy refused because of the platform."""
    return (
        f"the deploy of {label} was refused (nothing was deployed): "
        + "; ".join(check.problems)
        + f". Deploy the platform stack {check.stack} first (a deliberate act, never a side effect of one "
        f"instance's deploy): `{check.deploy_command}`"
    )


# --- AWS (edges) -------------------------------------------------------------------------------------------


def missing_ssm_parameters(ssm: Any, names: list[str]) -> list[str]:
    missing: list[str] = []
    for start in range(0, len(names), SSM_BATCH):
        answer = ssm.get_parameters(Names=names[start : start + SSM_BATCH])
        missing += [str(n) for n in answer.get("InvalidParameters", [])]
    return sorted(missing)


def check_platform(
    clients: ClientFactory,
    *,
    region: str,
    environment: str,
    platform_template: Path,
    instance_template: Path,
) -> PlatformCheck:
    """Reads the platform stack, its deployed template and the contract parameters (boto3, synchronous)."""
    stack = platform_stack_name(environment)
    cloudformation = clients("cloudformation", region)
    status = read_stack_status(cloudformation, stack)
    differences: list[str] = []
    if status is not None and status not in SETTLED_UNUSABLE:
        synthesized = json.loads(platform_template.read_text(encoding="utf-8"))
        differences = template_differences(read_deployed_template(cloudformation, stack), synthesized)
    parameters = contract_parameters(json.loads(instance_template.read_text(encoding="utf-8")), environment)
    missing = missing_ssm_parameters(clients("ssm", region), parameters) if parameters else []
    return assess_platform(environment, stack, status, differences, missing)


async def check_assembly_platform(
    clients: ClientFactory,
    *,
    region: str,
    environment: str,
    assembly: Path,
    instance_stack: str,
    platform_assembly: Path | None = None,
) -> PlatformCheck:
    """`check_platform` against the templates of a synthesized assembly (the platform's from `platform_assembly`
    when a sharded set keeps it apart), in a worker thread with a time limit. A platform that cannot be checked
    (a template missing from the assembly, AWS unreadable) is not ready."""
    platform = platform_stack_name(environment)
    try:
        templates = await asyncio.to_thread(stack_templates, assembly)
        if platform_assembly is not None and platform_assembly != assembly:
            templates = {**templates, **await asyncio.to_thread(stack_templates, platform_assembly)}
        platform_template, instance_template = templates[platform], templates[instance_stack]
    except (OSError, ValueError, KeyError) as exc:
        return unchecked_platform(environment, f"the synthesized assembly {assembly} lacks a template: {exc}")
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            return await asyncio.to_thread(
                check_platform,
                clients,
                region=region,
                environment=environment,
                platform_template=platform_template,
                instance_template=instance_template,
            )
    except (ClientError, BotoCoreError, TimeoutError) as exc:
        return unchecked_platform(
            environment, f"the platform stack {platform} could not be read from AWS: {exc or type(exc).__name__}"
        )


def unchecked_platform(environment: str, problem: str) -> PlatformCheck:
    """A platform that could not be checked is reported not ready, never ready, with the command that deploys it."""
    platform = platform_stack_name(environment)
    return PlatformCheck(
        stack=platform,
        status=None,
        ready=False,
        problems=[problem],
        deploy_command=platform_deploy_command(environment, platform),
    )
