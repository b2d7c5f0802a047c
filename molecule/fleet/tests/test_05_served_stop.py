"""Stopping a served flow's unit on one of the hosts that serve its deployment (served-nap,
served from every host): the host's run ends CRASHED, never Running or Cancelled, the child
process it started gets SIGTERM, the deployment stays active, and the next run completes on
another host. Then the unit starts again. Prefect's own runner would pause the deployment
for every host (pause_on_shutdown) and leave the run Running (3.8.8) or cancel it (3.9.1)."""

from __future__ import annotations

import time
import uuid

import pytest
from prefect_api import api, wait_for_log, wait_for_state

HOSTS = ("fleet-1", "fleet-2", "fleet-3")
UNIT = "prefect-serve@nap.service"


@pytest.fixture(scope="module")
def hosts():
    import testinfra

    return {name: testinfra.get_host(f"podman://{name}") for name in HOSTS}


def wait_healthy(host, port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while host.run(f"curl -fsS -o /dev/null http://127.0.0.1:{port}/health").rc != 0:
        assert time.monotonic() < deadline, host.run(f"journalctl -u {UNIT} -n 60 --no-pager").stdout
        time.sleep(1)


def test_stopping_a_served_flow_on_one_host_crashes_its_run_and_keeps_the_deployment(hosts):
    deployment = api("/deployments/name/nap/served-nap")
    assert deployment["work_pool_name"] is None and deployment["paused"] is False, deployment
    marker = f"/srv/prefect/tmp/nap-{uuid.uuid4().hex}.child"
    run_id = api(f"/deployments/{deployment['id']}/create_flow_run",
                 {"parameters": {"seconds": 600, "child_marker": marker}})["id"]
    assert wait_for_state(run_id, ("RUNNING",) + ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")) == "RUNNING"
    messages = wait_for_log(run_id, "child: ", timeout=60)
    assert any(m.startswith("child: ") for m in messages), messages
    serving = [name for name, host in hosts.items() if host.file(marker).exists]
    assert len(serving) == 1, serving
    host = hosts[serving[0]]
    assert host.file(marker).content_string == "started"

    started = time.monotonic()
    stopped = host.run(f"systemctl stop {UNIT}")
    took = time.monotonic() - started
    journal = host.run(f"journalctl -u {UNIT} -n 80 --no-pager").stdout
    try:
        assert stopped.rc == 0, stopped.stderr
        assert wait_for_state(run_id, timeout=60) == "CRASHED", journal
        assert host.file(marker).content_string == "SIGTERM", journal  # the run's child heard of the stop
        assert "still running after" not in journal, journal
        assert took < 30, (took, journal)
        assert api(f"/deployments/{deployment['id']}")["paused"] is False, journal

        # The deployment goes on for the hosts still serving it.
        other = api(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"seconds": 0}})["id"]
        assert wait_for_state(other, timeout=180) == "COMPLETED"
        logs = wait_for_log(other, "host: ")
        ran_on = [m.split(": ", 1)[1] for m in logs if m.startswith("host: ")]
        assert ran_on and ran_on[0] != host.check_output("hostname"), (ran_on, logs)
    finally:
        host.run(f"systemctl start {UNIT}")
        wait_healthy(host, 8091)
    assert host.service(UNIT).is_running
