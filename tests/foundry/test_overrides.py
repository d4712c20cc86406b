"""The template's scoped settings, instance by instance: deploy sizing and external MCP servers follow the same
override rule (defaults, then every matching override in file order, later ones winning)."""

from __future__ import annotations

from foundry.manifests.overrides import deploy_for, instance_mcp, mcp_servers_for
from foundry.manifests.schema import InstanceKey, TemplateDeploy, TemplateMcp

ACME_DEV = InstanceKey("acme", "retail", "dev")
GLOBEX_DEV = InstanceKey("globex", "billing", "dev")


def test_an_instance_no_override_matches_gets_the_default_sizing() -> None:
    deploy = TemplateDeploy.model_validate({"overrides": [{"organization_id": "acme", "min_tasks": 2}]})
    assert deploy_for(deploy, "dev", GLOBEX_DEV) == deploy.defaults


def test_later_matching_deploy_overrides_win_and_fields_left_out_keep_the_default() -> None:
    deploy = TemplateDeploy.model_validate(
        {
            "overrides": [
                {"environment": "dev", "cpu": 512, "memory": 1024, "max_tasks": 4},
                {"organization_id": "acme", "max_tasks": 6},
                {"environment": "prod", "max_tasks": 9},
            ]
        }
    )
    sizing = deploy_for(deploy, "dev", ACME_DEV)
    assert (sizing.cpu, sizing.memory, sizing.max_tasks) == (512, 1024, 6)
    assert sizing.min_tasks == deploy.defaults.min_tasks


ACME_TICKETING = TemplateMcp.model_validate(
    {
        "servers": [
            {"name": "ticketing", "url": "https://tickets.example.com/mcp"},
            {"name": "wiki", "url": "https://wiki.example.com/mcp"},
        ],
        "server_overrides": [
            {"organization_id": "acme", "servers": [{"name": "ticketing", "url": "https://acme.example.com/mcp"}]}
        ],
    }
)


def test_an_override_server_replaces_the_template_server_of_its_name_in_place_and_points_at_the_override() -> None:
    chosen = mcp_servers_for(ACME_TICKETING, "dev", ACME_DEV)
    assert [(server.name, server.url) for server, _ in chosen] == [
        ("ticketing", "https://acme.example.com/mcp"),
        ("wiki", "https://wiki.example.com/mcp"),
    ]
    assert chosen[0][1] == ("spec", "mcp", "server_overrides", 0, "servers", 0)


def test_an_instance_of_another_organization_keeps_the_template_servers_where_they_were_declared() -> None:
    chosen = mcp_servers_for(ACME_TICKETING, "dev", GLOBEX_DEV)
    assert [(server.url, loc) for server, loc in chosen] == [
        ("https://tickets.example.com/mcp", ("spec", "mcp", "servers", 0)),
        ("https://wiki.example.com/mcp", ("spec", "mcp", "servers", 1)),
    ]


def test_the_instance_mcp_settings_are_the_templates_with_the_instances_own_servers() -> None:
    mcp = TemplateMcp.model_validate(
        {
            "max_history_messages": 7,
            "servers": [{"name": "wiki", "url": "https://wiki.example.com/mcp"}],
            "server_overrides": [{"servers": [{"name": "crm", "url": "https://crm.example.com/mcp"}]}],
        }
    )
    config = instance_mcp(mcp, [server for server, _ in mcp_servers_for(mcp, "dev", ACME_DEV)])
    assert config.max_history_messages == 7
    assert [server.name for server in config.servers] == ["wiki", "crm"]
    assert "server_overrides" not in config.model_dump()
