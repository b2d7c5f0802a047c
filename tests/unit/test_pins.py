"""The pinned Python sets agree with each other and with what is installed."""

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts/lib"))

import prefect_versions  # noqa: E402


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if m:
            found[re.sub(r"\[.*\]", "", m.group(1)).lower().replace("_", "-")] = m.group(2)
    return found


def test_the_default_prefect_is_3_9_1_and_3_8_8_stays_supported():
    assert prefect_versions.default() == "3.9.1"
    assert prefect_versions.supported() == ["3.9.1", "3.8.8"]


def test_requirements_follow_the_default_prefects_constraints():
    lock = pins(REPO / "requirements.txt")
    constraints = pins(prefect_versions.constraints(prefect_versions.default()))
    assert constraints["prefect"] == lock["prefect"] == prefect_versions.default()
    differing = {k: (v, lock.get(k)) for k, v in constraints.items() if k in lock and lock[k] != v}
    assert differing == {}


@pytest.mark.parametrize("version", prefect_versions.supported())
def test_each_constraints_file_pins_its_prefect(version):
    assert pins(prefect_versions.constraints(version))["prefect"] == version


def test_control_node_uses_ansible_core_2_19():
    assert pins(REPO / "requirements.txt")["ansible-core"].startswith("2.19.")


def test_installed_environment_matches_the_lock():
    lock = pins(REPO / "requirements.txt")
    wrong = {}
    for name in ("ansible-core", "ansible", "molecule", "prefect", "fastapi", "pydantic"):
        have = importlib.metadata.version(name)
        if have != lock[name]:
            wrong[name] = (have, lock[name])
    assert wrong == {}, "run scripts/bootstrap"
