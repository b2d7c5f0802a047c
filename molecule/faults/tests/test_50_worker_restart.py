"""A worker is restarted (systemctl restart) in the middle of a burst of runs."""

from __future__ import annotations

import pytest
from faults_lib import WORKER, host, queue, runs, wait_final, wait_running


@pytest.mark.reliability("fault", subject="prefect_worker")
def test_worker_restart_during_a_burst():
    """systemctl restart of the worker while 4 of 8 runs are running: as the role README says, the runs in flight end CRASHED (recorded by the runs themselves, not left Running), the others complete after the restart, and none is lost."""
    h = host()
    ids = queue(8, 12)
    wait_running(ids, at_least=4, timeout=180)
    in_flight = {i for i, r in runs(ids).items() if r["state"]["type"] in ("PENDING", "RUNNING")}
    h.check_output(f"systemctl restart {WORKER}")
    found = wait_final(ids, timeout=300)
    states = {i: r["state"]["type"] for i, r in found.items()}
    assert set(states) == set(ids), "a run is missing"
    crashed = {i for i, s in states.items() if s == "CRASHED"}
    completed = {i for i, s in states.items() if s == "COMPLETED"}
    assert crashed | completed == set(ids), states
    assert crashed <= in_flight, (crashed, in_flight)
    assert set(ids) - in_flight <= completed, states
    assert h.service(WORKER.removesuffix(".service")).is_running
