"""playbooks/drain.yml on the one host: the run in flight finishes, no new run starts while
the host is drained (the workers stay ONLINE), and lifting the drain lets the run start.
The compat scenario runs this file too: the drain wrapper on each supported Prefect."""

import os
import time
from pathlib import Path

from prefect_api import api, wait_for_state
from test_10_workers import POOL, deploy

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
DRAIN = REPO / "playbooks/drain.yml"
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def test_a_drain_lets_the_running_run_finish_and_starts_no_new_one(host, run_playbook):
    sleepy = deploy("molecule-sleepy", "sleepy.py:sleepy")
    first = api(f"/deployments/{sleepy['id']}/create_flow_run", {"parameters": {"seconds": 15}})
    wait_for_state(first["id"], ("RUNNING",), timeout=120)

    drained = run_playbook(DRAIN, limit="prefect_workers")
    assert drained.rc == 0, drained.output
    try:
        # The play returns once nothing runs on the host: the run in flight has finished.
        assert api(f"/flow_runs/{first['id']}")["state"]["type"] == "COMPLETED"
        hello = deploy("molecule-hello", "flow.py:hello")
        second = api(f"/deployments/{hello['id']}/create_flow_run", {})
        # Both workers poll at least every 2 s (b every 1 s): 10 s is five polls each.
        time.sleep(10)
        assert api(f"/flow_runs/{second['id']}")["state"]["type"] == "SCHEDULED"
        assert not host.file(f"/srv/prefect/runs/{second['id']}").exists
        workers = {w["name"]: w["status"] for w in api(f"/work_pools/{POOL}/workers/filter", {})}
        assert set(workers.values()) == {"ONLINE"}, workers
    finally:
        lifted = run_playbook(DRAIN, limit="prefect_workers", extra_vars={"prefect_drain": "lift"})
    assert lifted.rc == 0, lifted.output
    assert not host.file("/etc/prefect/drain").exists
    assert wait_for_state(second["id"], FINAL, timeout=120) == "COMPLETED"
