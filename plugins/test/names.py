# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The test ``prefect_fleet.fleet.kit_name``: ``value is prefect_fleet.fleet.kit_name('env')``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.prefect_fleet.fleet.plugins.module_utils.names import name_ok

DOCUMENTATION = r"""
name: kit_name
short_description: Whether a string is a valid name of one of the kit's kinds
description:
  - True when the value is a string the kit accepts as a name of that kind (an environment, a
    unit, a pool, a repository, a ref, an entrypoint, a path, a module, an account, a mode, a
    python, a Prefect release); the patterns are in module_utils/names.py.
positional: kind
options:
  _input:
    description: The value.
    type: raw
    required: true
  kind:
    description: The kind of name.
    type: str
    required: true
    choices: [env, unit, pool, repo, ref, entrypoint, path, module, account, mode, python, prefect_version]
"""

EXAMPLES = r"""
- name: Refuse environment names the kit cannot make a directory of
  ansible.builtin.assert:
    that: names | reject('prefect_fleet.fleet.kit_name', 'env') | list == []
"""

RETURN = r"""
_value:
  description: Whether the value is a valid name of that kind.
  type: bool
"""


def kit_name(value, kind):
    try:
        return name_ok(value, kind)
    except KeyError as exc:
        raise AnsibleFilterError(str(exc.args[0]))


class TestModule:
    def tests(self):
        return {"kit_name": kit_name}
