"""Every tag the READMEs of the converged roles document works alone on a converged
host: the scenario's converge playbook with `--tags TAG` runs the tagged tasks, succeeds,
and changes nothing (each role's own tag is the whole role, which idempotence covers).
The compat scenario runs these tests with its own converge (prefect_cleanup too)."""

import os
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CONVERGE = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).resolve().parents[1])) / "converge.yml"


def converged_roles(playbook: Path) -> list[str]:
    """The kit's roles a playbook applies, its imported playbooks included, in order."""
    roles = []
    for play in yaml.safe_load(playbook.read_text()):
        if "ansible.builtin.import_playbook" in play:
            roles += converged_roles(playbook.parent / play["ansible.builtin.import_playbook"])
        roles += [r["role"].removeprefix("prefect_fleet.fleet.") for r in play.get("roles", [])]
    return roles


def documented_tags(role: str) -> list[str]:
    readme = (REPO / "roles" / role / "README.md").read_text()
    section = readme.split("\n## Tags\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"`({role}_[a-z_]+)`", section)


ROLES = converged_roles(CONVERGE)
TAGS = [tag for role in ROLES for tag in documented_tags(role)]


def test_the_readmes_document_each_roles_tags():
    assert {"prefect_host", "prefect_venv", "prefect_git_mirror", "prefect_worker"} <= set(ROLES)
    for role in ROLES:
        assert {f"{role}_preflight", f"{role}_remove"} <= set(documented_tags(role)), role


@pytest.mark.parametrize("tag", TAGS)
def test_a_documented_tag_works_alone(run_playbook, tag):
    result = run_playbook(CONVERGE, args=("--tags", tag))
    assert result.rc == 0, result.output
    (recap,) = result.recap.values()
    assert recap["changed"] == 0, result.output
    assert recap["ok"] + recap["skipped"] > 0, f"--tags {tag} selected no task\n{result.output}"
