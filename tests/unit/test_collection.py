"""The kit as the installable collection prefect_fleet.fleet: the tarball that
`ansible-galaxy collection build` makes holds the content and nothing else, and once
installed it works on its own, by fully qualified names, without the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
MODULES = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py"))
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))


def run(*cmd: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, cwd=cwd,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    run("ansible-galaxy", "collection", "build", "--output-path", str(out), str(REPO))
    (path,) = out.glob("*.tar.gz")
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory) -> dict[str, str]:
    """The environment of an Ansible that knows the collection only as installed from the
    tarball: its own collections path, an empty ansible.cfg, and run outside the checkout."""
    home = tmp_path_factory.mktemp("installed")
    collections = home / "collections"
    (home / "ansible.cfg").write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(home / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(collections),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(home / "tmp"), HOME=str(home))
    # --no-deps: community.general comes with the `ansible` package here; Galaxy is not asked.
    run("ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", str(collections),
        str(tarball), env=env, cwd=home)
    return env


def test_galaxy_metadata_names_the_collection_and_what_it_needs():
    assert (GALAXY["namespace"], GALAXY["name"]) == ("prefect_fleet", "fleet")
    assert "community.general" in GALAXY["dependencies"]  # prefect_git_mirror's git_config
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=")


def test_the_tarball_holds_the_content_and_not_the_tooling(tarball):
    assert tarball.name == f"prefect_fleet-fleet-{GALAXY['version']}.tar.gz"
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    tops = {n.split("/")[0] for n in names}
    assert {"MANIFEST.json", "FILES.json", "README.md", "meta", "plugins", "roles", "playbooks"} <= tops
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert "plugins/module_utils/prefect_api.py" in names
    assert "plugins/doc_fragments/prefect_api.py" in names
    for role in ROLES:
        assert f"roles/{role}/tasks/main.yml" in names and f"roles/{role}/meta/argument_specs.yml" in names
    assert not tops & {"scripts", "molecule", "tests", "inventories", "examples", "constraints", ".cache",
                       ".venv", ".git", ".ci", "ansible.cfg", "requirements.txt"}


def test_ansible_doc_shows_every_module_from_the_installed_copy(installed):
    shown = json.loads(run("ansible-doc", "--json", "-t", "module",
                           *(f"prefect_fleet.fleet.{m}" for m in MODULES), env=installed,
                           cwd=Path(installed["HOME"])).stdout)
    assert sorted(shown) == [f"prefect_fleet.fleet.{m}" for m in MODULES]
    for name, entry in shown.items():
        doc = entry["doc"]
        assert doc["filename"].startswith(installed["ANSIBLE_COLLECTIONS_PATH"]), name
        # The shared API options come from the doc fragment.
        assert {"api_url", "api_key", "validate_certs", "timeout", "retries"} <= set(doc["options"]), name
        assert entry["examples"].strip() and entry["return"], name


def test_ansible_doc_shows_every_role_from_the_installed_copy(installed):
    shown = json.loads(run("ansible-doc", "--json", "-t", "role", *(f"prefect_fleet.fleet.{r}" for r in ROLES),
                           env=installed, cwd=Path(installed["HOME"])).stdout)
    assert sorted(shown) == [f"prefect_fleet.fleet.{r}" for r in ROLES]
    for name, entry in shown.items():
        assert entry["entry_points"]["main"]["options"], name


def test_every_playbook_runs_by_its_full_name_from_the_installed_copy(installed):
    """`ansible-playbook prefect_fleet.fleet.NAME --syntax-check`: each playbook, its imports,
    roles and modules resolve from the installed collection alone."""
    home = Path(installed["HOME"])
    out = run("ansible-playbook", "-i", "localhost,", "--syntax-check",
              *(f"prefect_fleet.fleet.{p}" for p in PLAYBOOKS), env=installed, cwd=home)
    assert "ERROR" not in out.stdout + out.stderr
