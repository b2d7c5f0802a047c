"""The pinned Python sets agree with each other and with what is installed."""

import importlib.metadata
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if m:
            found[re.sub(r"\[.*\]", "", m.group(1)).lower().replace("_", "-")] = m.group(2)
    return found


def test_requirements_follow_the_prefect_constraints():
    lock = pins(REPO / "requirements.txt")
    constraints = pins(REPO / "constraints/prefect-3.8.8.txt")
    assert constraints["prefect"] == "3.8.8"
    differing = {k: (v, lock.get(k)) for k, v in constraints.items() if k in lock and lock[k] != v}
    assert differing == {}


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
