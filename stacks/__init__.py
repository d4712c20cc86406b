"""CDK stacks: deployment units that compose the constructs in `constructs/`."""
