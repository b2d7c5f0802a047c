# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kit's rule for the paths of its tree, in one place for every role's preflight.

``path | prefect_fleet.fleet.path_problem`` is ``''`` for a path the kit may own and remove,
otherwise what is wrong with it, as one sentence a fail_msg can show after the variable's
name. The host commands keep a standard-library copy of the list (prefect-cleanup's
FORBIDDEN_ROOTS); tests/unit/test_path_rules.py keeps both deciding alike.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: path_problem
short_description: What is wrong with a path the kit would own, or an empty string
description:
  - Empty for an absolute path without C(.) or C(..) parts that is not C(/) or a system
    directory (trailing slashes ignored); otherwise one sentence saying why not.
positional: _input
options:
  _input:
    description: The path.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse a root the kit must not own
  ansible.builtin.assert:
    that: (prefect_host_root | prefect_fleet.fleet.path_problem) == ''
    fail_msg: "prefect_host_root {{ prefect_host_root | prefect_fleet.fleet.path_problem }}"
"""

RETURN = r"""
_value:
  description: Empty when the path is fine, else the reason.
  type: str
"""

# Directories whose removal would take the system with it: never the kit's tree.
SYSTEM_DIRECTORIES = (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run",
    "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/local", "/var", "/var/lib", "/var/tmp",
)


def path_problem(path):
    if not isinstance(path, str):
        return "must be a path (a string), got %r" % (path,)
    if not path.startswith("/"):
        return "must be an absolute path, got '%s'" % path
    if {".", ".."} & set(path.split("/")):
        return "must not have '.' or '..' parts, got '%s'" % path
    if (path.rstrip("/") or "/") in SYSTEM_DIRECTORIES:
        return "must not be a system directory (%s), got '%s'" % (", ".join(SYSTEM_DIRECTORIES), path)
    return ""


class FilterModule:
    def filters(self):
        return {"path_problem": path_problem}
