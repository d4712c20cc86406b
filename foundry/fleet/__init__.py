"""The fleet: every resolved instance of `agents/` (cached by content), selected by environment or instance, and
each instance's ALB slot (placement files and `python -m foundry place`).

May import `foundry.files` and `foundry.manifests`.
"""
