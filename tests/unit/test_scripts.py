"""The repository's own tooling: argument handling and refusals."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)


@pytest.mark.parametrize("os_id", ["fedora", "arch", "alpine"])
def test_bootstrap_refuses_an_unsupported_os_in_one_sentence(tmp_path, os_id):
    release = tmp_path / "os-release"
    release.write_text(f'ID={os_id}\nPRETTY_NAME="{os_id.title()} Linux"\n')
    result = run("scripts/bootstrap", env={"PATH": "/usr/bin:/bin", "PREFECT_FLEET_OS_RELEASE": str(release)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"unsupported operating system '{os_id.title()} Linux'" in lines[0]


def test_build_image_names_its_image():
    assert run("scripts/build-image", "--print-name").stdout.strip() == "localhost/prefect-fleet-host:bookworm"
    assert run("scripts/build-image", "--release", "trixie", "--print-name").stdout.strip() == "localhost/prefect-fleet-host:trixie"


def test_build_image_rejects_an_unknown_release():
    result = run("scripts/build-image", "--release", "buster")
    assert result.returncode == 2
    assert "bookworm or trixie" in result.stderr


def test_test_script_lists_the_molecule_scenarios():
    scenarios = run("scripts/test", "--list").stdout.split()
    assert "prefect_host" in scenarios
    assert scenarios == sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


def test_test_script_rejects_unknown_arguments():
    result = run("scripts/test", "--bogus")
    assert result.returncode == 2


def test_wheelhouse_rejects_an_unknown_release(tmp_path):
    result = run("scripts/wheelhouse", "--out", str(tmp_path / "w"), "--release", "buster")
    assert result.returncode == 2
    assert "bookworm or trixie" in result.stderr
    assert not (tmp_path / "w").exists()


def test_roles_claim_only_the_debian_releases_the_suite_converges():
    """meta/main.yml: a role lists the releases a scenario converges it on. The host roles
    run in the default cell (Debian 13) and in compat (Debian 12); prefect_work_pool runs on
    the control node (Debian 12 here)."""
    import yaml

    compat = (REPO / "molecule/compat/molecule.yml").read_text()
    assert "prefect-fleet-host:bookworm" in compat
    compat_roles = {role["role"].rsplit(".", 1)[1] for name in ("compat", "prefect_worker")
                    for play in yaml.safe_load((REPO / f"molecule/{name}/converge.yml").read_text())
                    for role in play.get("roles", [])}
    assert "prefect_worker" in compat_roles and "prefect_cleanup" in compat_roles
    for meta in sorted(REPO.glob("roles/*/meta/main.yml")):
        role = meta.parent.parent.name
        platforms = yaml.safe_load(meta.read_text())["galaxy_info"]["platforms"]
        want = ["bookworm"] if role == "prefect_work_pool" else \
            ["bookworm", "trixie"] if role in compat_roles else ["trixie"]
        assert platforms == [{"name": "Debian", "versions": want}], role
