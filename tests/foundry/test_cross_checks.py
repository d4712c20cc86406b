"""The rules that span files, one check at a time, on the example tree's own documents."""

from __future__ import annotations

from foundry.manifests.cross_checks import KnownNames, binding_problems, name_problems
from foundry.manifests.loader import AgentsTree, read_tree
from tests.conftest import AGENTS_DIR


def _tree() -> AgentsTree:
    tree, problems = read_tree(AGENTS_DIR)
    assert tree is not None and not problems, problems
    return tree


def test_the_first_entry_to_name_an_organization_sets_its_name_for_every_later_entry() -> None:
    source = _tree().environments["dev"]
    known: KnownNames = {}
    assert name_problems(source, 0, known) == []
    assert known[("organization", "default-org")] == ("Default Organization", f"{source.file} entry 0 (io-agent)")


def test_an_organization_named_otherwise_than_before_is_refused_naming_where_it_was_first_named() -> None:
    source = _tree().environments["dev"]
    known: KnownNames = {("organization", "default-org"): ("Default Org Inc", "manifest.prod.yaml entry 4 (io-agent)")}
    (problem,) = name_problems(source, 0, known)
    assert problem.field == "spec.entries[0].organization_name"
    assert "'Default Organization' here but 'Default Org Inc' in manifest.prod.yaml entry 4" in problem.message


def test_a_system_agent_entry_the_template_does_not_know_is_refused_with_the_template_system_agents() -> None:
    tree = _tree()
    source = tree.environments["dev"]
    spec = tree.specs[source.model.spec.entries[0].yaml_path]
    (problem,) = binding_problems(source, 0, spec, {"supervisor-agent": "supervisor"}, set())
    assert problem.field == "spec.entries[0].agent_id"
    assert problem.message.endswith("is not one of the template's system agents (supervisor-agent)")
