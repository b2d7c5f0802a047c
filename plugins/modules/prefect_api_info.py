#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_api_info
short_description: Check a Prefect 3 API and list its worker types and work pools
description:
  - Reads, never writes. Fails with one clear message when the API cannot be
    reached, the URL has no scheme, or the API key is rejected, so a play can check
    the API once before it changes anything.
  - Lists the worker types the server offers (the pool types it accepts, from
    C(GET /collections/views/aggregate-worker-metadata)) and the existing work pools
    with their types.
author: prefect-fleet maintainers
extends_documentation_fragment:
  - prefect_fleet.fleet.prefect_api
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: prefect_fleet.fleet.prefect_work_pool
"""

EXAMPLES = r"""
- name: Check the API and learn the pool types it accepts
  prefect_fleet.fleet.prefect_api_info:
  register: prefect_api
  delegate_to: localhost
  run_once: true

- name: Show them
  ansible.builtin.debug:
    var: prefect_api.worker_types
"""

RETURN = r"""
api_url:
  description: The API URL that answered.
  returned: always
  type: str
  sample: http://127.0.0.1:4200/api
server_version:
  description: Version of the Prefect server (C(GET /admin/version)); null where the API does not tell (Prefect Cloud).
  returned: always
  type: str
  sample: 3.8.8
worker_types:
  description: The worker (pool) types the server offers, sorted.
  returned: always
  type: list
  elements: str
  sample: [docker, ecs, kubernetes, process]
worker_variables:
  description: For each worker type, the variables of its default base job template (what I(job_variables) may set).
  returned: always
  type: dict
  sample: {process: [command, env, labels, name, stream_output, working_dir]}
work_pools:
  description: The existing work pools, name to type.
  returned: always
  type: dict
  sample: {etl: process}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.prefect_api import (  # noqa: E402
    PrefectAPI,
    PrefectAPIError,
    fail,
    prefect_argument_spec,
)

PAGE = 200  # the server's default and maximum page size (PREFECT_SERVER_API_DEFAULT_LIMIT)


def gather(api):
    types = api.worker_types()
    variables = {
        name: sorted(((meta.get("default_base_job_configuration") or {}).get("variables") or {}).get("properties") or {})
        for name, meta in types.items()
    }
    try:
        version = api.request("GET", "/admin/version")
    except PrefectAPIError as exc:
        if exc.status in (-1, 401):
            raise
        version = None
    pools = {}
    offset = 0
    while True:
        page = api.request("POST", "/work_pools/filter", {"limit": PAGE, "offset": offset}) or []
        pools.update((pool["name"], pool.get("type")) for pool in page)
        if len(page) < PAGE:
            break
        offset += PAGE
    return dict(changed=False, api_url=api.url, server_version=version, worker_types=sorted(types),
                worker_variables=variables, work_pools=pools)


def argument_spec():
    return prefect_argument_spec()


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    api = PrefectAPI(module)
    try:
        result = gather(api)
    except PrefectAPIError as exc:
        fail(module, api, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
