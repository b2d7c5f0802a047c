"""The Prefect server goes away: converges and workers behave, and work resumes when it is back."""

from __future__ import annotations

import re
import time

import pytest
from faults_lib import SITE, UNITS, WORKER, host, not_completed, queue, server, wait_final

pytestmark = pytest.mark.reliability("fault", subject="Prefect server")

OUTAGE = 40  # seconds: four of the units' RestartSec


@pytest.fixture
def server_down():
    server("stop")
    try:
        yield
    finally:
        server("start")


def test_site_yml_while_the_server_is_down(server_down, run_playbook, host_state):
    """site.yml while the server is unreachable: the host roles converge with no change, the run fails at the end with one clear message, and nothing is half-written."""
    h = host()
    paths = ("/etc/prefect", "/etc/systemd/system", "/srv/prefect/envs", "/usr/local/bin", "/usr/local/lib/prefect-fleet")
    before = host_state(paths)
    result = run_playbook(SITE)
    assert result.rc != 0, result.output
    recap = result.recap
    assert recap["localhost"]["failed"] == 1, result.output
    assert recap["faults-1"]["failed"] == 0 and recap["faults-1"]["changed"] == 0, result.output
    assert recap["faults-1"]["ok"] > 50, "the host roles did not run"
    # The unreachable API, where it happened (rescued), then the one failure of the run.
    failures = result.output.split("fatal: [localhost]")
    assert len(failures) == 3, result.output
    last = " ".join(failures[-1][:1500].split())
    assert "The work pools were not reconciled: Cannot reach the Prefect API at" in last, last
    assert "hosts were converged" in last, last
    assert "Traceback" not in result.output
    assert host_state(paths) == before
    assert h.service("prefect-worker@a").is_running


def test_workers_ride_out_an_outage(run_playbook):
    """The server is down for 40 s while workers and served flows run: they retry without a restart loop (at most one restart per RestartSec), and a run queued once it is back completes."""
    h = host()

    def restarts_of_each() -> dict[str, int]:
        return {u: int(h.check_output(f"systemctl show -p NRestarts --value {u}")) for u in UNITS[:3]}

    restarts = restarts_of_each()
    server("stop")
    try:
        time.sleep(OUTAGE)
        during = restarts_of_each()
    finally:
        server("start")
    for unit in UNITS[:3]:
        assert during[unit] - restarts[unit] <= OUTAGE // 10, (unit, restarts, during, h.run(
            f"journalctl --no-pager -n 40 -u {unit}").stdout)
    [run] = queue(1, 1)
    found = wait_final([run], timeout=180)
    assert not not_completed(found), not_completed(found)
    for unit in UNITS[:3]:
        assert h.service(unit.removesuffix(".service")).is_running, unit
    assert h.run(f"systemctl is-failed {WORKER}").stdout.strip() != "failed"
