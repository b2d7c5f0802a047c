"""migrate.yml, the scenario's converge: the pool stayed at its throttle limit while the
hosts moved over, the runs queued before any host existed all COMPLETED, and the pool is
open now. Then a migration whose first batch fails its checks stops there, and a re-run
resumes it."""

from __future__ import annotations

import json

from ops_lib import REPO, STATE, api, generation, hosts, not_completed, remember, table, wait_final

THROTTLE, OPEN = 2, 8


def samples() -> list[dict]:
    lines = (STATE / "samples.jsonl").read_text().splitlines()
    return [s for s in map(json.loads, lines) if "limit" in s]


def test_the_pool_stayed_throttled_while_the_hosts_moved_over():
    ids = json.loads((STATE / "migrate-runs.json").read_text())
    found = wait_final(ids)
    assert not not_completed(found), not_completed(found)
    taken = samples()
    throttled = [s for s in taken if s["limit"] == THROTTLE]
    assert len(throttled) > 20, f"the sampler saw the throttle {len(throttled)} times"
    assert max(s["running"] for s in throttled) <= THROTTLE, [s for s in throttled if s["running"] > THROTTLE]
    # Work went on during the migration, at the throttle limit.
    assert max(s["running"] for s in throttled) == THROTTLE, "no runs ran while the pool was throttled"
    assert taken[-1]["limit"] == OPEN, taken[-1]
    assert api("/work_pools/ops")["concurrency_limit"] == OPEN
    remember(first_generation={name: generation(h) for name, h in hosts().items()})


def test_a_failing_batch_stops_the_migration_and_a_rerun_resumes_it(run_playbook):
    playbook = REPO / "playbooks/migrate.yml"
    # ops-1, the first batch, fails its checks: demand more free disk than it has.
    failing = run_playbook(playbook, extra_vars={
        "prefect_verify_min_free_mb": "{{ 1000000000 if inventory_hostname == 'ops-1' else 1024 }}"})
    assert failing.rc != 0, failing.output
    assert ["ops-1", "disk free", "FAIL"] in [row[:3] for row in table(failing.output)], failing.output
    assert "ops-2" not in failing.recap, f"the batch after the failing one was touched: {failing.recap}"
    assert api("/work_pools/ops")["concurrency_limit"] == THROTTLE, "phase 3 ran after a failed batch"

    resumed = run_playbook(playbook)
    assert resumed.rc == 0, resumed.output
    assert resumed.recap["ops-1"]["changed"] == 0 and resumed.recap["ops-2"]["changed"] == 0, resumed.recap
    assert api("/work_pools/ops")["concurrency_limit"] == OPEN
