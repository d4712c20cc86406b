"""File formats the Foundry reads and writes: strict YAML in, deterministic YAML and JSON out, atomic
writes.

The floor of the package: imports nothing of `foundry`.
"""
