"""File formats the Foundry reads and writes: strict YAML in, deterministic YAML out, atomic writes.

The floor of the package: imports nothing of `foundry`.
"""
