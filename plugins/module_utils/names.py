# -*- coding: utf-8 -*-
# Copyright: prefect-fleet maintainers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kit's name rules, in one place: what a name of each kind may be.

The roles' preflights use them through the test ``prefect_fleet.fleet.kit_name(KIND)``
(plugins/test/names.py) and the filter repo_problems; the host commands keep
standard-library copies (prefect-venv's NAME_RE is "env", prefect-checkout's is "repo"),
and tests/unit/test_name_rules.py keeps them deciding alike.
"""

from __future__ import annotations

import re

PATTERNS = {
    # A prefect_venv environment (a directory <envs>/<name>, a launcher's socket name).
    "env": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    # A worker, served flow or deployment: the instance of a systemd template unit.
    "unit": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    # A work pool as a worker is started for it (no spaces or '/').
    "pool": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    # A prefect_git_mirror repository: the mirror <mirrors>/<name>.git.
    "repo": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
    # A git branch or tag a served flow checks out.
    "ref": r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}$",
    # A flow's entrypoint, path/to/file.py:function.
    "entrypoint": r"^[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*$",
    # A directory on the host written into a unit (no spaces or quoting).
    "path": r"^/[A-Za-z0-9_./-]+$",
    # A Python module a warm launcher imports, pandas or my_pkg.flows.
    "module": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$",
    # A POSIX user or group the kit creates.
    "account": r"^[a-z_][a-z0-9_-]{0,31}$",
    # A file mode as a quoted octal string, "0750".
    "mode": r"^0?[0-7]{3,4}$",
    # An interpreter: an absolute path or a version like 3.11.
    "python": r"^(/.+|3(\.[0-9]+)?)$",
    # A Prefect release (3.9.1, 3.10.0rc1): it becomes the requirement line prefect==VERSION.
    "prefect_version": r"^[0-9]+(\.[0-9]+){1,3}((a|b|rc|\.post|\.dev)[0-9]+)?$",
}
COMPILED = {kind: re.compile(pattern) for kind, pattern in PATTERNS.items()}
# Kinds that must not hold '..' anywhere: git refuses it in a ref (and the kit uses repository
# names in refs and paths), and a path or entrypoint with it could leave its directory.
NO_DOUBLE_DOT = frozenset(("repo", "ref", "entrypoint", "path"))


def name_ok(value, kind):
    """Whether value (a string) is a valid name of that kind; a KeyError names an unknown kind."""
    if kind not in COMPILED:
        raise KeyError("unknown kind of name %r (the kit knows %s)" % (kind, ", ".join(sorted(PATTERNS))))
    if not isinstance(value, str) or COMPILED[kind].fullmatch(value) is None:  # no trailing newline
        return False
    return kind not in NO_DOUBLE_DOT or ".." not in value
