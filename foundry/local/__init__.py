"""A local AWS for developers (`./dev local-aws`, `aws`): moto's server on 127.0.0.1 (`server`), made to behave like
AWS where the stacks need it (`moto`, `moto_models`), the real CDK CLI deploying an environment to it (through
`foundry.cdk`), and the read-back that says what was deployed and what moto did not model (`readback`).

A developer tool, apart from the control plane: nothing in `foundry` imports it.
"""
