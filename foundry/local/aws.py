"""A local AWS on 127.0.0.1 (moto's server) and the real CDK CLI deploying an environment to it.

    python -m foundry.local.aws up [--port N]     start moto on 127.0.0.1 (pid, port and log in .local-aws/)
    python -m foundry.local.aws deploy            cdk bootstrap, then cdk deploy the platform and every instance
    python -m foundry.local.aws status [--json]   read back each instance (and its thread-state table) with boto3;
                                                  list what moto did not model
                                                  (deploy --platform-only: the platform stack, for `foundry rollout`)
    python -m foundry.local.aws env               shell exports for using the local AWS (eval "$(... env)")
    python -m foundry.local.aws down              stop the server and remove .local-aws/

Honesty: moto's CloudFormation silently skips resource types it does not implement (a Ref to one resolves to
nothing), and it models services as records, not running things (no ECS task starts, no load balancer carries
traffic, no DNS answers). `status` therefore compares every deployed stack's template with the resources moto
really created and lists the rest as "not modelled"; the real templates are never changed for it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from foundry.bundles.archive import BundleError, read_bundle
from foundry.cdk.process import tool_environment
from foundry.deploy.image_reference import ecr_registry
from foundry.files.repo import REPO_ROOT
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.manifests.naming import platform_stack_name
from foundry.manifests.problems import ManifestError

DEFAULT_STATE_DIR = REPO_ROOT / ".local-aws"
DEFAULT_ENVIRONMENT = "dev"
LOCAL_IMAGE_REPOSITORY_TAG = "agent-runtime:local"
"""No Docker engine is needed: the image is referenced by URI in the environment's own ECR registry (the repositories
the Foundry MCP server allows by default), never built, pushed or pulled (moto runs no task)."""


def default_runtime_image(account: str, region: str) -> str:
    return f"{ecr_registry(account, region)}/{LOCAL_IMAGE_REPOSITORY_TAG}"


START_TIMEOUT_S = 60.0
MOTO_SERVER_MODULE = "foundry.local.moto"
"""moto's server plus the CloudFormation types our stacks need and moto lacks (foundry/local/moto.py)."""
STOP_TIMEOUT_S = 15.0
CDK_TIMEOUT_S = 1800
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
INERT_BY_DESIGN = (
    "ECS: services and task definitions are records; no task or container ever runs",
    "Elastic Load Balancing: listeners, rules and target groups are records; nothing listens or routes traffic",
    "Route 53: records are stored; no DNS server answers for the zone",
    "IAM: roles and policies are stored; no request is authorised against them",
)


class LocalAwsError(Exception):
    """The local AWS cannot do what was asked; the message says why and what to run instead."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    port: int
    account: str
    region: str
    environment: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def aws_environment(state: ServerState, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every AWS client here (boto3, the CDK CLI) must see to talk to moto and nothing else.
    The S3 URL for CloudFormation says `localhost`: moto's CloudFormation reads a TemplateURL path-style only
    when its host contains 'localhost' (the name resolves to the same 127.0.0.1 server)."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS)
    env.update(
        AWS_ENDPOINT_URL=state.endpoint,
        AWS_ENDPOINT_URL_S3_FOR_CLOUDFORMATION=f"http://localhost:{state.port}",
        AWS_REGION=state.region,
        AWS_DEFAULT_REGION=state.region,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def unmodelled_resources(template: Mapping[str, Any], created: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Template resources that moto did not create (its list_stack_resources lacks their logical id)."""
    made = {r.get("LogicalResourceId") for r in created if r.get("LogicalResourceId")}
    return [
        {"logical_id": logical_id, "type": str(resource.get("Type"))}
        for logical_id, resource in sorted((template.get("Resources") or {}).items())
        if logical_id not in made
    ]


# --- the server ------------------------------------------------------------------------------------------------


