"""A local AWS for developers (`./dev local-aws`): moto's server on 127.0.0.1, made to behave like AWS where the
stacks need it, and the real CDK CLI deploying an environment to it.

A developer tool, apart from the control plane: nothing in `foundry` imports it.
"""
