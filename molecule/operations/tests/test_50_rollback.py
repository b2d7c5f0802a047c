"""rollback_venv.yml: every host goes back to the generation before the upgrade (Prefect
3.8.8), and runs (through the warm launcher, which follows) use it; a bad request changes
nothing."""

from __future__ import annotations

import uuid

from ops_lib import (ENV_DIR, FIRST_PREFECT, REPO, generation, hosts, not_completed, prefect_of, venv_of, queue, recall,
                     wait_final)

ROLLBACK = REPO / "playbooks/rollback_venv.yml"


def test_a_rollback_of_an_unknown_environment_changes_nothing(run_playbook):
    fleet = hosts()
    before = {name: generation(h) for name, h in fleet.items()}
    result = run_playbook(ROLLBACK, extra_vars={"prefect_rollback_env": "nope"})
    assert result.rc != 0 and "has no environment nope" in result.output, result.output
    assert {name: generation(h) for name, h in fleet.items()} == before
    assert not any(h.file("/etc/prefect/drain").exists for h in fleet.values())


def test_rolling_back_a_venv_generation(run_playbook):
    fleet = hosts()
    first, second = recall("first_generation"), recall("second_generation")
    assert {name: generation(h) for name, h in fleet.items()} == second
    result = run_playbook(ROLLBACK, extra_vars={"prefect_rollback_env": "flows"})
    assert result.rc == 0, result.output
    assert {name: generation(h) for name, h in fleet.items()} == first
    assert {prefect_of(h) for h in fleet.values()} == {FIRST_PREFECT}
    ids = queue(4, 1, f"rollback-{uuid.uuid4().hex[:8]}")
    found = wait_final(ids)
    assert not not_completed(found), not_completed(found)
    for run_id in ids:
        assert venv_of(run_id) == f"{ENV_DIR}/{first['ops-1']}", run_id
    for h in fleet.values():
        assert h.service("prefect-launcher@flows").is_running
        assert not h.file("/etc/prefect/drain").exists
