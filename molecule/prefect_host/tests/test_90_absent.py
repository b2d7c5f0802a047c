"""state: absent removes what present made (runs last: it tears the host down)."""

PLAY = """
- name: Remove prefect_host
  hosts: all
  gather_facts: false
  roles:
    - role: prefect_fleet.fleet.prefect_host
      prefect_host_state: absent
"""


def test_absent_keep_data_keeps_tree_and_owner(host, run_playbook):
    host.run_test("touch /srv/prefect/runs/keep-me")
    result = run_playbook(PLAY, extra_vars={"prefect_host_keep_data": True})
    assert result.rc == 0, result.output
    assert not host.file("/etc/prefect").exists
    assert host.file("/srv/prefect/runs/keep-me").exists
    assert host.user("prefect").exists


def test_absent_removes_everything_and_is_idempotent(host, run_playbook):
    result = run_playbook(PLAY)
    assert result.rc == 0, result.output
    assert not host.file("/srv/prefect").exists
    assert not host.file("/etc/prefect").exists
    assert not host.user("prefect").exists
    assert not host.group("prefect").exists
    assert host.package("git").is_installed, "shared system packages stay"
    again = run_playbook(PLAY)
    assert again.rc == 0, again.output
    assert next(iter(again.recap.values()))["changed"] == 0, again.output
