"""The change plan: which instances a change adds, changes, removes or leaves alone, per environment, and why
(`python -m foundry plan`), from two git revisions' fleets and, on request, their synthesized templates.

May import `foundry.files`, `foundry.manifests`, `foundry.fleet`, `foundry.bundles` and `foundry.cdk`.
"""
