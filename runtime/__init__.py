"""The instance runtime (data plane): one image, configured by a bundle, serving one instance's MCP endpoint.

It imports nothing of the control plane: the bundle format and the models it reads come from the shared
`instance_contract` package, so a change to the Foundry never changes what runs in a tenant's container.
"""
