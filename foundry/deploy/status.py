"""An instance's status as the deploying side sees it: what AWS and the instance's own endpoint say
(`foundry.aws.instance_status`), plus what this process's deployer knows (its lock, the last stopped deploy)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from foundry.aws.clients import ClientFactory
from foundry.aws.instance_status import InstanceProbe, InstanceStatus, instance_status
from foundry.deploy.deployer import Deployer
from foundry.deploy.interruption import Interruption
from foundry.manifests.resolve import ResolvedInstance


@dataclass(frozen=True)
class DeployedStatus:
    status: InstanceStatus
    deploy_lock: str | None
    """Who holds the instance's lock right now and why (a deploy or the watch of a stopped one, a rollout)."""
    last_interrupted_deploy: Interruption | None
    """The last deploy whose cdk was stopped, and how CloudFormation ended it."""


async def deployed_status(
    deployer: Deployer,
    instance: ResolvedInstance,
    *,
    region: str,
    clients: ClientFactory,
    probe: InstanceProbe | None,
) -> DeployedStatus:
    status = await instance_status(instance, region=region, clients=clients, probe=probe, with_metrics=True)
    interrupted = await asyncio.to_thread(deployer.last_interruption, instance)
    lock = await asyncio.to_thread(deployer.lock_reason, instance, region)
    return DeployedStatus(status, lock, interrupted)
