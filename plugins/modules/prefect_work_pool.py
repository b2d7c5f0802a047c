#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_work_pool
short_description: Manage a Prefect 3 work pool and its base job template
description:
  - Creates, updates or deletes a work pool through the Prefect REST API
    (C(/work_pools/)), with check mode and C(--diff).
  - The base job template is reconciled on every run. Without I(base_job_template)
    it is the default template of the pool I(type) that the server itself offers
    (C(GET /collections/views/aggregate-worker-metadata)), so nothing is hard-coded.
    I(job_variables) then become the defaults of the template's variables; the
    variables stay in the template, so deployments and flow runs can still
    override them.
  - Makes no write request when the pool already matches.
  - Talks to the API with Ansible's own HTTP client; Prefect does not need to be
    installed where the module runs.
author: prefect-fleet maintainers
options:
  name:
    description:
      - Name of the work pool. Names starting with C(prefect) are reserved by Prefect.
    type: str
    required: true
  type:
    description:
      - Worker type of the pool, such as C(process), C(docker) or C(kubernetes).
      - Must be a type the server lists in its worker registry. The type of an
        existing pool cannot change; the module fails rather than replace the pool.
    type: str
    default: process
  description:
    description:
      - Description of the pool. Left as it is when not given.
    type: str
  base_job_template:
    description:
      - The full base job template, a dict with a C(job_configuration) and a
        C(variables) key. Defaults to the server's default template for I(type).
    type: dict
  job_variables:
    description:
      - Defaults for the template's variables, for example C(command) and C(env).
        A dict default such as C(env) is merged into the one the template has.
      - Every key must be a variable of the template.
    type: dict
  concurrency_limit:
    description:
      - Maximum number of flow runs of the pool that may be pending or running at once.
      - C(0) is a real limit (nothing runs); C(null) (the default) means no limit,
        and clears a limit the pool had.
    type: int
  paused:
    description:
      - Whether the pool is paused (workers get no flow runs from it).
    type: bool
    default: false
  state:
    description:
      - C(present) creates or updates the pool, C(absent) deletes it with its queues.
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
    details: Shows before and after of only the fields that change; template fields by their dotted path.
  platform:
    platforms: posix
notes:
  - Verified against Prefect 3.8.8, whose API stores C(0) as a limit and takes C(null) to
    clear one; the module sends C(null) itself (C(prefect work-pool update) cannot clear a
    limit, that takes C(prefect work-pool clear-concurrency-limit)).
  - The server accepts any pool type string; the module checks I(type) against the
    server's worker registry so a typo fails instead of making a pool no worker serves.
seealso:
  - module: prefect_fleet.fleet.prefect_work_queue
  - module: prefect_fleet.fleet.prefect_global_concurrency_limit
"""

EXAMPLES = r"""
- name: A process pool whose flow runs use a prebuilt virtualenv, at most 4 at a time
  prefect_fleet.fleet.prefect_work_pool:
    name: etl
    type: process
    description: ETL flows on the worker fleet
    concurrency_limit: 4
    job_variables:
      command: /srv/prefect/envs/etl/current/bin/python -m prefect.engine
      env:
        PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES: "false"
  delegate_to: localhost
  run_once: true

- name: Stop the pool from starting anything (a limit of 0, not "no limit")
  prefect_fleet.fleet.prefect_work_pool:
    name: etl
    concurrency_limit: 0

- name: Delete the pool
  prefect_fleet.fleet.prefect_work_pool:
    name: etl
    state: absent
"""

RETURN = r"""
work_pool:
  description:
    - The pool as the API returns it after the change; in check mode, what it would be.
    - Empty after a delete.
  returned: always
  type: dict
  sample:
    name: etl
    type: process
    description: ETL flows on the worker fleet
    is_paused: false
    status: NOT_READY
    concurrency_limit: 4
    base_job_template:
      job_configuration: {command: "{{ command }}", env: "{{ env }}"}
      variables: {type: object, properties: {}}
changes:
  description: The API fields that were (or in check mode would be) sent, by name.
  returned: always
  type: list
  elements: str
  sample: [concurrency_limit, is_paused]
