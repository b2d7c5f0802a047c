"""rolling_upgrade.yml during a burst of long runs, moving the fleet from Prefect 3.8.8 to
the kit's default release (the upgrade users do, README.md): none fails, runs in flight
when it started finish on the generation they started with, runs created during it
complete, and afterwards every host runs its workers and new runs on a new generation
of the new release."""

from __future__ import annotations

import threading
import time
import uuid

from ops_lib import (REPO, ENV_DIR, FIRST_PREFECT as OLD, UPGRADED_PREFECT as NEW, generation, hosts, invocation,
                     not_completed, prefect_of, venv_of, queue, recall, remember, wait_final, wait_running)


def test_rolling_upgrade_during_a_burst_completes_every_run(run_playbook):
    fleet = hosts()
    old = recall("first_generation")
    assert {generation(h) for h in fleet.values()} == set(old.values())
    assert {prefect_of(h) for h in fleet.values()} == {OLD}
    workers_before = {name: invocation(h) for name, h in fleet.items()}
    tag = uuid.uuid4().hex[:8]
    in_flight = queue(8, 25, f"upgrade-{tag}")  # 2 hosts x 4 slots: all start at once
    wait_running(in_flight, at_least=6)

    during: list[str] = []
    def queue_during() -> None:  # runs created while the first host is drained
        time.sleep(10)
        during.extend(queue(4, 2, f"during-{tag}"))
    creator = threading.Thread(target=queue_during)
    creator.start()
    started = time.time()
    result = run_playbook(REPO / "playbooks/rolling_upgrade.yml",
                          extra_vars={"ops_prefect_version": NEW, "prefect_drain_timeout": 300})
    creator.join()
    assert result.rc == 0, result.output

    found = wait_final(in_flight + during)
    assert not not_completed(found), not_completed(found)
    spanned = [i for i in in_flight if found[i]["start_time"] and _ts(found[i]["start_time"]) < started]
    assert spanned, "no run was in flight when the upgrade started"
    for run_id in spanned:
        assert venv_of(run_id) == f"{ENV_DIR}/{old['ops-1']}", run_id  # same generation on both hosts

    new = {name: generation(h) for name, h in fleet.items()}
    assert all(new[n] != old[n] for n in new), (old, new)
    assert len(set(new.values())) == 1, new
    assert {prefect_of(h) for h in fleet.values()} == {NEW}
    workers_after = {name: invocation(h) for name, h in fleet.items()}
    assert all(workers_after[n] != workers_before[n] for n in fleet), "a worker was not restarted"
    for h in fleet.values():
        assert not h.file("/etc/prefect/drain").exists
    after = queue(2, 1, f"after-{tag}")
    found = wait_final(after)
    assert not not_completed(found), not_completed(found)
    for run_id in after:
        assert venv_of(run_id) == f"{ENV_DIR}/{new['ops-1']}", run_id
    assert prefect_of(fleet["ops-1"], f"{ENV_DIR}/{new['ops-1']}") == NEW
    remember(second_generation=new)


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
