"""Which of an instance's secrets CloudFormation could not create: the pure verdict of foundry.deploy.secret_names.
The refusal through `foundry.deploy_instance` on the local AWS: tests/mcp/test_foundry_mcp_deploy_lifecycle.py."""

from __future__ import annotations

import datetime

from foundry.deploy.secret_names import FoundSecret, secret_conflicts, template_secret_names

STACK = "af-dev-acme-retail-dev"
TOKEN = "agentfoundry/dev/acme/retail/dev/ticket-api-token"
KEY = "agentfoundry/dev/acme/retail/dev/crm-key"
SECRETS = {"SecretsTicketApiToken1A2B3C4D": TOKEN, "SecretsCrmKey5E6F7A8B": KEY}


def arn(name: str, suffix: str = "AbCdEf") -> str:
    return f"arn:aws:secretsmanager:us-east-1:111111111111:secret:{name}-{suffix}"


def test_the_template_names_the_secrets_it_creates_with_a_literal_name() -> None:
    template = {
        "Resources": {
            "SecretsTicketApiToken1A2B3C4D": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": TOKEN}},
            "Generated": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},  # CloudFormation names it
            "Tokenised": {
                "Type": "AWS::SecretsManager::Secret",
                "Properties": {"Name": {"Fn::Sub": "x-${AWS::Region}"}},
            },
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {"Name": TOKEN}},
        }
    }
    assert template_secret_names(template) == {"SecretsTicketApiToken1A2B3C4D": TOKEN}
    assert template_secret_names({}) == {}


def test_free_names_and_the_stacks_own_secrets_are_no_conflict() -> None:
    found = {TOKEN: FoundSecret(arn=arn(TOKEN), deletion_date=None)}
    assert secret_conflicts(SECRETS, {}, set(), stack=STACK, region="us-east-1") == []
    assert secret_conflicts(SECRETS, found, {arn(TOKEN)}, stack=STACK, region="us-east-1") == []


def test_a_name_held_by_a_secret_scheduled_for_deletion_names_the_date_and_the_command_that_frees_it() -> None:
    when = datetime.datetime(2026, 12, 10, 9, 30, tzinfo=datetime.UTC)
    found = {TOKEN: FoundSecret(arn=arn(TOKEN), deletion_date=when)}
    [conflict] = secret_conflicts(SECRETS, found, set(), stack=STACK, region="eu-west-1")
    assert (conflict.logical_id, conflict.name) == ("SecretsTicketApiToken1A2B3C4D", TOKEN)
    assert conflict.problem.startswith(
        f"the secret {TOKEN} (SecretsTicketApiToken1A2B3C4D) cannot be created: a secret of that name is scheduled "
        "for deletion on 2026-12-10"
    )
    assert (
        f"`aws secretsmanager delete-secret --region eu-west-1 --secret-id {TOKEN} --force-delete-without-recovery`"
        in conflict.problem
    )


def test_a_name_held_outside_the_stack_is_a_conflict_even_when_the_stack_owns_another_secret_of_that_name() -> None:
    """The stack's own secret was replaced by hand (another ARN): CloudFormation cannot create it either."""
    found = {
        KEY: FoundSecret(arn=arn(KEY, "Other1"), deletion_date=None),
        TOKEN: FoundSecret(arn=arn(TOKEN), deletion_date=None),
    }
    conflicts = secret_conflicts(SECRETS, found, {arn(TOKEN), arn(KEY)}, stack=STACK, region="us-east-1")
    assert [c.name for c in conflicts] == [KEY]
    assert f"exists outside the stack {STACK} ({arn(KEY, 'Other1')})" in conflicts[0].problem
