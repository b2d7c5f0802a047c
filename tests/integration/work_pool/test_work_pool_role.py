"""The prefect_work_pool role through playbooks/work_pools.yml against a real Prefect server."""

from __future__ import annotations

import copy

import pytest

pytestmark = pytest.mark.integration

VENV = "/srv/prefect/envs/etl/current"


def mine(snapshot: dict, names: set[str]) -> dict:
    """The part of an API snapshot that belongs to this test's pools and limits."""
    return {
        "pools": {k: v for k, v in snapshot["pools"].items() if k in names},
        "queues": {k: v for k, v in snapshot["queues"].items() if k in names},
        "limits": {k: v for k, v in snapshot["limits"].items() if k in names},
    }


def test_role_reconciles_pools_queues_limits_and_phases(playbook, proxy, api, unique):
    etl, frozen, docker, gone, limit = unique("etl"), unique("frozen"), unique("docker"), unique("gone"), unique("limit")
    warm = unique("warm")
    names = {etl, frozen, docker, gone, limit, warm}
    variables = {
        "prefect_work_pool_api_url": proxy.url,
        "prefect_work_pool_venv": VENV,
        "prefect_work_pool_phase": "throttle",
        "prefect_work_pool_pools": [
            {"name": etl, "description": "ETL", "concurrency_limit": 5, "throttle_limit": 2,
             "job_variables": {"env": {"EXTRA": "1"}},
             "queues": [
                 {"name": "bulk", "priority": 3, "paused": True},
                 {"name": "urgent", "priority": 1, "concurrency_limit": 0},
                 {"name": "default", "priority": 2},
             ]},
            {"name": frozen, "concurrency_limit": 0},  # the throttle never opens a pool wider
            {"name": docker, "type": "docker", "job_variables": {"image": "python:3.11-slim"}},
            {"name": gone},
            {"name": warm, "launcher": True},
        ],
        "prefect_work_pool_global_limits": [{"name": limit, "limit": 2}],
    }

    first = playbook(variables)
    assert first.rc == 0, first.stdout[-3000:]
    pools = api.pools()
    assert pools[etl]["concurrency_limit"] == 2
    assert pools[etl]["description"] == "ETL"
    assert pools[frozen]["concurrency_limit"] == 0
    assert pools[docker]["concurrency_limit"] == 1  # prefect_work_pool_throttle_limit
    props = pools[etl]["base_job_template"]["variables"]["properties"]
    assert props["command"]["default"] == VENV + "/bin/python -m prefect.engine"
    assert props["env"]["default"] == {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false", "EXTRA": "1"}
    # A pool that opts in to the warm launcher starts runs through prefect-launch, socket named by the env.
    env_name = VENV.rsplit("/", 2)[1]
    assert pools[warm]["base_job_template"]["variables"]["properties"]["command"]["default"] == (
        f"/usr/local/bin/prefect-launch --socket /srv/prefect/launchers/{env_name}.sock {VENV}/bin/python -m prefect.engine")
    # Other pool types get the server's template and their own variables, not the process defaults.
    docker_template = copy.deepcopy(api.default_template("docker"))
    docker_template["variables"]["properties"]["image"]["default"] = "python:3.11-slim"
    assert pools[docker]["base_job_template"] == docker_template
    queues = api.queues(etl)
    assert {name: q["priority"] for name, q in queues.items()} == {"urgent": 1, "default": 2, "bulk": 3}
    assert queues["urgent"]["concurrency_limit"] == 0
    assert queues["bulk"]["is_paused"] is True
    assert api.limit(limit)["limit"] == 2

    proxy.clear()
    second = playbook(variables)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.changed == 0, [r["task"] for r in second.results if r.get("changed")]
    assert proxy.requests and proxy.writes() == []

    # Open the pools; drop the docker pool from the inventory (it stays), delete the rest.
    opened = copy.deepcopy(variables)
    opened["prefect_work_pool_phase"] = "open"
    opened["prefect_work_pool_pools"][0]["queues"][0]["state"] = "absent"
    opened["prefect_work_pool_pools"][2:] = [{"name": gone, "state": "absent"}]
    opened["prefect_work_pool_global_limits"] = [{"name": limit, "state": "absent"}]

    before = mine(api.snapshot(), names)
    proxy.clear()
    checked = playbook(opened, "--check", "--diff", text=True)
    assert checked.rc == 0, checked.stdout[-3000:]
    assert "-    concurrency_limit: 2\n+    concurrency_limit: 5" in checked.stdout
    assert "+    state: absent" in checked.stdout
    assert proxy.writes() == []
    assert mine(api.snapshot(), names) == before

    real = playbook(opened)
    assert real.rc == 0, real.stdout[-3000:]
    pools = api.pools()
    assert pools[etl]["concurrency_limit"] == 5
    assert pools[frozen]["concurrency_limit"] == 0
    assert docker in pools and pools[docker]["concurrency_limit"] == 1
    assert gone not in pools
    assert set(api.queues(etl)) == {"urgent", "default"}
    assert api.limit(limit) is None


def test_full_base_job_template_from_inventory_with_unsafe_placeholders(playbook, prefect_server, api, unique):
    """A pool's own template, written as an inventory would (!unsafe keeps Prefect's
    placeholders from Ansible), gets the kit's defaults on its variables."""
    name = unique("custom")
    inventory = f"""
prefect_work_pool_api_url: {prefect_server.url}
prefect_work_pool_venv: {VENV}
prefect_work_pool_pools:
  - name: {name}
    base_job_template:
      job_configuration:
        command: !unsafe "{{{{ command }}}}"
        env: !unsafe "{{{{ env }}}}"
        working_dir: /srv/prefect/runs
      variables:
        type: object
        properties:
          command: {{type: string}}
          env: {{type: object, additionalProperties: {{type: string}}}}
"""
    run = playbook(inventory)
    assert run.rc == 0, run.stdout[-3000:]
    assert api.pool(name)["base_job_template"] == {
        "job_configuration": {"command": "{{ command }}", "env": "{{ env }}", "working_dir": "/srv/prefect/runs"},
        "variables": {"type": "object", "properties": {
            "command": {"type": "string", "default": VENV + "/bin/python -m prefect.engine"},
            "env": {"type": "object", "additionalProperties": {"type": "string"},
                    "default": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}},
        }},
    }