"""

import copy  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.work_pool_rules import pool_problems  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.prefect_api import (  # noqa: E402
    PrefectAPI,
    PrefectAPIError,
    apply_job_variables,
    fail,
    make_diff,
    prefect_argument_spec,
    quote_name,
    template_shape_error,
)

# API field -> option name, for diffs.
SHOWN = (
    ("type", "type"),
    ("description", "description"),
    ("is_paused", "paused"),
    ("concurrency_limit", "concurrency_limit"),
    ("base_job_template", "base_job_template"),
)


def shown(pool, with_template=True):
    return {option: pool.get(field) for field, option in SHOWN
            if field in pool and (with_template or field != "base_job_template")}


def check_input(module):
    """The rules the role's preflight applies to the whole inventory (module_utils/work_pool_rules)."""
    problems = pool_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems) + ".")


def desired_template(module, api, current):
    """The template the pool should have: the given one or the type's default, plus job_variables."""
    p = module.params
    types = None
    if current is None or p["base_job_template"] is None:
        types = api.worker_types()
        if p["type"] not in types:
            raise PrefectAPIError(
                "Unknown work pool type %r: the Prefect API at %s knows %s." % (
                    p["type"], api.url, ", ".join(sorted(types)) or "no worker types"))
    if p["base_job_template"] is not None:
        template = copy.deepcopy(p["base_job_template"])
    else:
        template = copy.deepcopy(types[p["type"]].get("default_base_job_configuration") or {})
        if template_shape_error(template):
            raise PrefectAPIError(
                "The Prefect API at %s has no usable default base job template for type %r; "
                "give base_job_template." % (api.url, p["type"]))
    template, unknown = apply_job_variables(template, p["job_variables"])
    if unknown:
        known = sorted(template["variables"].get("properties", {}))
        raise PrefectAPIError(
            "job_variables of work pool %r sets %s, which the %s base job template does not declare "
            "(it has: %s)." % (p["name"], ", ".join(unknown), p["type"], ", ".join(known)))
    problem = template_shape_error(template)
    if problem:
        raise PrefectAPIError("Work pool %r: %s." % (p["name"], problem))
    return template


def reconcile(module, api):
    p = module.params
    name = p["name"].strip()
    path = "/work_pools/%s" % quote_name(name)
    current = api.request("GET", path, missing_ok=True)

    if p["state"] == "absent":
        if current is None:
            return dict(changed=False, work_pool={}, changes=[])
        if not module.check_mode:
            api.request("DELETE", path)
        result = dict(changed=True, work_pool={}, changes=["state"])
        if module._diff:
            result["diff"] = make_diff("work pool", name, shown(current, with_template=False), None)
        return result

    if current is not None and current.get("type") != p["type"]:
        raise PrefectAPIError(
            "Work pool %r already exists with type %r, not %r; the type of a pool cannot change: delete it "
            "first (state: absent) or keep type %r." % (name, current.get("type"), p["type"], current.get("type")))

    wanted = dict(
        is_paused=p["paused"],
        concurrency_limit=p["concurrency_limit"],
        base_job_template=desired_template(module, api, current),
    )
    if p["description"] is not None:
        wanted["description"] = p["description"]

    if current is None:
        body = dict(wanted, name=name, type=p["type"])
        pool = body if module.check_mode else api.request("POST", "/work_pools/", body)
        result = dict(changed=True, work_pool=pool, changes=sorted(body))
        if module._diff:
            result["diff"] = make_diff("work pool", name, None, shown(body))
        return result

    changes = {k: v for k, v in wanted.items() if current.get(k) != v}
    if not changes:
        return dict(changed=False, work_pool=current, changes=[])
    if module.check_mode:
        pool = dict(current, **changes)
    else:
        api.request("PATCH", path, changes)
        pool = api.request("GET", path)
    result = dict(changed=True, work_pool=pool, changes=sorted(changes))
    if module._diff:
        result["diff"] = make_diff("work pool", name, shown(current), shown(dict(current, **changes)))
    return result


def argument_spec():
    spec = prefect_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        type=dict(type="str", default="process"),
        description=dict(type="str"),
        base_job_template=dict(type="dict"),
        job_variables=dict(type="dict"),
        concurrency_limit=dict(type="int"),
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
