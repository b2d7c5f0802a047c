"""Helpers of the faults scenario's tests (they run in file order, on one host)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import testinfra

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
STATE = REPO / ".cache/faults"
HOST = "faults-1"
POOL = "faults"
MIRROR = "/srv/prefect/mirrors/flows.git"
MIRROR_LOCK = "/srv/prefect/locks/mirror-flows.lock"
ENV_DIR = "/srv/prefect/envs/flows"
WORKER = "prefect-worker@a.service"
UNITS = (WORKER, "prefect-serve@hello.service", "prefect-launcher@flows.service",
         "prefect-git-mirror-refresh.service")
API_KEY = "pnu_faultsMoleculeSecretKey0123456789"
SITE = REPO / "playbooks/site.yml"
sys.path.insert(0, str(REPO / "molecule"))
sys.path.insert(0, str(REPO / "molecule/operations"))

import ops  # noqa: E402
from prefect_api import FINAL_STATES, api, not_completed, runs, wait_final, wait_for_log, wait_running  # noqa: E402,F401


def host():
    return testinfra.get_host(f"podman://{HOST}")


def read_guarded_file_tasks() -> set[str]:
    """'prefect_fleet.fleet.role : name' (a collection role's task header) of every copy,
    template or file task the roles skip when their one reading of the host (a `__<role>_now`
    lookup in the task's `when`) finds the file as wanted."""
    import yaml

    names = set()
    for path in sorted((REPO / "roles").glob("*/tasks/*.yml")):
        role = path.parts[-3]
        for task in yaml.safe_load(path.read_text()) or []:
            module = next((k for k in task if k.startswith("ansible.builtin.")), "")
            if module.split(".")[-1] in ("copy", "template", "file") and f"__{role}_now[" in str(task.get("when", "")):
                names.add(f"prefect_fleet.fleet.{role} : {task['name']}")
    return names


_deployed: list[bool] = []


def queue(count: int, seconds: float) -> list[str]:
    """count runs of nap/faults, through the pool's worker. The deployments are made (or
    updated: one an earlier run left may point at a pool that was deleted since) once."""
    if not _deployed:
        ops.deploy(POOL)
        _deployed.append(True)
    return ops.queue(count, seconds, f"faults-{uuid.uuid4().hex[:8]}", POOL)


def as_prefect(command: str) -> str:
    """A shell command line running command as the prefect user, from /."""
    return f"cd / && runuser -u prefect -- sh -c {shlex.quote(command)}"


def fsck(h) -> subprocess.CompletedProcess:
    return h.run(as_prefect(f"git -C {MIRROR} fsck --no-progress --no-dangling"))


def lock_is_free(h) -> bool:
    """No process holds the mirror's flock (flock -n would fail otherwise)."""
    return h.run(f"flock -n {MIRROR_LOCK} true").rc == 0


def server(action: str) -> None:
    subprocess.run([str(REPO / "scripts/lib/test-server"), action], check=True, capture_output=True)


def generation(h) -> str:
    return h.check_output(f"readlink {ENV_DIR}/current")
