"""Reading AWS: one boto3 client factory, and what CloudFormation, ECS and the load balancer say of an instance
(with its own MCP endpoint's answer) folded into one verdict. Never writes to AWS.

May import `foundry.manifests`.
"""
