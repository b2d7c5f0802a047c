"""The Prefect releases the kit's host commands accept are the ones the role checks at converge
time, and both cover every release the kit pins (constraints/)."""

import ast
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts/lib"))

import prefect_versions  # noqa: E402

FILES = REPO / "roles/prefect_worker/files"
COMMANDS = ["prefect-worker-run", "prefect-launcher"]


def supported_in(command: str) -> tuple[str, ...]:
    tree = ast.parse((FILES / command).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SUPPORTED_PREFECT" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError(f"{command} has no SUPPORTED_PREFECT")


ROLE = tuple(yaml.safe_load((REPO / "roles/prefect_worker/vars/main.yml").read_text())
             ["__prefect_worker_supported_prefect"])


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_supports_what_the_role_checks(command):
    assert supported_in(command) == ROLE


@pytest.mark.parametrize("version", prefect_versions.supported())
def test_every_pinned_release_is_supported(version):
    assert ".".join(version.split(".")[:2]) in ROLE
