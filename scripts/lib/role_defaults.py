"""The defaults of the kit's roles, read from roles/<role>/defaults/main.yml, so that what the
scripts and tests start by hand (a bench worker, a test worker) runs with what the role gives a
host, and a changed default changes them too."""

from __future__ import annotations

import re
from pathlib import Path

ROLES = Path(__file__).resolve().parents[2] / "roles"


def role_default(name: str, role: str = "prefect_worker") -> str:
    """The scalar default `name` of `role`, as written (one `name: value` line)."""
    defaults = ROLES / role / "defaults" / "main.yml"
    match = re.search(rf"^{re.escape(name)}: *(\S+)$", defaults.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f"{name} is not a one-line default in {defaults}")
    return match.group(1).strip("\"'")
