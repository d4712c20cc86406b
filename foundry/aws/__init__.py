"""Reading AWS: one boto3 client factory (`clients`), what CloudFormation says of a stack (`cloudformation`: exists,
status, deployed template, the first failed resource), and what CloudFormation, ECS and the load balancer say of an
instance (with its own MCP endpoint's answer) folded into one verdict (`instance_status`). Never writes to AWS.

May import `foundry.manifests`.
"""
