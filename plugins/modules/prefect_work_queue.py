#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_work_queue
short_description: Manage a work queue of a Prefect 3 work pool
description:
  - Creates, updates or deletes a queue of a work pool through the Prefect REST API
    (C(/work_pools/{pool}/queues)), with check mode and C(--diff).
  - Makes no write request when the queue already matches.
  - Talks to the API with Ansible's own HTTP client; Prefect does not need to be
    installed where the module runs.
author: prefect-fleet maintainers
options:
  pool:
    description:
      - Name of the work pool the queue belongs to. The pool must exist (in check
        mode a missing pool is reported as a change, since an earlier task may create it).
    type: str
    required: true
  name:
    description:
      - Name of the queue. Every pool has a C(default) queue, which can be updated
        but not deleted.
    type: str
    required: true
  description:
    description:
      - Description of the queue. Left as it is when not given.
    type: str
  concurrency_limit:
    description:
      - Maximum number of the queue's flow runs pending or running at once.
      - C(0) is a real limit (nothing runs); C(null) (the default) means no limit.
    type: int
  priority:
    description:
      - Priority of the queue in its pool; C(1) is served first. Left as it is when not given
        (a new queue then gets the first free priority).
      - Prefect keeps priorities unique in a pool; giving a queue a priority another queue
        holds moves that queue (and the ones after it) down by one. Set the queues of a pool
        in ascending priority order to reach the wanted order in one run.
    type: int
  paused:
    description:
      - Whether the queue is paused (workers get no flow runs from it).
    type: bool
    default: false
  state:
    description:
      - C(present) creates or updates the queue, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - prefect_fleet.fleet.prefect_api
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows before and after of only the fields that change.
  platform:
    platforms: posix
seealso:
  - module: prefect_fleet.fleet.prefect_work_pool
"""

EXAMPLES = r"""
- name: A high-priority queue with at most 2 flow runs at once
  prefect_fleet.fleet.prefect_work_queue:
    pool: etl
    name: urgent
    priority: 1
    concurrency_limit: 2

- name: Pause the default queue
  prefect_fleet.fleet.prefect_work_queue:
    pool: etl
    name: default
    paused: true

- name: Delete a queue
  prefect_fleet.fleet.prefect_work_queue:
    pool: etl
    name: old
    state: absent
"""

RETURN = r"""
work_queue:
  description: The queue as the API returns it after the change; in check mode, what it would be. Empty after a delete.
  returned: always
  type: dict
  sample:
    name: urgent
    work_pool_name: etl
    priority: 1
    concurrency_limit: 2
    is_paused: false
    status: NOT_READY
changes:
  description: The API fields that were (or in check mode would be) sent.
  returned: always
  type: list
  elements: str
  sample: [priority]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.work_pool_rules import queue_problems  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.prefect_api import (  # noqa: E402
    PrefectAPI,
    PrefectAPIError,
    fail,
    make_diff,
    prefect_argument_spec,
    quote_name,
)

SHOWN = (
    ("description", "description"),
    ("is_paused", "paused"),
    ("concurrency_limit", "concurrency_limit"),
    ("priority", "priority"),
)


def shown(queue):
    return {option: queue.get(field) for field, option in SHOWN if field in queue}


def check_input(module):
    """The rules the role's preflight applies to the whole inventory (module_utils/work_pool_rules)."""
    p = module.params
    problems = ["work pool must not be empty"] if not (p["pool"] or "").strip() else queue_problems(p["pool"].strip(), p)
    if problems:
        module.fail_json(msg="; ".join(problems) + ".")


def reconcile(module, api):
    p = module.params
    pool_name, name = p["pool"].strip(), p["name"].strip()
    label = "%s/%s" % (pool_name, name)
    pool_path = "/work_pools/%s" % quote_name(pool_name)
    path = "%s/queues/%s" % (pool_path, quote_name(name))
    pool = api.request("GET", pool_path, missing_ok=True)
    if pool is None:
        if p["state"] == "absent":
            return dict(changed=False, work_queue={}, changes=[])
        if module.check_mode:
            module.warn("Work pool %r does not exist (yet): queue %r would be created once it does." % (pool_name, name))
            current = None
        else:
            raise PrefectAPIError("Work pool %r does not exist at %s; create it first (prefect_work_pool)."
                                  % (pool_name, api.url))
    else:
        current = api.request("GET", path, missing_ok=True)

    if p["state"] == "absent":
        if current is None:
            return dict(changed=False, work_queue={}, changes=[])
        if current.get("id") == pool.get("default_queue_id"):
            raise PrefectAPIError("Queue %r is the default queue of work pool %r; Prefect does not delete a pool's "
                                  "default queue (delete the pool, or keep the queue and pause it)." % (name, pool_name))
        if not module.check_mode:
            api.request("DELETE", path)
        result = dict(changed=True, work_queue={}, changes=["state"])
        if module._diff:
            result["diff"] = make_diff("work queue", label, shown(current), None)
        return result

    wanted = dict(is_paused=p["paused"], concurrency_limit=p["concurrency_limit"])
    if p["description"] is not None:
        wanted["description"] = p["description"]
    if p["priority"] is not None:
        wanted["priority"] = p["priority"]

    if current is None:
        body = dict(wanted, name=name)
        if module.check_mode:
            queue = dict(body, work_pool_name=pool_name)
        else:
            queue = api.request("POST", "%s/queues" % pool_path, body)
            if queue.get("is_paused") and queue.get("status") != "PAUSED":
                # Prefect 3.8.8 creates a paused queue with status NOT_READY; pausing it
                # again through PATCH sets the status the UI and the CLI show.
                api.request("PATCH", path, {"is_paused": True})
                queue = api.request("GET", path)
        result = dict(changed=True, work_queue=queue, changes=sorted(body))
        if module._diff:
            result["diff"] = make_diff("work queue", label, None, shown(body))
        return result

    changes = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changes:
        return dict(changed=False, work_queue=current, changes=[])
    if module.check_mode:
        queue = dict(current, **changes)
    else:
        api.request("PATCH", path, changes)
        queue = api.request("GET", path)
    result = dict(changed=True, work_queue=queue, changes=sorted(changes))
    if module._diff:
        result["diff"] = make_diff("work queue", label, shown(current), shown(dict(current, **changes)))
    return result


def argument_spec():
    spec = prefect_argument_spec()
    spec.update(
        pool=dict(type="str", required=True),
        name=dict(type="str", required=True),
        description=dict(type="str"),
        concurrency_limit=dict(type="int"),
        priority=dict(type="int"),
        paused=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_input(module)
    api = PrefectAPI(module)
    try:
        result = reconcile(module, api)
    except PrefectAPIError as exc:
        fail(module, api, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
