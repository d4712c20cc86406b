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
really created and lists the rest as "not modelled" (`foundry.local.readback`); the real templates are never
changed for it. The server's process is `foundry.local.server`; cdk runs through `foundry.cdk`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from foundry.cdk.cli import CdkCli
from foundry.cdk.process import ProcessRunner, run_blocking, tool_environment
from foundry.deploy.image_reference import ecr_registry
from foundry.files.repo import REPO_ROOT
from foundry.fleet.load import DEFAULT_AGENTS_DIR, load_fleet
from foundry.local.readback import read_back
from foundry.local.server import (
    LocalAwsError,
    ServerState,
    aws_environment,
    free_port,
    is_our_server,
    spawn_server,
    stop_server,
    using_aws_environment,
    wait_until_serving,
)
from foundry.manifests.naming import platform_stack_name
from foundry.manifests.problems import ManifestError

DEFAULT_STATE_DIR = REPO_ROOT / ".local-aws"
DEFAULT_ENVIRONMENT = "dev"
LOCAL_IMAGE_REPOSITORY_TAG = "agent-runtime:local"
"""No Docker engine is needed: the image is referenced by URI in the environment's own ECR registry (the repositories
the Foundry MCP server allows by default), never built, pushed or pulled (moto runs no task)."""
CDK_TIMEOUT_S = 1800
CDK_LOG_TAIL_LINES = 25


def default_runtime_image(account: str, region: str) -> str:
    return f"{ecr_registry(account, region)}/{LOCAL_IMAGE_REPOSITORY_TAG}"


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
        if state is None or not is_our_server(state.pid):
            raise LocalAwsError(f"the local AWS is not running (no live server in {self.state_dir}); run `up` first")
        return state

    def up(self, *, port: int = 0, environment: str = DEFAULT_ENVIRONMENT) -> ServerState:
        existing = self.read_state()
        if existing is not None and is_our_server(existing.pid):
            raise LocalAwsError(
                f"the local AWS is already running on {existing.endpoint} (pid {existing.pid}); "
                "run `down` first to start a fresh one"
            )
        settings = self._settings(environment)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.unlink(missing_ok=True)
        port = port or free_port()
        process = spawn_server(state_dir=self.state_dir, log_file=self.log_file, port=port, account=settings.account)
        state = ServerState(process.pid, port, settings.account, settings.region, environment)
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        try:
            wait_until_serving(state, process, self.log_file)
        except BaseException:
            self.down()
            raise
        return state

    def down(self) -> bool:
        """Stops the server this state dir started (and only it) and removes the state dir. True if one ran."""
        state = self.read_state()
        stopped = False
        if state is not None and is_our_server(state.pid):
            stop_server(state.pid)
            stopped = True
        shutil.rmtree(self.state_dir, ignore_errors=True)
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
        cdk = CdkCli.of_repo(self.repo_root)
        env = tool_environment(self.repo_root, aws_environment(state))
        # Bootstrapping from the state dir: no cdk.json there, so the CLI does not synthesize the app for it.
        self._run(cdk.bootstrap(account=state.account, region=state.region), self.state_dir, env)
        context = {
            "agentsDir": str(self.agents_dir.resolve()),
            "environment": state.environment,
            "runtimeImage": runtime_image,
        }
        argv = cdk.deploy_app(
            stacks,
            context=context,
            output=self.state_dir / "cdk.out",
            outputs_file=self.state_dir / "outputs.json",
            method="direct",
            concurrency=concurrency,
        )
        self._run(argv, self.repo_root, env)
        return stacks

    def _run(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        """Runs one cdk command, its output appended to the state dir's cdk.log."""
        log_path = self.state_dir / "cdk.log"
        with log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
            log.flush()
            done = run_blocking(
                ProcessRunner(cwd=cwd, env=env),
                argv,
                timeout_seconds=self.cdk_timeout_s,
                on_line=lambda line: log.write(f"{line}\n".encode()),
            )
        if done.timed_out:
            raise LocalAwsError(f"`{argv[1]}` took longer than {self.cdk_timeout_s}s; see {log_path}")
        if done.exit_code != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-CDK_LOG_TAIL_LINES:]
            raise LocalAwsError(
                f"`cdk {argv[1]}` failed (exit {done.exit_code}); last lines of {log_path}:\n" + "\n".join(tail)
            )

    # --- read back -------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        state = self.running()
        with using_aws_environment(aws_environment(state)):
            return read_back(self.agents_dir, state)


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
        return _command(args, local)
    except (LocalAwsError, ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _command(args: argparse.Namespace, local: LocalAws) -> int:
    """Runs one subcommand; 0 done (and every instance read back ok), 1 a read-back check failed."""
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
