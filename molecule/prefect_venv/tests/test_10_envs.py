"""The converged environments: built offline, smoke-tested, switched, owned right."""

import json
from pathlib import Path

import pytest

ENVS = "/srv/prefect/envs"
REPO = Path(__file__).resolve().parents[3]


def manifest(host, env):
    return json.loads(host.file(f"{ENVS}/{env}/current/prefect-fleet.json").content_string)


# flows names no Prefect: it gets prefect_venv_prefect_version; legacy names 3.8.8.
VERSIONS = {"flows": "3.9.1", "legacy": "3.8.8"}


@pytest.mark.parametrize("env,installer", [("flows", "uv"), ("legacy", "pip")])
def test_current_points_at_a_complete_generation(host, env, installer):
    link = host.file(f"{ENVS}/{env}/current")
    assert link.is_symlink
    generation = link.linked_to.rsplit("/", 1)[-1]
    data = manifest(host, env)
    assert data["generation"] == generation
    assert data["installer"] == installer
    assert data["offline"] is True
    assert data["prefect_version"] == VERSIONS[env]
    assert data["python_version"] == host.run("python3 -c 'import platform; print(platform.python_version())'").stdout.strip()


@pytest.mark.parametrize("env", ["flows", "legacy"])
def test_the_prefect_user_imports_prefect_from_current(host, env):
    result = host.run(
        "runuser -u prefect -- %s/%s/current/bin/python -c "
        "'import prefect, prefect.engine; print(prefect.__version__, prefect.__file__)'",
        ENVS, env,
    )
    assert result.rc == 0, result.stderr
    version, path = result.stdout.split()
    assert version == VERSIONS[env]
    assert path.startswith(f"{ENVS}/{env}/")


@pytest.mark.parametrize("env", ["flows", "legacy"])
def test_each_environment_has_the_kits_lock_of_its_prefect(host, env):
    """No constraints_file given: the build used constraints/prefect-VERSION.txt as it is."""
    lock = (REPO / f"constraints/prefect-{VERSIONS[env]}.txt").read_text().splitlines()
    used = host.file(f"{ENVS}/{env}/current/constraints.txt").content_string.splitlines()
    assert [line for line in lock if line and not line.startswith("#")] == \
        [line for line in used if line and not line.startswith("#")]
    fastapi = host.run("%s/%s/current/bin/python -c 'import fastapi; print(fastapi.__version__)'", ENVS, env)
    assert f"fastapi=={fastapi.stdout.strip()}" in lock


def test_ownership_and_modes(host):
    for env in ("flows", "legacy"):
        d = host.file(f"{ENVS}/{env}")
        assert (d.user, d.group, d.mode) == ("prefect", "prefect", 0o750)
        spec = host.file(f"{ENVS}/{env}/spec.json")
        assert (spec.user, spec.group, spec.mode) == ("root", "prefect", 0o640)
    command = host.file("/usr/local/bin/prefect-venv")
    assert (command.user, command.mode) == ("root", 0o755)


def test_env_record_for_cleanup(host):
    record = json.loads(host.file(f"{ENVS}/legacy/env.json").content_string)
    assert record["keep"] == 2
    assert record["current"] == manifest(host, "legacy")["generation"]


def test_no_installer_ran_against_an_index(host):
    # The build environment pointed every index and proxy at a closed port, so a
    # build that had tried the network would have failed; the wheelhouse is there.
    assert host.file("/srv/prefect/wheelhouse/.stamp").exists
    assert host.run("ls /srv/prefect/wheelhouse/*.whl | wc -l").stdout.strip() != "0"


def test_check_mode_on_a_converged_host_reports_no_change(run_playbook):
    """`--check --diff` is how users look for drift: on a converged host it must say
    nothing would change (the pip module used to claim a change of uv in check mode)."""
    result = run_playbook(Path(__file__).resolve().parents[1] / "converge.yml", check=True)
    assert result.rc == 0, result.output
    assert result.recap and all(r["changed"] == 0 for r in result.recap.values()), result.output[-3000:]
