"""prefect_work_pool, prefect_work_queue and prefect_global_concurrency_limit against a real
Prefect 3.8.8 server, run by Ansible (`ansible-playbook` tasks, `ansible localhost -m`)
through a recording proxy that shows which requests each task made."""

from __future__ import annotations

import copy

import pytest
from work_pool_helpers import raw, task

pytestmark = pytest.mark.integration

ENGINE = "/srv/prefect/envs/etl/current/bin/python -m prefect.engine"
OTHER_ENGINE = "/srv/prefect/envs/other/current/bin/python -m prefect.engine"
KIT_VARS = {"command": ENGINE, "env": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}}


def expected_template(api, job_variables=KIT_VARS):
    """The server's default process template with job_variables as variable defaults."""
    template = copy.deepcopy(api.default_template("process"))
    for name, value in job_variables.items():
        template["variables"]["properties"][name]["default"] = value
    return template


def test_create_then_update_each_field_alone_then_no_write(steps, proxy, api, unique):
    name = unique()
    pool = dict(api_url=proxy.url, name=name, description="one", concurrency_limit=2, job_variables=KIT_VARS)
    custom = expected_template(api)
    custom["variables"]["properties"]["working_dir"]["default"] = "/srv/prefect/runs"
    changes = [
        ({"description": "two"}, {"description": "two"}),
        ({"concurrency_limit": 7}, {"concurrency_limit": 7}),
        ({"paused": True}, {"is_paused": True, "status": "PAUSED"}),
        ({"paused": False}, {"is_paused": False, "status": "NOT_READY"}),  # no worker polls it
        ({"job_variables": dict(KIT_VARS, command=OTHER_ENGINE)},
         {"base_job_template": expected_template(api, dict(KIT_VARS, command=OTHER_ENGINE))}),
        ({"base_job_template": raw(custom), "job_variables": {}}, {"base_job_template": custom}),
    ]
    tasks, args = [task("prefect_work_pool", **pool), task("prefect_work_pool", **pool)], dict(pool)
    for change, _ in changes:
        args = dict(args, **change)
        tasks.append(task("prefect_work_pool", **args))
    tasks.append(task("prefect_work_pool", **args))

    create, noop, *updates, last_noop = steps(*tasks)

    assert create.changed and create.writes == [("POST", "/api/work_pools/")]
    created = create.result["work_pool"]
    assert (created["type"], created["description"], created["concurrency_limit"]) == ("process", "one", 2)
    # The template is the server's own default for the type, the kit's values as defaults of
    # its variables; every variable stays, so deployments can still override them.
    assert created["base_job_template"] == expected_template(api)
    assert noop.requests and not noop.changed and noop.writes == []

    before = created
    for step, (change, wanted) in zip(updates, changes):
        assert step.changed, (change, step.result.get("msg"))
        assert step.writes == [("PATCH", "/api/work_pools/" + name)], change
        after = step.result["work_pool"]  # read back from the server after the PATCH
        assert {k: after[k] for k in wanted} == wanted, change
        untouched = {"description", "concurrency_limit", "is_paused", "base_job_template"} - set(wanted)
        assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}, change
        before = after
    assert last_noop.requests and not last_noop.changed and last_noop.writes == []
    assert api.pool(name)["base_job_template"] == custom


def test_check_mode_diff_and_absent(steps, module, proxy, api, unique):
    name = unique()
    pool = dict(api_url=proxy.url, name=name, description="same", concurrency_limit=2, job_variables=KIT_VARS)
    changed = dict(pool, concurrency_limit=5, job_variables=dict(KIT_VARS, command=OTHER_ENGINE))
    check_create, create, check_update = steps(task("prefect_work_pool", check=True, diff=True, **pool),
                                               task("prefect_work_pool", **pool),
                                               task("prefect_work_pool", check=True, diff=True, **changed))
    # A pool that does not exist is reported, not made.
    assert check_create.changed and check_create.writes == []
    assert check_create.result["diff"]["before"] == {"state": "absent"}
    assert check_create.result["diff"]["after"]["concurrency_limit"] == 2
    assert create.changed and create.writes == [("POST", "/api/work_pools/")]
    # Check mode with --diff: exactly the fields that would change, and nothing written.
    assert check_update.changed and check_update.writes == []
    assert check_update.result["work_pool"]["concurrency_limit"] == 5  # what it would be
    assert check_update.result["diff"]["before"] == {
        "concurrency_limit": 2,
        "base_job_template.variables.properties.command.default": ENGINE,
    }
    assert check_update.result["diff"]["after"] == {
        "concurrency_limit": 5,
        "base_job_template.variables.properties.command.default": OTHER_ENGINE,
    }
    now = api.pool(name)
    assert now["concurrency_limit"] == 2
    assert now["base_job_template"]["variables"]["properties"]["command"]["default"] == ENGINE

    # The diff as a person reads it (the default callback, YAML as in the kit's ansible.cfg).
    text = module("prefect_work_pool", changed, diff=True, text=True).stdout
    diff_text = text.split("changed: [localhost]")[0]
    assert "--- before: work pool %s (Prefect API)" % name in diff_text
    assert "-    concurrency_limit: 2" in diff_text
    assert "+    concurrency_limit: 5" in diff_text
    assert "+ base_job_template.variables.properties.command.default: %s" % OTHER_ENGINE in " ".join(diff_text.split())
    assert "description" not in diff_text  # unchanged fields stay out of the diff
    assert api.pool(name)["concurrency_limit"] == 5

    check_delete, delete, again = steps(task("prefect_work_pool", check=True, **dict(changed, state="absent")),
                                        task("prefect_work_pool", diff=True, **dict(changed, state="absent")),
                                        task("prefect_work_pool", **dict(changed, state="absent")))
    assert check_delete.changed and check_delete.writes == []
    assert delete.changed and delete.writes == [("DELETE", "/api/work_pools/" + name)]
    assert delete.result["diff"]["after"] == {"state": "absent"}
    assert again.requests and not again.changed and again.writes == []
    assert api.pool(name) is None


