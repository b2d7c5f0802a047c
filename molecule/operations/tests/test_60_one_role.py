"""What the disk-full and corrupt-mirror runbooks run: site.yml for one role on one host
(--limit HOST --tags ROLE) re-converges just that role, with no change on a healthy host."""

from __future__ import annotations

import pytest
from ops_lib import REPO


@pytest.mark.parametrize("args", [("--tags", "prefect_cleanup"), ("--tags", "prefect_git_mirror")])
def test_one_role_on_one_host(run_playbook, args):
    result = run_playbook(REPO / "playbooks/site.yml", limit="ops-2", args=args)
    assert result.rc == 0, result.output
    assert set(result.recap) == {"ops-2"}, result.recap
    assert result.recap["ops-2"]["changed"] == 0, result.output
