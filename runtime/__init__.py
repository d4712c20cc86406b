"""The instance runtime (data plane): one image, configured by a bundle, serving one instance's MCP endpoint.

Nothing here imports aws-cdk-lib or the control plane's CLI; from `foundry` only the schema and the bundle
reader are used, so the image stays small and starts fast.
"""
