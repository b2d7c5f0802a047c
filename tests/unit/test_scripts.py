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
