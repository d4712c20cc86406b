"""CloudFormation pseudo parameters as CDK tokens, read once per process.

Reading `Aws.PARTITION` is a round trip to the jsii Node process (~0.5 ms); at 1,000 instance stacks the repeated
reads add up. The token is the same object for every stack (it resolves per stack at synth), so caching it is safe.
Where a property takes arbitrary JSON (policy documents), a plain intrinsic dict costs nothing at all.
"""

from __future__ import annotations

from functools import cache

from aws_cdk import Aws


@cache
def partition() -> str:
    """`Aws.PARTITION`; renders as a literal where the stack's region is known (enablePartitionLiterals)."""
    return Aws.PARTITION
