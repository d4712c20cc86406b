"""Fleet rollouts: waves (canary, growth factor), bounded concurrency, a bake gate, resumable state, the one cloud
assembly every deploy of a rollout uses, the simulator, reports, and `python -m foundry rollout`.

May import everything below it (manifests, fleet, cdk, state, aws, deploy, plan, synth); nothing below imports it.
"""
