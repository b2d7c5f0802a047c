"""The disk fills up while a new venv generation is built."""

from __future__ import annotations

import re

import pytest
from faults_lib import ENV_DIR, SITE, generation, host, not_completed, queue, wait_final, wait_for_log


# A new generation: the same packages, another smoke-test import.
CHANGE = {"faults_env_imports": ["prefect.engine", "csv"]}


@pytest.mark.reliability("fault", subject="prefect_venv")
def test_disk_full_during_a_venv_build(run_playbook):
    """The environment's filesystem (a 1.2 GB tmpfs) is full while a new generation builds: the converge fails naming the environment and the full disk, current still points at the old generation, no half-built generation is left, and runs keep working on the old one."""
    h = host()
    old = generation(h)
    entries = set(h.check_output(f"ls -A {ENV_DIR}").split())
    free = int(h.check_output(f"df --output=avail -B1 {ENV_DIR} | tail -n 1"))
    h.check_output(f"fallocate -l {free - 24 * 2**20} {ENV_DIR}/.ballast")
    try:
        result = run_playbook(SITE, extra_vars=CHANGE, limit="faults-1", args=("--tags", "prefect_venv"))
        current = generation(h)
        left = set(h.check_output(f"ls -A {ENV_DIR}").split()) - {".ballast"}
        [run] = queue(1, 1)
        found = wait_final([run], timeout=180)
    finally:
        h.run(f"rm -f {ENV_DIR}/.ballast")
    assert result.rc != 0, result.output
    failure = re.split(r"(?:fatal|failed): \[faults-1\]", result.output, maxsplit=1)[-1][:3000]
    assert "prefect-venv: uv pip install failed: no space left on device" in failure, failure
    assert "building flows generation" in failure, failure
    assert "Traceback" not in failure
    assert current == old
    assert left == entries, f"left behind: {left - entries}"
    assert not not_completed(found), not_completed(found)
    logs = wait_for_log(run, "venv: ")
    assert f"venv: {ENV_DIR}/{old}" in logs, logs
    # With room again, the same change builds and switches; then back to the inventory's.
    again = run_playbook(SITE, extra_vars=CHANGE, limit="faults-1", args=("--tags", "prefect_venv"))
    assert again.rc == 0, again.output
    assert generation(h) not in (old, current)
    back = run_playbook(SITE, limit="faults-1", args=("--tags", "prefect_venv"))
    assert back.rc == 0, back.output
