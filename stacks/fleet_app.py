"""Builds the CDK app from `agents/`: per environment its platform stack, and one InstanceStack per selected
instance. Only what the selection needs is constructed; deploying 1 instance of 1,000 builds 1 instance stack.

This is the edge where files are read (manifests, placement) and written (bundles); the stacks and constructs
below receive plain typed values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import App, Stack, Validations
from cdk_nag import AwsSolutionsChecks

from constructs.af_agent_runtime_props import ImageFromAsset, ImageFromUri, RuntimeImage
from foundry.bundles.archive import build_bundle
from foundry.files.atomic import write_content_addressed
from foundry.fleet import placement
from foundry.fleet.load import load_fleet
from foundry.fleet.shards import ShardSelection
from foundry.manifests import naming
from foundry.manifests.platform_settings import EnvironmentSettings
from foundry.manifests.resolve import ResolvedInstance
from stacks.instance_stack import BundleFile, InstanceStack
from stacks.platform_stack import PlatformStack

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DOCKERFILE = "runtime/Dockerfile"


@dataclass(frozen=True)
class FleetSelection:
    """The app's CDK context: `-c agentsDir=`, `-c environment=`, `-c instance=`, `-c instances=`,
    `-c runtimeImage=`, `-c shard=`."""

    agents_dir: Path
    environment: str | None = None
    instance: str | None = None
    instances: tuple[str, ...] | None = None
    """`-c environment=ENV -c instances=A,B` (comma-separated selectors, may be empty): only these instances of ENV
    and ENV's platform stack; what a pull request synthesizes from its change plan."""
    runtime_image: str | None = None
    shard: ShardSelection | None = None
    """`-c shard=K/N`: only the selected instance stacks of shard K (`foundry.fleet.shards`), without the platform
    stacks; `-c shard=platform`: only the platform stacks. What `python -m foundry synth --shards N` runs."""

    @classmethod
    def from_context(cls, app: App) -> FleetSelection:
        def text(key: str) -> str | None:
            value = app.node.try_get_context(key)
            return str(value) if value not in (None, "") else None

        agents_dir = text("agentsDir")
        listed = app.node.try_get_context("instances")
        shard = text("shard")
        return cls(
            agents_dir=Path(agents_dir).resolve() if agents_dir else REPO_ROOT / "agents",
            environment=text("environment"),
            instance=text("instance"),
            instances=None if listed is None else tuple(sorted({s for s in str(listed).split(",") if s.strip()})),
            runtime_image=text("runtimeImage"),
            shard=ShardSelection.parse(shard) if shard else None,
        )


@dataclass(frozen=True)
class FleetStacks:
    platforms: dict[str, PlatformStack]
    instances: dict[str, InstanceStack]
    """Both keyed by stack name."""

    @property
    def all(self) -> list[Stack]:
        return [*self.platforms.values(), *self.instances.values()]


def runtime_image(selection: FleetSelection, settings: EnvironmentSettings, repo_root: Path) -> RuntimeImage:
    """`-c runtimeImage` wins over the environment's `runtime_image`; with neither, build runtime/Dockerfile."""
    uri = selection.runtime_image or settings.runtime_image
    if uri:
        return ImageFromUri(uri=uri)
    return ImageFromAsset(directory=str(repo_root), dockerfile=RUNTIME_DOCKERFILE)


def _listed(
    instances: Sequence[ResolvedInstance], selectors: Sequence[str], environment: str | None
) -> list[ResolvedInstance]:
    by_selector = {i.key.selector: i for i in instances}
    unknown = [s for s in selectors if s not in by_selector]
    if unknown:
        raise ValueError(
            f"unknown instance(s) {', '.join(map(repr, unknown))} in environment {environment!r}; "
            "`python -m foundry validate` lists the instances"
        )
    return [by_selector[s] for s in selectors]


def build_fleet(
    app: App,
    selection: FleetSelection,
    *,
    repo_root: Path = REPO_ROOT,
    bundle_dir: Path | None = None,
) -> FleetStacks:
    """Raises ManifestError (bad manifests, unplaced instance) or ValueError (bad selector) before building.
    cdk-nag's AwsSolutions pack checks every construct at synth (its findings and acknowledgements are in the
    assembly's validation report; an unacknowledged finding fails the synth)."""
    if selection.instances is not None and (selection.instance is not None or selection.environment is None):
        raise ValueError("-c instances=A,B selects instances of one environment: give -c environment=ENV with it")
    fleet = load_fleet(selection.agents_dir, environment=selection.environment, instance=selection.instance)
    if selection.instances is not None:
        fleet = dataclasses.replace(
            fleet, instances=_listed(fleet.instances, selection.instances, selection.environment)
        )
    shard = selection.shard
    if shard is not None:
        fleet = dataclasses.replace(
            fleet, instances=[i for i in fleet.instances if shard.holds(i.manifest.spec.stack_name)]
        )
    all_settings = fleet.tree.platform.model.spec.environments
    if selection.instance is not None:
        environments = sorted({i.environment for i in fleet.instances})
    elif selection.environment is not None:
        environments = [selection.environment]
    else:
        environments = sorted(fleet.tree.environments)
    bundles = bundle_dir or repo_root / "build" / "cdk-bundles"

    slots = {env: placement.load_placement(selection.agents_dir, env) for env in environments}
    for env in environments:
        selected = [i.key.selector for i in fleet.instances if i.environment == env]
        placement.require_placed(selection.agents_dir, env, slots[env], selected)

    platforms: dict[str, PlatformStack] = {}
    for env in environments if shard is None or shard.platform else []:
        name = naming.platform_stack_name(env)
        platforms[env] = PlatformStack(
            app,
            name,
            environment=env,
            settings=all_settings[env],
            shards=placement.shards_in_use(slots[env]),
            organizations=sorted({e.organization_id for e in fleet.tree.environments[env].model.spec.entries}),
        )
    instances: dict[str, InstanceStack] = {}
    for instance in fleet.instances:
        env = instance.environment
        settings = all_settings[env]
        bundle = build_bundle(instance)
        archive_path = write_content_addressed(bundle.archive, bundles, ".tar.gz")
        name = instance.manifest.spec.stack_name
        stack = InstanceStack(
            app,
            name,
            instance=instance,
            settings=settings,
            slot=slots[env][instance.key.selector],
            image=runtime_image(selection, settings, repo_root),
            bundle=BundleFile(path=str(archive_path), content_hash=bundle.content_hash),
        )
        if env in platforms:  # a shard's app holds no platform stack (the platform assembly does)
            stack.add_stack_dependency(platforms[env], "reads the platform's SSM parameters")
        instances[name] = stack
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return FleetStacks(platforms={p.stack_name: p for p in platforms.values()}, instances=instances)
