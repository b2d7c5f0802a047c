"""rotate_secrets.yml: the new API key reaches every worker, one host at a time, with no
run cut short; it shows up nowhere but in the 0600 environment files."""

from __future__ import annotations

import uuid

from ops_lib import REPO, hosts, invocation, not_completed, queue, wait_final, wait_running

NEW_KEY = "pnu_opsMoleculeSecretKeyTwo9876543210"


def test_rotating_the_api_key_fails_no_run(run_playbook):
    fleet = hosts()
    before = {name: invocation(h) for name, h in fleet.items()}
    ids = queue(6, 12, f"rotate-{uuid.uuid4().hex[:8]}")
    wait_running(ids, at_least=4)
    result = run_playbook(REPO / "playbooks/rotate_secrets.yml",
                          extra_vars={"ops_api_key": NEW_KEY, "ops_env_imports": ["prefect.engine", "json"]})
    assert result.rc == 0, result.output
    assert NEW_KEY not in result.output
    found = wait_final(ids)
    assert not not_completed(found), not_completed(found)
    for name, h in fleet.items():
        env = h.file("/etc/prefect/worker-a.env")
        assert env.mode == 0o600 and env.user == "root", name
        assert f"PREFECT_API_KEY={NEW_KEY}" in env.content_string.replace('"', "").replace("'", ""), name
        assert invocation(h) != before[name], f"{name}: the worker did not restart with the new key"
        assert NEW_KEY not in h.check_output("ps -eo args"), name
        assert NEW_KEY not in h.check_output("systemctl show prefect-worker@a.service prefect-launcher@flows.service"), name
        assert NEW_KEY not in h.check_output("journalctl --no-pager -q -o cat"), name