@dataclass
class LocalAws:
    state_dir: Path = DEFAULT_STATE_DIR
    agents_dir: Path = DEFAULT_AGENTS_DIR
    repo_root: Path = REPO_ROOT
    cdk_timeout_s: int = CDK_TIMEOUT_S

    @property
    def state_file(self) -> Path:
        return self.state_dir / "server.json"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "moto.log"

    def read_state(self) -> ServerState | None:
        try:
            return ServerState(**json.loads(self.state_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def running(self) -> ServerState:
        state = self.read_state()
        if state is None or not _is_our_server(state.pid):
            raise LocalAwsError(f"the local AWS is not running (no live server in {self.state_dir}); run `up` first")
        return state

    def up(self, *, port: int = 0, environment: str = DEFAULT_ENVIRONMENT) -> ServerState:
        existing = self.read_state()
        if existing is not None and _is_our_server(existing.pid):
            raise LocalAwsError(
                f"the local AWS is already running on {existing.endpoint} (pid {existing.pid}); "
                "run `down` first to start a fresh one"
            )
        settings = self._settings(environment)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)
        port = port or _free_port()
        python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "MOTO_ACCOUNT_ID": settings.account, "PYTHONPATH": python_path}
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", MOTO_SERVER_MODULE, "-H", "127.0.0.1", "-p", str(port)],
                cwd=self.state_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        state = ServerState(process.pid, port, settings.account, settings.region, environment)
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        try:
            _wait_until_serving(state, process, self.log_file)
        except BaseException:
            self.down()
            raise
        return state

    def down(self) -> bool:
        """Stops the server this state dir started (and only it) and removes the state dir. True if one ran."""
        state = self.read_state()
        stopped = False
        if state is not None and _is_our_server(state.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while _alive(state.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pid, signal.SIGKILL)
            stopped = True
        _remove_tree(self.state_dir)
        return stopped

    def _settings(self, environment: str) -> Any:
        fleet = load_fleet(self.agents_dir, environment=environment)
        return fleet.tree.platform.model.spec.environments[environment]

    # --- deploy ----------------------------------------------------------------------------------------------

    def deploy(
        self, *, runtime_image: str | None = None, concurrency: int = 4, platform_only: bool = False
    ) -> list[str]:
        """`cdk bootstrap`, then `cdk deploy --method=direct` of the platform stack and every instance stack of
        the server's environment (`platform_only`: the platform stack alone, for `foundry rollout` to deploy the
        instances). Returns the stacks deployed."""
        state = self.running()
        runtime_image = runtime_image or default_runtime_image(state.account, state.region)
        fleet = load_fleet(self.agents_dir, environment=state.environment)
        stacks = [platform_stack_name(state.environment)]
        if not platform_only:
            stacks += [i.manifest.spec.stack_name for i in fleet.instances]
        cdk = str(self.repo_root / "node_modules" / ".bin" / "cdk")
        env = self._tool_env(state)
        # Bootstrapping from the state dir: no cdk.json there, so the CLI does not synthesize the app for it.
        self._run([cdk, "bootstrap", f"aws://{state.account}/{state.region}", "--no-color"], self.state_dir, env)
        self._run(
            [
                cdk,
                "deploy",
                *stacks,
                "--method=direct",
                "--require-approval",
                "never",
                "--concurrency",
                str(concurrency),
                "--output",
                str(self.state_dir / "cdk.out"),
                "--outputs-file",
                str(self.state_dir / "outputs.json"),
                "--context",
                f"agentsDir={self.agents_dir.resolve()}",
                "--context",
                f"environment={state.environment}",
                "--context",
                f"runtimeImage={runtime_image}",
                "--no-color",
            ],
            self.repo_root,
            env,
        )
        return stacks

    def _tool_env(self, state: ServerState) -> dict[str, str]:
        return tool_environment(self.repo_root, aws_environment(state))

    def _run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        log_path = self.state_dir / "cdk.log"
        with log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            try:
                done = subprocess.run(
                    argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    timeout=self.cdk_timeout_s, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired as exc:
                raise LocalAwsError(f"`{argv[1]}` took longer than {self.cdk_timeout_s}s; see {log_path}") from exc
        if done.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-25:]
            raise LocalAwsError(
                f"`cdk {argv[1]}` failed (exit {done.returncode}); last lines of {log_path}:\n" + "\n".join(tail)
            )

    # --- read back -------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        state = self.running()
        with _aws_env(aws_environment(state)):
            return read_back(self.agents_dir, state)


def read_back(agents_dir: Path, state: ServerState) -> dict[str, Any]:
    """Reads every instance of the server's environment back with boto3, and every stack's unmodelled resources."""
    import boto3
    from botocore.exceptions import ClientError

    session = boto3.session.Session(region_name=state.region)
    cfn, ecs, elbv2 = session.client("cloudformation"), session.client("ecs"), session.client("elbv2")
    route53, s3 = session.client("route53"), session.client("s3")
    fleet = load_fleet(agents_dir, environment=state.environment)
    settings = fleet.tree.platform.model.spec.environments[state.environment]
    stacks = [platform_stack_name(state.environment)] + [i.manifest.spec.stack_name for i in fleet.instances]

    not_modelled: dict[str, list[dict[str, str]]] = {}
    templates: dict[str, dict[str, Any]] = {}
    resources: dict[str, list[dict[str, Any]]] = {}
    for stack in stacks:
        try:
            body = cfn.get_template(StackName=stack)["TemplateBody"]
            created = cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        except ClientError:
            continue
        template = json.loads(body) if isinstance(body, str) else body
        templates[stack], resources[stack] = template, created
        not_modelled[stack] = unmodelled_resources(template, created)

    zone_id = None
    zones = route53.list_hosted_zones_by_name(DNSName=settings.zone.name)["HostedZones"]
    for zone in zones:
        if zone["Name"].rstrip(".") == settings.zone.name:
            zone_id = zone["Id"]
    records = route53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"] if zone_id else []

    instances = []
    for instance in fleet.instances:
        stack = instance.manifest.spec.stack_name
        checks: list[Check] = []
        try:
            outputs = {
                o["OutputKey"]: o["OutputValue"]
                for o in cfn.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
            }
        except ClientError as exc:
            missing = Check("stack", False, f"not deployed: {exc.response['Error'].get('Message', exc)}")
            instances.append(
                {"instance": instance.key.selector, "stack": stack, "ok": False, "checks": [asdict(missing)]}
            )
            continue
        checks.append(_check_service(ecs, outputs))
        checks.append(_check_listener_rule(elbv2, outputs, instance.manifest.spec.hostname))
        checks.append(_check_record(records, instance.manifest.spec.hostname, settings.zone.name))
        checks.append(_check_bundle(s3, outputs))
        checks += state_table_checks(session.client("dynamodb"), templates.get(stack, {}), resources.get(stack, []))
        instances.append(
            {
                "instance": instance.key.selector,
                "stack": stack,
                "hostname": instance.manifest.spec.hostname,
                "ok": all(c.ok for c in checks),
                "checks": [asdict(c) for c in checks],
            }
        )
    return {
        "endpoint": state.endpoint,
        "environment": state.environment,
        "account": state.account,
        "region": state.region,
        "ok": bool(instances) and all(i["ok"] for i in instances),
        "instances": instances,
        "not_modelled": not_modelled,
        "inert_by_design": list(INERT_BY_DESIGN),
    }


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _check_service(ecs: Any, outputs: Mapping[str, str]) -> Check:
    cluster, name = outputs.get("ClusterName"), outputs.get("ServiceName")
    if not cluster or not name:
        return Check("ecs_service", False, "stack outputs lack ClusterName/ServiceName")
    found = ecs.describe_services(cluster=cluster, services=[name])["services"]
    if not found:
        return Check("ecs_service", False, f"no ECS service {name} in cluster {cluster}")
    service = found[0]
    detail = f"{service['serviceName']} in {cluster}: {service['status']}, desired {service['desiredCount']} task(s)"
    return Check("ecs_service", service["status"] == "ACTIVE", detail, {"task_definition": service["taskDefinition"]})


def _check_listener_rule(elbv2: Any, outputs: Mapping[str, str], hostname: str) -> Check:
    target_group, balancer = outputs.get("TargetGroupArn"), outputs.get("LoadBalancerArn")
    if not target_group or not balancer:
        return Check("listener_rule", False, "stack outputs lack TargetGroupArn/LoadBalancerArn")
    for listener in elbv2.describe_listeners(LoadBalancerArn=balancer)["Listeners"]:
        for rule in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
            forwards = {a.get("TargetGroupArn") for a in rule.get("Actions", [])}
            forwards |= {
                t.get("TargetGroupArn")
                for a in rule.get("Actions", [])
                for t in (a.get("ForwardConfig") or {}).get("TargetGroups", [])
            }
            hosts = {
                v
                for c in rule.get("Conditions", [])
                if c.get("Field") == "host-header"
                for v in [*c.get("Values", []), *(c.get("HostHeaderConfig") or {}).get("Values", [])]
            }
            if target_group in forwards and hostname in hosts:
                detail = f"priority {rule['Priority']} on port {listener['Port']}: host {hostname} -> target group"
                return Check("listener_rule", True, detail, {"rule_arn": rule["RuleArn"]})
    return Check("listener_rule", False, f"no listener rule routes host {hostname} to {target_group}")


def _check_record(records: Sequence[Mapping[str, Any]], hostname: str, zone: str) -> Check:
    for record in records:
        if record["Name"].rstrip(".") == hostname and record["Type"] in ("A", "AAAA", "CNAME"):
            target = (record.get("AliasTarget") or {}).get("DNSName") or record.get("ResourceRecords")
            return Check("route53_record", True, f"{record['Type']} {hostname} -> {target}")
    return Check("route53_record", False, f"no record {hostname} in zone {zone}")


def _check_bundle(s3: Any, outputs: Mapping[str, str]) -> Check:
    uri, expected = outputs.get("BundleUri", ""), outputs.get("BundleHash")
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        return Check("bundle_object", False, f"BundleUri output is {uri!r}, not s3://...")
    body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
    try:
        index, _ = read_bundle(body, uri, expected_hash=expected)
    except BundleError as exc:
        return Check("bundle_object", False, str(exc))
    return Check("bundle_object", True, f"{uri}: {len(body)} bytes, content hash {index['content_hash']} verified")


def state_table_checks(dynamodb: Any, template: Mapping[str, Any], created: Sequence[Mapping[str, Any]]) -> list[Check]:
    """One check per DynamoDB table in the stack's template (the instance's thread state), read back with boto3.
    It fails when the table is missing, not ACTIVE, or its keys or billing differ from the template; template
    settings moto does not apply (its CloudFormation ignores TimeToLiveSpecification and point-in-time recovery)
    are named in the detail instead of pretended. A stack whose template has no table gets no check."""
    physical = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in created}
    checks = []
    for logical_id, resource in sorted((template.get("Resources") or {}).items()):
        if resource.get("Type") != "AWS::DynamoDB::Table":
            continue
        name = physical.get(logical_id)
        if not name:
            checks.append(Check("state_table", False, f"{logical_id}: in the template, but no table was created"))
            continue
        checks.append(_check_state_table(dynamodb, str(name), resource.get("Properties") or {}))
    return checks


