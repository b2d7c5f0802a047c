"""prefect-cleanup runs while a burst of runs is in flight."""

from __future__ import annotations

import uuid

import pytest
from faults_lib import host, not_completed, queue, runs, wait_final, wait_running

RUNS = "/srv/prefect/runs"


@pytest.mark.reliability("fault", subject="prefect_cleanup")
def test_cleanup_during_a_burst():
    """prefect-cleanup runs while 4 runs are in flight and every run directory looks 3 days old: it removes an old unused run directory but none in use; every run reads its checkout after the cleanup and completes."""
    h = host()
    ids = queue(6, 12)
    wait_running(ids, at_least=4, timeout=180)
    decoy = f"{RUNS}/decoy-{uuid.uuid4().hex[:8]}"
    h.check_output(f"install -d -o prefect -g prefect {decoy}/checkout && echo old > {decoy}/checkout/file")
    h.check_output(f"find {RUNS} -mindepth 1 -maxdepth 2 -exec touch -h -d '3 days ago' {{}} +")
    cleanup = h.run("prefect-cleanup --only runs")
    assert cleanup.rc == 0, cleanup.stdout + cleanup.stderr
    assert not h.file(decoy).exists, "the old unused run directory was not removed:\n" + cleanup.stdout
    # Runs still running now were running all through the cleanup.
    in_use = [i for i, r in runs(ids).items() if r["state"]["type"] == "RUNNING"]
    assert in_use, "no run was still running: the cleanup came too late to prove anything"
    for run in in_use:
        assert h.file(f"{RUNS}/{run}").exists, f"run directory {run} in use was removed:\n{cleanup.stdout}"
    found = wait_final(ids, timeout=240)
    assert not not_completed(found), not_completed(found)