def test_limit_zero_is_a_limit_and_null_is_none(steps, proxy, unique):
    pool = dict(api_url=proxy.url, name=unique())
    limits = (0, 0, None, None, 0, 3, None)
    done = steps(*(task("prefect_work_pool", concurrency_limit=limit, **pool) for limit in limits))
    previous = "absent"
    for limit, step in zip(limits, done):
        assert step.result["work_pool"]["concurrency_limit"] == limit
        assert step.changed is (previous != limit), (previous, limit)
        assert bool(step.writes) is step.changed
        previous = limit


def test_queues_priorities_limits_and_pausing(steps, proxy, api, unique):
    pool = unique()
    q = dict(api_url=proxy.url, pool=pool)
    urgent = dict(q, name="urgent", priority=1, concurrency_limit=0)
    bulk = dict(q, name="bulk", priority=2, paused=True, description="big")
    (_, make_urgent, make_bulk, noop, unlimit, check_prio,
     drop_bulk, drop_default, missing_pool_checked) = steps(
        task("prefect_work_pool", api_url=proxy.url, name=pool),
        task("prefect_work_queue", **urgent),
        task("prefect_work_queue", **bulk),
        task("prefect_work_queue", **bulk),
        task("prefect_work_queue", diff=True, **dict(urgent, concurrency_limit=None)),
        task("prefect_work_queue", check=True, **dict(urgent, concurrency_limit=None, priority=4)),
        task("prefect_work_queue", **dict(bulk, state="absent")),
        task("prefect_work_queue", **dict(q, name="default", state="absent")),
        task("prefect_work_queue", check=True, **dict(q, pool=unique(), name="x")),
    )
    assert make_urgent.changed and make_urgent.writes == [("POST", "/api/work_pools/%s/queues" % pool)]
    assert make_bulk.changed
    created = make_bulk.result["work_queue"]
    assert (created["priority"], created["description"], created["is_paused"]) == (2, "big", True)
    # Created paused, 3.8.8 leaves the status NOT_READY; the module pauses it once more for the status.
    assert created["status"] == "PAUSED"
    assert not noop.changed and noop.writes == []
    assert (unlimit.result["diff"]["before"], unlimit.result["diff"]["after"]) == (
        {"concurrency_limit": 0}, {"concurrency_limit": None})
    assert check_prio.changed and check_prio.writes == []
    assert drop_bulk.changed and drop_bulk.writes == [("DELETE", "/api/work_pools/%s/queues/bulk" % pool)]
    assert drop_default.result["failed"] and "default queue" in drop_default.result["msg"]
    assert drop_default.writes == []
    assert missing_pool_checked.changed and not missing_pool_checked.result.get("failed")

    queues = api.queues(pool)
    assert set(queues) == {"urgent", "default"}
    assert (queues["urgent"]["priority"], queues["urgent"]["concurrency_limit"]) == (1, None)
    # Prefect keeps priorities unique: the default queue moved down to make room (1 -> 3).
    assert queues["default"]["priority"] == 3


def test_global_concurrency_limits(steps, proxy, api, unique):
    lim = dict(api_url=proxy.url, name=unique("limit"), limit=3)
    changed = dict(lim, limit=0, active=False, slot_decay_per_second=1.5)
    check, create, noop, update, delete, again = steps(
        task("prefect_global_concurrency_limit", check=True, **lim),
        task("prefect_global_concurrency_limit", **lim),
        task("prefect_global_concurrency_limit", **lim),
        task("prefect_global_concurrency_limit", diff=True, **changed),
        task("prefect_global_concurrency_limit", **dict(changed, state="absent")),
        task("prefect_global_concurrency_limit", **dict(changed, state="absent")),
    )
    assert check.changed and check.writes == []
    assert create.changed and create.writes == [("POST", "/api/v2/concurrency_limits/")]
    made = create.result["concurrency_limit"]
    assert (made["limit"], made["active"], made["slot_decay_per_second"]) == (3, True, 0.0)
    assert not noop.changed and noop.writes == []
    assert update.writes == [("PATCH", "/api/v2/concurrency_limits/" + lim["name"])]
    assert update.result["diff"]["before"] == {"limit": 3, "active": True, "slot_decay_per_second": 0.0}
    assert update.result["diff"]["after"] == {"limit": 0, "active": False, "slot_decay_per_second": 1.5}
    now = update.result["concurrency_limit"]
    assert (now["limit"], now["active"], now["slot_decay_per_second"]) == (0, False, 1.5)
    assert delete.changed and not again.changed and again.writes == []
    assert api.limit(lim["name"]) is None


def test_environment_fallback_and_bearer_key(module, proxy, api, unique):
    name = unique()
    secret = "pnu_" + unique("k")
    run = module("prefect_work_pool", {"name": name}, env={"PREFECT_API_URL": proxy.url, "PREFECT_API_KEY": secret})
    assert run.rc == 0, run.stdout
    assert api.pool(name) is not None
    assert {r.authorization for r in proxy.requests} == {"Bearer " + secret}
    assert secret not in run.stdout + run.stderr


def test_transient_errors_are_retried(module, proxy, api, unique):
    name = unique()
    proxy.inject.extend([503, 429])
    run = module("prefect_work_pool", {"api_url": proxy.url, "name": name})
    assert run.rc == 0, run.stdout
    assert [r.status for r in proxy.requests[:3]] == [503, 429, 404]  # then the GET gets its real answer
    assert api.pool(name) is not None
