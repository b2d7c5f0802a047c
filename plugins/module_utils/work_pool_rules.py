# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kit's rules for work pools, their queues and global concurrency limits, in one place.

The modules (prefect_work_pool, prefect_work_queue, prefect_global_concurrency_limit) refuse
one item with these sentences; the role's preflight refuses the whole inventory with them
through the filter prefect_fleet.fleet.work_pool_problems. Each function returns a list of
sentences, empty when all is well, each naming the item ("work pool etl: ...").
"""

from __future__ import annotations

from ansible_collections.prefect_fleet.fleet.plugins.module_utils.prefect_api import template_shape_error

# Prefect keeps pool names starting with this for its own pools.
RESERVED_PREFIX = "prefect"
# The link an environment's current generation is reached by (prefect_venv): the launcher
# names its socket after <env>.
CURRENT_LINK_SUFFIX = "/current"


def _set(item, key):
    return isinstance(item, dict) and item.get(key) is not None


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _at_least(label, item, key, minimum, meaning):
    """A sentence if item[key] is set and below minimum (or not a number)."""
    if not _set(item, key):
        return []
    value = _number(item[key])
    if value is not None and value >= minimum:
        return []
    return ["%s: %s must be %d or more (%s), got %s" % (label, key, minimum, meaning, item[key])]


def duplicates(names, what):
    """'<what> NAME is listed more than once' for each name listed more than once, in order."""
    seen, twice = set(), []
    for name in names:
        if name in seen and name not in twice:
            twice.append(name)
        seen.add(name)
    return ["%s %s is listed more than once" % (what, name) for name in twice]


def pool_label(name):
    return "work pool %s" % name


def pool_problems(pool):
    """What is wrong with one work pool's name, limits and base job template."""
    name = str(pool.get("name") or "").strip()
    if not name:
        return ["a work pool has an empty name"]
    label = pool_label(name)
    problems = []
    if name.lower().startswith(RESERVED_PREFIX):
        problems.append("%s: names starting with %s are reserved by Prefect" % (label, RESERVED_PREFIX))
    for key in ("concurrency_limit", "throttle_limit"):
        problems += _at_least(label, pool, key, 0, "0 lets nothing run; null means no limit")
    if _set(pool, "base_job_template"):
        shape = template_shape_error(pool["base_job_template"])
        if shape:
            problems.append("%s: %s" % (label, shape))
    return problems


def queue_problems(pool_name, queue):
    """What is wrong with one queue of a pool: its name, limit and priority."""
    name = str(queue.get("name") or "").strip()
    label = "%s, queue %s" % (pool_label(pool_name), name)
    if not name:
        return ["%s: a queue has an empty name" % pool_label(pool_name)]
    return (_at_least(label, queue, "concurrency_limit", 0, "0 lets nothing run; null means no limit")
            + _at_least(label, queue, "priority", 1, "1 is served first"))


def limit_problems(limit):
    """What is wrong with one global concurrency limit."""
    name = str(limit.get("name") or "").strip()
    if not name:
        return ["a global concurrency limit has an empty name"]
    label = "global concurrency limit %s" % name
    if limit.get("state", "present") == "present" and not _set(limit, "limit"):
        return ["%s: limit is required" % label]
    return (_at_least(label, limit, "limit", 0, "0 lets nothing take a slot")
            + _at_least(label, limit, "slot_decay_per_second", 0, "0 frees slots only on release"))


def inventory_problems(pools, global_limits, launcher=False, venv=None):
    """Everything the role's preflight refuses in prefect_work_pool_pools and
    prefect_work_pool_global_limits; launcher and venv are the role's defaults for a pool."""
    problems = duplicates([pool.get("name") for pool in pools], "work pool")
    for pool in pools:
        problems += pool_problems(pool)
        label = pool_label(pool.get("name"))
        pool_venv = pool.get("venv", venv) or ""
        if truthy(pool.get("launcher", launcher)) and not _is_current_link(pool_venv):
            problems.append("%s: launcher needs venv to be an environment's current link, <envs>/<env>/current, got %s"
                            % (label, pool_venv or "(none)"))
        queues = pool.get("queues") or []
        problems += ["%s: %s" % (label, p) for p in duplicates([q.get("name") for q in queues], "queue")]
        present = [q for q in queues if q.get("state", "present") == "present" and _set(q, "priority")]
        priorities = [q["priority"] for q in present]
        problems += ["%s: priority %s is given to more than one queue (priorities are unique in a pool)" % (label, p)
                     for p in sorted(set(p for p in priorities if priorities.count(p) > 1), key=priorities.index)]
        for queue in queues:
            problems += queue_problems(pool.get("name"), queue)
    problems += duplicates([limit.get("name") for limit in global_limits], "global concurrency limit")
    for limit in global_limits:
        problems += limit_problems(limit)
    return problems


def truthy(value):
    """A role variable's yes/no as Jinja's bool filter reads it."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y", "t")
    return bool(value)


def _is_current_link(path):
    parts = path.split("/")
    return path.startswith("/") and path.endswith(CURRENT_LINK_SUFFIX) and len(parts) >= 4 and all(parts[1:])