def _check_state_table(dynamodb: Any, name: str, wanted: Mapping[str, Any]) -> Check:
    from botocore.exceptions import ClientError

    try:
        table = dynamodb.describe_table(TableName=name)["Table"]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        tags = {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]}
    except ClientError as exc:
        return Check("state_table", False, f"{name}: {exc.response['Error'].get('Code', exc)}")
    billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    keys = [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in table["KeySchema"]]
    problems = [
        *([] if table["TableStatus"] == "ACTIVE" else [f"status {table['TableStatus']}"]),
        *([] if billing == wanted.get("BillingMode", "PROVISIONED") else [f"billing {billing}"]),
        *([] if keys == wanted.get("KeySchema") else [f"keys {keys}"]),
    ]
    ttl_wanted = wanted.get("TimeToLiveSpecification") or {}
    ttl_on = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName") == ttl_wanted.get(
        "AttributeName"
    )
    pitr_wanted = bool((wanted.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled"))
    pitr_on = (backups.get("PointInTimeRecoveryDescription") or {}).get("PointInTimeRecoveryStatus") == "ENABLED"
    not_applied = [
        *([f"TTL on {ttl_wanted.get('AttributeName')}"] if ttl_wanted.get("Enabled") and not ttl_on else []),
        *(["point-in-time recovery"] if pitr_wanted and not pitr_on else []),
    ]
    detail = (
        f"{name}: {table['TableStatus']}, {billing}, {table.get('ItemCount', 0)} item(s), "
        f"TTL {ttl.get('AttributeName', '-')} {ttl.get('TimeToLiveStatus', 'DISABLED')}, "
        f"point-in-time recovery {'on' if pitr_on else 'off'}"
        + (f"; in the template but not applied by moto: {', '.join(not_applied)}" if not_applied else "")
        + (f"; problems: {', '.join(problems)}" if problems else "")
    )
    data = {"table": name, "state_url": f"dynamodb://{name}", "tags": tags, "not_applied_by_moto": not_applied}
    return Check("state_table", not problems, detail, data)


# --- small edges -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) counts as stopped
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_our_server(pid: int) -> bool:
    """Only a live process whose command line is moto's server counts: never signal a recycled pid."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return MOTO_SERVER_MODULE.encode() in cmdline


def _wait_until_serving(state: ServerState, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-10:]
            raise LocalAwsError(f"moto's server exited (code {process.returncode}):\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(f"{state.endpoint}/moto-api/data.json", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise LocalAwsError(f"moto's server did not answer on {state.endpoint} within {START_TIMEOUT_S:.0f}s")


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _aws_env(env: Mapping[str, str]) -> Iterator[None]:
    """boto3 reads endpoint and credentials from the environment; set them for the read-back only."""
    keys = {k for k in os.environ if k.startswith("AWS_")} | {k for k in env if k.startswith("AWS_")}
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for k in keys:
            os.environ.pop(k, None)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --- CLI -------------------------------------------------------------------------------------------------------


def print_status(result: Mapping[str, Any]) -> None:
    print(f"local AWS {result['endpoint']}  environment {result['environment']}  account {result['account']}")
    for instance in result["instances"]:
        print(f"\n{'ok  ' if instance['ok'] else 'FAIL'} {instance['instance']}  ({instance['stack']})")
        for check in instance["checks"]:
            print(f"  {'ok  ' if check['ok'] else 'FAIL'} {check['name']:<15} {check['detail']}")
    print("\nNot modelled by moto (in the template, but moto's CloudFormation created nothing for them):")
    for stack, resources in result["not_modelled"].items():
        shown = ", ".join(f"{r['logical_id']} ({r['type']})" for r in resources) or "(none)"
        print(f"  {stack}: {shown}")
    print("\nModelled as records only:")
    for line in result["inert_by_design"]:
        print(f"  - {line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m foundry.local.aws", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "deploy", "status", "env", "down"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="default: .local-aws/")
    parser.add_argument("--agents-dir", type=Path, default=DEFAULT_AGENTS_DIR, help="default: agents/")
    parser.add_argument("--port", type=int, default=0, help="up: port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--environment", default=DEFAULT_ENVIRONMENT, help="up: the environment to host (dev)")
    parser.add_argument(
        "--runtime-image",
        help="deploy: image URI, never built or pulled (default: <account>.dkr.ecr.<region>.amazonaws.com/"
        f"{LOCAL_IMAGE_REPOSITORY_TAG})",
    )
    parser.add_argument(
        "--platform-only", action="store_true", help="deploy: the platform stack only (then `foundry rollout`)"
    )
    parser.add_argument("--json", action="store_true", help="status: machine-readable")
    args = parser.parse_args(argv)
    local = LocalAws(state_dir=args.state_dir.resolve(), agents_dir=args.agents_dir.resolve())
    try:
        if args.command == "up":
            state = local.up(port=args.port, environment=args.environment)
            print(f"local AWS running on {state.endpoint} (pid {state.pid}, account {state.account}, {state.region})")
            print(f"logs: {local.log_file}; next: ./dev local-aws deploy")
        elif args.command == "deploy":
            stacks = local.deploy(runtime_image=args.runtime_image, platform_only=args.platform_only)
            print(f"deployed {len(stacks)} stacks: {' '.join(stacks)} (cdk log: {local.state_dir / 'cdk.log'})")
            if args.platform_only:
                return 0
            result = local.status()
            print_status(result)
            return 0 if result["ok"] else 1
        elif args.command == "status":
            result = local.status()
            if args.json:
                print(json.dumps(result, indent=2))
            else:
                print_status(result)
            return 0 if result["ok"] else 1
        elif args.command == "env":
            for key, value in sorted(aws_environment(local.running(), base={}).items()):
                print(f"export {key}={value}")
        elif args.command == "down":
            print("stopped the local AWS" if local.down() else "the local AWS was not running; cleaned up")
    except (LocalAwsError, ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
