"""One set of rules for work pools, queues and global limits: the role's preflight (the filter
prefect_fleet.fleet.work_pool_problems) refuses an inventory item with the same sentence the
module refuses it with (module_utils/work_pool_rules), and the plan the role hands the modules
(phase limits, the venv's command through the launcher, queue order) is what the README says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from collection_helpers import collection_module  # noqa: E402

rules = collection_module("plugins.module_utils.work_pool_rules")
pools = collection_module("plugins.filter.work_pools")
VENV = "/srv/prefect/envs/flows/current"

# An inventory pool and the one problem the preflight finds in it.
POOL_CASES = [
    ({"name": "etl"}, None),
    ({"name": "  "}, "a work pool has an empty name"),
    ({"name": "Prefect-etl"}, "work pool Prefect-etl: names starting with prefect are reserved by Prefect"),
    ({"name": "neg", "concurrency_limit": -1},
     "work pool neg: concurrency_limit must be 0 or more (0 lets nothing run; null means no limit), got -1"),
    ({"name": "txt", "throttle_limit": "many"},
     "work pool txt: throttle_limit must be 0 or more (0 lets nothing run; null means no limit), got many"),
    ({"name": "zero", "concurrency_limit": 0, "throttle_limit": None}, None),
    ({"name": "tmpl", "base_job_template": {"job_configuration": {"command": "x"}}},
     "work pool tmpl: base_job_template must contain both a job_configuration key and a variables key; "
     "missing or empty: variables"),
    ({"name": "warm", "launcher": True, "venv": "/opt/venv"},
     "work pool warm: launcher needs venv to be an environment's current link, <envs>/<env>/current, got /opt/venv"),
    ({"name": "warm", "launcher": "yes", "venv": "/srv//current"},
     "work pool warm: launcher needs venv to be an environment's current link, <envs>/<env>/current, got /srv//current"),
    ({"name": "warm", "launcher": "false", "venv": "/opt/venv"}, None),
    ({"name": "warm", "launcher": True}, None),  # the role's default venv is a current link
    ({"name": "q", "queues": [{"name": "a", "priority": 0}]},
     "work pool q, queue a: priority must be 1 or more (1 is served first), got 0"),
    ({"name": "q", "queues": [{"name": "a", "concurrency_limit": -3}]},
     "work pool q, queue a: concurrency_limit must be 0 or more (0 lets nothing run; null means no limit), got -3"),
    ({"name": "q", "queues": [{"name": "a"}, {"name": "a"}]}, "work pool q: queue a is listed more than once"),
    ({"name": "q", "queues": [{"name": "a", "priority": 2}, {"name": "b", "priority": 2}]},
     "work pool q: priority 2 is given to more than one queue (priorities are unique in a pool)"),
    ({"name": "q", "queues": [{"name": "a", "priority": 2}, {"name": "b", "priority": 2, "state": "absent"}]}, None),
]


@pytest.mark.parametrize("pool, problem", POOL_CASES)
def test_the_preflight_finds_each_problem_of_a_pool(pool, problem):
    assert pools.work_pool_problems([pool], [], launcher=False, venv=VENV) == ([problem] if problem else [])


@pytest.mark.parametrize("pool, problem", [c for c in POOL_CASES if c[1] and "queue" not in c[1] and "launcher" not in c[1]])
def test_the_module_refuses_a_pool_with_the_preflights_sentence(pool, problem):
    assert rules.pool_problems(pool) == [problem]


def test_the_module_refuses_a_queue_and_a_limit_with_the_preflights_sentences():
    queue = {"name": "a", "priority": 0, "concurrency_limit": -1}
    inventory = pools.work_pool_problems([{"name": "q", "queues": [queue]}])
    assert rules.queue_problems("q", queue) == inventory and len(inventory) == 2
    for limit, problem in [
        ({"name": "db"}, "global concurrency limit db: limit is required"),
        ({"name": "db", "state": "absent"}, None),
        ({"name": "db", "limit": -1}, "global concurrency limit db: limit must be 0 or more (0 lets nothing take a slot), got -1"),
        ({"name": "db", "limit": 2, "slot_decay_per_second": -0.5},
         "global concurrency limit db: slot_decay_per_second must be 0 or more (0 frees slots only on release), got -0.5"),
    ]:
        expected = [problem] if problem else []
        assert rules.limit_problems(limit) == expected
        assert pools.work_pool_problems([], [limit]) == expected


def test_every_problem_of_the_inventory_in_order_and_duplicates_once():
    found = pools.work_pool_problems(
        [{"name": "a"}, {"name": "a"}, {"name": "a"}, {"name": "neg", "concurrency_limit": -1}],
        [{"name": "db", "limit": 1}, {"name": "db", "limit": 1}])
    assert found == ["work pool a is listed more than once",
                     "work pool neg: concurrency_limit must be 0 or more (0 lets nothing run; null means no limit), got -1",
                     "global concurrency limit db is listed more than once"]


@pytest.mark.parametrize("phase, pool, limit", [
    ("open", {"concurrency_limit": 8}, 8),
    ("open", {}, None),
    ("throttle", {"concurrency_limit": 8}, 1),  # the role's throttle_limit
    ("throttle", {"concurrency_limit": 8, "throttle_limit": 3}, 3),
    ("throttle", {"concurrency_limit": 2, "throttle_limit": 3}, 2),  # never above the real limit
    ("throttle", {}, 1),
    ("throttle", {"concurrency_limit": 8, "throttle_limit": None}, 8),  # this pool is not throttled
])
def test_the_plan_gives_each_pool_the_limit_of_the_phase(phase, pool, limit):
    (item,) = pools.work_pool_plan([dict(pool, name="etl")], phase=phase, throttle_limit=1, venv=VENV)
    assert item["limit"] == limit


def test_the_plan_sets_the_venvs_command_through_the_launcher_under_the_pools_own_variables():
    kit = {"env": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}}
    plain, warm, docker, own = pools.work_pool_plan([
        {"name": "plain"},
        {"name": "warm", "launcher": True, "job_variables": {"env": {"EXTRA": "1"}}},
        {"name": "dock", "type": "docker", "job_variables": {"image": "x"}},
        {"name": "own", "venv": "/srv/prefect/envs/ml/current", "job_variables": {"command": "my-engine"}},
    ], venv=VENV, launchers_dir="/srv/prefect/launchers", job_variables=kit)
    assert plain["type"] == "process"
    assert plain["job_variables"] == dict(kit, command=VENV + "/bin/python -m prefect.engine")
    assert warm["job_variables"] == {
        "command": "/usr/local/bin/prefect-launch --socket /srv/prefect/launchers/flows.sock "
                   + VENV + "/bin/python -m prefect.engine",
        "env": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false", "EXTRA": "1"}}
    assert docker["job_variables"] == {"image": "x"}, "the kit's variables are for process pools only"
    assert own["job_variables"]["command"] == "my-engine"
    assert plain["pool"] == {"name": "plain"}


def test_the_queues_of_present_pools_go_in_ascending_priority_unset_last():
    plan = pools.work_queue_plan([
        {"name": "p", "queues": [{"name": "c"}, {"name": "b", "priority": 2}, {"name": "a", "priority": 1}]},
        {"name": "gone", "state": "absent", "queues": [{"name": "x"}]},
    ])
    assert [(i["pool"], i["queue"]["name"]) for i in plan] == [("p", "a"), ("p", "b"), ("p", "c")]


def test_what_only_the_server_knows():
    api = {"worker_types": ["process", "docker"], "work_pools": {"old": "docker"},
           "worker_variables": {"process": ["command", "env"]}}
    plan = pools.work_pool_plan([
        {"name": "ok"}, {"name": "old"}, {"name": "odd", "type": "nonsense"},
        {"name": "typo", "job_variables": {"comand": "x"}}, {"name": "gone", "type": "nonsense", "state": "absent"},
        {"name": "own", "base_job_template": {"job_configuration": {"command": "{{ command }}"},
                                              "variables": {"properties": {"command": {}, "env": {}}}}},
    ], venv=VENV)
    assert pools.work_pool_server_problems(plan, api) == [
        "work pool old exists with type docker, not process (a pool cannot change type: delete it with state absent "
        "first, or keep its type)",
        "work pool odd: unknown type nonsense (the server offers process, docker)",
        "work pool typo: job_variables sets comand, which its process base job template does not declare "
        "(it has command, env)",
    ]
