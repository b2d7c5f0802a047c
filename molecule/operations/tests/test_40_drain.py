"""drain.yml: a drained host finishes its runs and takes no new ones while its worker stays
ONLINE; lifting the drain brings it back; a drain that stops the units, and its lift."""

from __future__ import annotations

import time
import uuid

from ops_lib import REPO, api, hosts, not_completed, queue, ran_on, wait_final, wait_running

DRAIN = REPO / "playbooks/drain.yml"


def test_drain_without_limit_is_refused(run_playbook):
    result = run_playbook(DRAIN)
    assert result.rc != 0 and "needs --limit" in result.output, result.output
    assert not any(h.file("/etc/prefect/drain").exists for h in hosts().values())


def test_a_drained_host_finishes_its_runs_and_takes_no_new_ones(run_playbook):
    fleet = hosts()
    tag = uuid.uuid4().hex[:8]
    first = queue(8, 15, f"drain-{tag}")
    wait_running(first, at_least=6)
    result = run_playbook(DRAIN, limit="ops-1")
    assert result.rc == 0, result.output
    # The play returned only once nothing ran on ops-1 any more.
    worker = fleet["ops-1"].check_output("systemctl show -p MainPID --value prefect-worker@a.service")
    assert fleet["ops-1"].run(f"pgrep -P {worker}").rc == 1
    assert fleet["ops-1"].file("/etc/prefect/drain").exists
    found = wait_final(first)
    assert not not_completed(found), not_completed(found)
    assert ran_on(first)["ops-1"], "no run of the burst ran on ops-1 before the drain"

    second = queue(6, 1, f"drained-{tag}")
    found = wait_final(second)
    assert not not_completed(found), not_completed(found)
    assert ran_on(second)["ops-1"] == [], "a drained host took a run"
    workers = {w["name"]: w["status"] for w in api("/work_pools/ops/workers/filter", {})}
    assert workers["ops-1-a"] == "ONLINE", workers

    again = run_playbook(DRAIN, limit="ops-1")
    assert again.rc == 0 and again.recap["ops-1"]["changed"] == 0, again.output

    lifted = run_playbook(DRAIN, limit="ops-1", extra_vars={"prefect_drain": "lift"})
    assert lifted.rc == 0, lifted.output
    third = queue(8, 3, f"lifted-{tag}")  # more than ops-2's 4 slots
    found = wait_final(third)
    assert not not_completed(found), not_completed(found)
    assert ran_on(third)["ops-1"], "ops-1 took no run after its drain was lifted"


def test_a_drain_for_maintenance_stops_the_units_and_the_lift_starts_them(run_playbook):
    h = hosts()["ops-2"]
    units = "prefect-worker@a.service prefect-launcher@flows.service"
    result = run_playbook(DRAIN, limit="ops-2", extra_vars={"prefect_drain_stop": True})
    assert result.rc == 0, result.output
    assert h.run(f"systemctl is-active {units}").stdout.split() == ["inactive", "inactive"]
    lifted = run_playbook(DRAIN, limit="ops-2", extra_vars={"prefect_drain": "lift"})
    assert lifted.rc == 0, lifted.output
    assert h.run(f"systemctl is-active {units}").stdout.split() == ["active", "active"]
    assert not h.file("/etc/prefect/drain").exists
    deadline = time.monotonic() + 60
    while h.run("curl -fsS http://127.0.0.1:8081/health").rc != 0:
        assert time.monotonic() < deadline, "worker a did not come back"
        time.sleep(2)
