"""One rule for an environment's requirement and constraint lines: the role's preflight
(the filter prefect_fleet.fleet.requirement_problems) and the host command prefect-venv
(standard library only, its own copy) accept and refuse the same lines, and a variable
allows installer options in both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collection_helpers import REPO, collection_module  # noqa: E402

rules = collection_module("plugins.filter.requirement_problems")
COMMAND = REPO / "roles/prefect_venv/files/prefect-venv"

# The table: a requirement line and whether it is a package (not an installer option).
LINES = [
    ("pandas==2.3.3", True),
    ("requests>=2.32; python_version >= '3.11'", True),
    ("prefect[redis]==3.9.1", True),
    ("six  # a comment", True),
    ("# --index-url in a comment", True),
    ("--index-url https://pypi.example.com/simple", False),
    ("--extra-index-url https://pypi.example.com/simple", False),
    ("  -e git+https://git.example.com/org/lib.git#egg=lib", False),
    ("-r /etc/other-requirements.txt", False),
    ("--trusted-host pypi.example.com", False),
]


def command_accepts(line: str, allow: bool, tmp_path: Path) -> bool:
    """prefect-venv build --check reads the spec first: exit 2 with 'installer options' is a refusal;
    any later failure (here: no uv at /nonexistent/uv) means the spec was accepted."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({
        "name": "flows", "env_dir": str(tmp_path / "envs/flows"), "locks_dir": str(tmp_path / "locks"),
        "python": sys.executable, "installer": "uv", "uv": "/nonexistent/uv", "requirements": [line],
        "constraints": [], "imports": [], "allow_installer_options": allow}))
    (tmp_path / "locks").mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, str(COMMAND), "build", "--spec", str(spec), "--check"],
                          capture_output=True, text=True, check=False)
    return "installer options" not in proc.stderr


@pytest.mark.parametrize("line, package", LINES, ids=[l for l, _ in LINES])
def test_role_and_command_accept_and_refuse_the_same_lines(line, package, tmp_path):
    assert (rules.requirement_problems([line]) == []) is package
    assert command_accepts(line, False, tmp_path) is package
    # allowed, both accept every line
    assert rules.requirement_problems([line], allow_options=True) == []
    assert command_accepts(line, True, tmp_path)


def test_the_message_names_the_options_and_the_variable():
    problems = rules.requirement_problems(["pandas", "--index-url https://x/simple"])
    assert problems and "['--index-url https://x/simple']" in problems[0]
    assert "prefect_venv_allow_installer_options" in problems[0]
    assert rules.requirement_problems("pandas") == ["must be a list of lines, got str"]
