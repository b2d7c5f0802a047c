"""Each role's argument spec, defaults and README tell the same story."""

import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())


def spec_options(role: str) -> dict:
    spec = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def test_there_are_roles():
    assert "prefect_host" in ROLES


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_list_the_same_variables(role):
    defaults_file = REPO / "roles" / role / "defaults/main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    options = spec_options(role)
    assert sorted(defaults or {}) == sorted(
        name for name, o in options.items() if not o.get("required")
    )


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_prefixed_typed_and_described(role):
    for name, option in spec_options(role).items():
        assert name.startswith(f"{role}_"), name
        assert option.get("type"), f"{name} has no type"
        assert option.get("description"), f"{name} has no description"
        if option["type"] == "list":
            assert option.get("elements"), f"{name} is a list without elements"


@pytest.mark.parametrize("role", ROLES)
def test_main_only_includes_task_files(role):
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks/main.yml").read_text())
    allowed = {"preflight.yml", "install.yml", "configure.yml", "service.yml", "remove.yml"}
    for task in tasks:
        include = task.get("ansible.builtin.include_tasks") or task.get("ansible.builtin.import_tasks")
        assert include, f"{role}/tasks/main.yml does more than include: {task.get('name')}"
        file = include["file"] if isinstance(include, dict) else include
        assert file in allowed


def test_role_readmes_match_their_specs():
    result = subprocess.run([str(REPO / "scripts/role-docs"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
