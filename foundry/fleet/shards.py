"""Which synth shard an instance stack belongs to: rendezvous (highest-random-weight) hashing of its stack name.

The key is the stack name alone, so a stack's shard never depends on which other instances exist: adding or removing
an instance never moves another one to another shard (and changing the shard count moves only about 1/N of them).
The hash is SHA-256, not Python's `hash()`, so every process and machine agrees.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PLATFORM = "platform"
"""`-c shard=platform`: only the platform stacks (synthesized once, beside the instance shards)."""
_SHARD = re.compile(r"^(?P<index>\d+)/(?P<count>\d+)$")


def shard_of(stack_name: str, shards: int) -> int:
    """The shard (0 .. shards-1) of an instance stack: the one whose weight for this stack is highest."""
    if shards < 1:
        raise ValueError(f"the shard count must be at least 1, not {shards}")

    def weight(shard: int) -> bytes:
        return hashlib.sha256(f"{shard}\0{stack_name}".encode()).digest()

    return max(range(shards), key=weight)


@dataclass(frozen=True)
class ShardSelection:
    """What one synth process builds: the platform stacks only (`index` None), or the instance stacks of shard
    `index` of `count` without the platform stacks."""

    index: int | None
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSelection:
        """`platform` or `K/N` (0 <= K < N), as `-c shard=` gives it."""
        if text == PLATFORM:
            return cls(index=None, count=1)
        match = _SHARD.match(text)
        if not match or not 0 <= int(match["index"]) < int(match["count"]):
            raise ValueError(f"-c shard={text!r}: expected 'platform' or K/N with 0 <= K < N (e.g. 0/4)")
        return cls(index=int(match["index"]), count=int(match["count"]))

    @property
    def platform(self) -> bool:
        return self.index is None

    def holds(self, stack_name: str) -> bool:
        """Whether this shard builds the instance stack `stack_name`."""
        return self.index is not None and shard_of(stack_name, self.count) == self.index

    def __str__(self) -> str:
        return PLATFORM if self.index is None else f"{self.index}/{self.count}"
