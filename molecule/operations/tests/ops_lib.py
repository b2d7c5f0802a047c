"""Helpers of the operations scenario's tests (the tests run in file order)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import testinfra

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
STATE = REPO / ".cache/operations"
HOSTS = ("ops-1", "ops-2")
ENV_DIR = "/srv/prefect/envs/flows"
sys.path.insert(0, str(REPO / "molecule"))
sys.path.insert(0, str(REPO / "molecule/operations"))

import prefect_versions  # noqa: E402
from ops import queue  # noqa: E402,F401
from prefect_api import FINAL_STATES, api, not_completed, runs, wait_final, wait_for_log, wait_running  # noqa: E402,F401


def hosts() -> dict:
    return {name: testinfra.get_host(f"podman://{name}") for name in HOSTS}


def generation(host) -> str:
    return host.check_output(f"readlink {ENV_DIR}/current")


# The fleet's Prefect before the rolling upgrade (group_vars/prefect_workers) and after it.
FIRST_PREFECT, UPGRADED_PREFECT = "3.8.8", prefect_versions.default()


def prefect_of(host, venv: str | None = None) -> str:
    """The Prefect release of a venv generation (the current one by default)."""
    python = f"{venv or ENV_DIR + '/current'}/bin/python"
    return host.check_output("%s -c %s", python, "import importlib.metadata as m; print(m.version('prefect'))")


def invocation(host, unit: str = "prefect-worker@a.service") -> str:
    return host.check_output(f"systemctl show -p InvocationID --value {unit}")


def ran_on(ids: list[str]) -> dict[str, list[str]]:
    """Which host ran each run: the one that has its run directory."""
    where: dict[str, list[str]] = {name: [] for name in HOSTS}
    for name, h in hosts().items():
        have = set(h.check_output("ls /srv/prefect/runs").split())
        where[name] = [i for i in ids if i in have]
    return where


def table(output: str) -> list[list[str]]:
    """The rows of verify.yml's table: [host, check, ok/FAIL, detail]."""
    rows = [[cell.strip() for cell in line.split("|", 3)] for line in output.splitlines() if line.count("|") >= 3]
    return [row for row in rows if len(row) == 4 and row[2] in ("ok", "FAIL")]


def venv_of(run_id: str) -> str:
    """The venv generation a nap run ran on (its first log line), e.g. ENV_DIR/<generation>."""
    messages = wait_for_log(run_id, "venv: ")
    found = [m.split(": ", 1)[1] for m in messages if m.startswith("venv: ")]
    assert found, messages
    return found[0]


def remember(**values: object) -> None:
    path = STATE / "tests.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    path.write_text(json.dumps(data))


def recall(name: str):
    path = STATE / "tests.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    assert name in data, f"an earlier test did not record {name}"
    return data[name]
