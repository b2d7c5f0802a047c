# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kit's rule for an environment's requirement and constraint lines, in one place.

``lines | prefect_fleet.fleet.requirement_problems`` is the list of what is wrong with the
lines (empty when nothing is). A line that starts with ``-`` is an installer option
(``--index-url``, ``--extra-index-url``, ``-e``, ``-r``, ``--trusted-host``): it changes where
packages come from or what runs at build time, so it is refused unless the role's
prefect_venv_allow_installer_options allows it. The host command prefect-venv keeps a
standard-library copy (installer_options); tests/unit/test_requirement_rules.py keeps both
deciding alike.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: requirement_problems
short_description: What is wrong with requirement or constraint lines of an environment
description:
  - An empty list when every line is a requirement (PEP 508), a comment or blank; otherwise one
    sentence per problem.
  - A line starting with C(-) is an installer option and refused unless I(allow_options).
positional: _input
options:
  _input:
    description: The lines (a list of strings).
    type: list
    elements: str
    required: true
  allow_options:
    description: Accept installer options.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Refuse installer options among the requirements
  ansible.builtin.assert:
    that: (item.requirements | prefect_fleet.fleet.requirement_problems) == []
"""

RETURN = r"""
_value:
  description: The problems, empty when there are none.
  type: list
  elements: str
"""


def installer_options(lines):
    """The lines that are installer options: after leading blanks they start with '-'."""
    return [line.strip() for line in lines if isinstance(line, str) and line.strip().startswith("-")]


def requirement_problems(lines, allow_options=False):
    if not isinstance(lines, list):
        return ["must be a list of lines, got %s" % type(lines).__name__]
    problems = ["line %r is not a string" % (line,) for line in lines if not isinstance(line, str)]
    options = installer_options(lines)
    if options and not allow_options:
        problems.append("installer options %s are refused (they change where packages come from); "
                        "set prefect_venv_allow_installer_options to true to allow them" % options)
    return problems


class FilterModule:
    def filters(self):
        return {"requirement_problems": requirement_problems}
