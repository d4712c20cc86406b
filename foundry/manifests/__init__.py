"""The files people write in `agents/`: their schema, loading with every problem named, secret scanning, and
resolution of environment manifest + instance template into one instance manifest per (org, domain, instance).

Pure (no AWS, no CDK, no subprocess). May import `foundry.files` and `instance_contract`.
"""
