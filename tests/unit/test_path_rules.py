"""One rule for the paths of the kit's tree: the roles' preflight (the filter
prefect_fleet.fleet.path_problem, used by prefect_host and prefect_cleanup) and the host
command prefect-cleanup (standard library only, its own copy of the list) accept and
refuse the same roots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collection_helpers import REPO, collection_module, host_command  # noqa: E402

paths = collection_module("plugins.filter.paths")
COMMAND = REPO / "roles/prefect_cleanup/files/prefect-cleanup"


@pytest.fixture
def tree(tmp_path) -> Path:
    """A kit tree prefect-cleanup agrees to clean (it refuses a directory without one)."""
    root = tmp_path / "prefect"
    for name in ("runs", "mirrors", "envs", "locks", "tmp"):
        (root / name).mkdir(parents=True)
    return root


def command_accepts(root: str, tmp_path: Path) -> bool:
    config = tmp_path / "cleanup.json"
    config.write_text(json.dumps({"root": root, "log": None}))
    proc = subprocess.run([sys.executable, str(COMMAND), "--config", str(config), "--dry-run"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode in (0, 2), proc.stderr
    return proc.returncode == 0


# The table: a root (TREE stands for a real kit tree) and whether the kit may own it.
CASES = [
    ("TREE", True),
    ("TREE/", True),
    ("/", False),
    ("/etc", False),
    ("/etc/", False),
    ("/usr/local", False),
    ("/var/lib//", False),
    ("/srv", False),
    ("/lib", False),  # a link to usr/lib on a merged /usr: refused by its name too
    ("TREE/../prefect", False),
    ("TREE/./", False),
    ("relative/prefect", False),
]


@pytest.mark.parametrize("root, allowed", CASES, ids=[c[0] for c in CASES])
def test_role_and_command_accept_and_refuse_the_same_roots(root, allowed, tree, tmp_path):
    root = root.replace("TREE", str(tree))
    problem = paths.path_problem(root)
    assert (problem == "") is allowed, problem
    assert command_accepts(root, tmp_path) is allowed


def test_both_hold_the_same_list_of_system_directories():
    assert set(paths.SYSTEM_DIRECTORIES) == host_command(COMMAND, "prefect_cleanup_command").FORBIDDEN_ROOTS


@pytest.mark.parametrize("value, says", [
    ("srv/prefect", "must be an absolute path, got 'srv/prefect'"),
    ("/srv/x/../../etc", "must not have '.' or '..' parts"),
    ("/etc/", "must not be a system directory (/, /bin, "),
    (None, "must be a path (a string)"),
    (750, "must be a path (a string), got 750"),
])
def test_the_message_says_what_is_wrong(value, says):
    assert says in paths.path_problem(value)
