#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_global_concurrency_limit
short_description: Manage a Prefect 3 global concurrency limit
description:
  - Creates, updates or deletes a global concurrency limit (the limits that
    C(prefect.concurrency.sync.concurrency) and C(rate_limit) take slots of) through the
    Prefect REST API (C(/v2/concurrency_limits/)), with check mode and C(--diff).
  - Makes no write request when the limit already matches.
  - Talks to the API with Ansible's own HTTP client; Prefect does not need to be
    installed where the module runs.
author: prefect-fleet maintainers
options:
  name:
    description:
      - Name of the limit.
    type: str
    required: true
  limit:
    description:
      - Number of slots. C(0) is a real limit (nothing gets a slot). Required with C(state=present).
    type: int
  active:
    description:
      - Whether the limit is enforced. An inactive limit lets everything through.
    type: bool
    default: true
  slot_decay_per_second:
    description:
      - Slots freed per second when the limit is used as a rate limit; C(0) for a plain
        concurrency limit.
    type: float
    default: 0
  state:
    description:
      - C(present) creates or updates the limit, C(absent) deletes it.
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
- name: At most 5 flow runs talk to the warehouse at once
  prefect_fleet.fleet.prefect_global_concurrency_limit:
    name: warehouse
    limit: 5

- name: A rate limit of 10 calls a second
  prefect_fleet.fleet.prefect_global_concurrency_limit:
    name: vendor-api
    limit: 10
    slot_decay_per_second: 10

- name: Delete a limit
  prefect_fleet.fleet.prefect_global_concurrency_limit:
    name: warehouse
    state: absent
"""

RETURN = r"""
concurrency_limit:
  description: The limit as the API returns it after the change; in check mode, what it would be. Empty after a delete.
  returned: always
  type: dict
  sample:
    name: warehouse
    limit: 5
    active: true
    active_slots: 0
    slot_decay_per_second: 0.0
changes:
  description: The API fields that were (or in check mode would be) sent.
  returned: always
  type: list
  elements: str
  sample: [limit]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.work_pool_rules import limit_problems  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.prefect_api import (  # noqa: E402
    PrefectAPI,
    PrefectAPIError,
    fail,
    make_diff,
    prefect_argument_spec,
    quote_name,
)

FIELDS = ("limit", "active", "slot_decay_per_second")


def shown(limit):
    return {k: limit.get(k) for k in FIELDS if k in limit}


def same(field, current, wanted):
    if field == "slot_decay_per_second":
        return float(current or 0) == float(wanted or 0)
    return current == wanted


def check_input(module):
    """The rules the role's preflight applies to the whole inventory (module_utils/work_pool_rules)."""
    problems = limit_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems) + ".")


def reconcile(module, api):
    p = module.params
    name = p["name"].strip()
    path = "/v2/concurrency_limits/%s" % quote_name(name)
    current = api.request("GET", path, missing_ok=True)

    if p["state"] == "absent":
        if current is None:
            return dict(changed=False, concurrency_limit={}, changes=[])
        if not module.check_mode:
            api.request("DELETE", path)
        result = dict(changed=True, concurrency_limit={}, changes=["state"])
        if module._diff:
            result["diff"] = make_diff("global concurrency limit", name, shown(current), None)
        return result

    wanted = dict(limit=p["limit"], active=p["active"], slot_decay_per_second=float(p["slot_decay_per_second"] or 0))
    if current is None:
        body = dict(wanted, name=name)
        created = body if module.check_mode else api.request("POST", "/v2/concurrency_limits/", body)
        result = dict(changed=True, concurrency_limit=created, changes=sorted(body))
        if module._diff:
            result["diff"] = make_diff("global concurrency limit", name, None, shown(body))
        return result

    changes = {k: v for k, v in wanted.items() if not same(k, current.get(k), v)}
    if not changes:
        return dict(changed=False, concurrency_limit=current, changes=[])
    if module.check_mode:
        limit = dict(current, **changes)
    else:
        api.request("PATCH", path, changes)
        limit = api.request("GET", path)
    result = dict(changed=True, concurrency_limit=limit, changes=sorted(changes))
    if module._diff:
        result["diff"] = make_diff("global concurrency limit", name, shown(current), shown(dict(current, **changes)))
    return result


def argument_spec():
    spec = prefect_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        limit=dict(type="int"),
        active=dict(type="bool", default=True),
        slot_decay_per_second=dict(type="float", default=0.0),
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
