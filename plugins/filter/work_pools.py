# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The prefect_work_pool role's inventory as its modules take it, and what is wrong with it.

- ``pools | prefect_fleet.fleet.work_pool_problems(global_limits, launcher, venv)``: every
  problem of the inventory (the rules are module_utils/work_pool_rules, which the modules
  apply to one item each), as sentences naming the item; empty when all is well.
- ``pools | prefect_fleet.fleet.work_pool_plan(...)``: each pool's type, the limit of the
  current phase, and the job variables the kit sets (the venv's command, through the
  launcher if asked) under the pool's own.
- ``pools | prefect_fleet.fleet.work_queue_plan``: the queues of present pools in the order
  that reaches the wanted priorities in one run.
- ``plan | prefect_fleet.fleet.work_pool_server_problems(api)``: what only the server knows
  (a pool's type, the variables its template declares), from prefect_api_info's answer.
"""

from __future__ import annotations

import copy

from ansible_collections.prefect_fleet.fleet.plugins.module_utils.prefect_api import deep_merge
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.work_pool_rules import inventory_problems, truthy

LAUNCH_COMMAND = "/usr/local/bin/prefect-launch"


def work_pool_problems(pools, global_limits=(), launcher=False, venv=None):
    return inventory_problems(list(pools or []), list(global_limits or []), launcher, venv)


def _present(item):
    return item.get("state", "present") == "present"


def _phase_limit(pool, phase, throttle_default):
    real = pool.get("concurrency_limit")
    throttle = pool.get("throttle_limit", throttle_default)
    if phase != "throttle" or throttle is None:
        return real
    return throttle if real is None else min(int(throttle), int(real))


def work_pool_plan(pools, phase="open", throttle_limit=1, launcher=False, venv=None,
                   launchers_dir="/srv/prefect/launchers", job_variables=None):
    """One entry per pool: name, type, limit, job_variables, and the pool as given."""
    plan = []
    for pool in pools or []:
        kind = pool.get("type") or "process"
        pool_venv = pool.get("venv", venv)
        launch = truthy(pool.get("launcher", launcher)) and bool(pool_venv)
        kit = {}
        if pool_venv:
            prefix = ""
            if launch:
                socket = "%s/%s.sock" % (launchers_dir, pool_venv.rstrip("/").split("/")[-2])
                prefix = "%s --socket %s " % (LAUNCH_COMMAND, socket)
            kit = {"command": "%s%s/bin/python -m prefect.engine" % (prefix, pool_venv)}
        kit = deep_merge(kit, job_variables or {})
        plan.append({
            "name": pool["name"],
            "type": kind,
            "limit": _phase_limit(pool, phase, throttle_limit),
            "job_variables": deep_merge(kit if kind == "process" else {}, pool.get("job_variables") or {}),
            "pool": copy.deepcopy(pool),
        })
    return plan


def work_queue_plan(pools):
    """{pool, queue} for each queue of a present pool, each pool's in ascending priority (unset
    last): Prefect moves a queue down when another takes its priority."""
    out = []
    for pool in pools or []:
        if not _present(pool):
            continue
        queues = pool.get("queues") or []
        ranked = sorted((q for q in queues if q.get("priority") is not None), key=lambda q: int(q["priority"]))
        out += [{"pool": pool["name"], "queue": q} for q in ranked + [q for q in queues if q not in ranked]]
    return out


def work_pool_server_problems(plan, api):
    """A present pool whose type the server does not offer or that exists with another type,
    and job variables its base job template does not declare."""
    problems = []
    for item in plan or []:
        if not _present(item["pool"]):
            continue
        name, kind = item["name"], item["type"]
        existing = (api.get("work_pools") or {}).get(name)
        if existing is not None and existing != kind:
            problems.append("work pool %s exists with type %s, not %s (a pool cannot change type: delete it with "
                            "state absent first, or keep its type)" % (name, existing, kind))
            continue
        if existing is None and kind not in (api.get("worker_types") or []):
            problems.append("work pool %s: unknown type %s (the server offers %s)"
                            % (name, kind, ", ".join(api.get("worker_types") or [])))
            continue
        template = item["pool"].get("base_job_template")
        if template:
            known = list(((template.get("variables") or {}).get("properties") or {}).keys())
        else:
            known = list((api.get("worker_variables") or {}).get(kind) or [])
        unknown = [key for key in item["job_variables"] if key not in known]
        if unknown:
            problems.append("work pool %s: job_variables sets %s, which its %s base job template does not declare "
                            "(it has %s)" % (name, ", ".join(unknown), kind, ", ".join(known)))
    return problems


class FilterModule:
    def filters(self):
        return {
            "work_pool_problems": work_pool_problems,
            "work_pool_plan": work_pool_plan,
            "work_queue_plan": work_queue_plan,
            "work_pool_server_problems": work_pool_server_problems,
        }
