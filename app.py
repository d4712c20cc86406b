#!/usr/bin/env python3
"""The CDK app: `cdk synth` / `cdk diff` / `cdk deploy STACK` over the manifests in agents/ (see docs/cdk.md).

Context: -c agentsDir=PATH  -c environment=ENV  -c instance=ORG/DOMAIN/INSTANCE  -c runtimeImage=URI
"""

from __future__ import annotations

import sys

from aws_cdk import App

from foundry.manifests.problems import ManifestError
from stacks.fleet_app import FleetSelection, build_fleet


def main() -> int:
    app = App()
    try:
        build_fleet(app, FleetSelection.from_context(app))
    except (ManifestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
