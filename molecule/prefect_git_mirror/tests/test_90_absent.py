"""state: absent removes one mirror, then everything the role made."""

PLAY = """
- name: Apply prefect_git_mirror
  hosts: all
  gather_facts: false
  vars:
    prefect_git_mirror_state: {state}
    prefect_git_mirror_repos:
      - {{name: flows, url: 'git://127.0.0.1/flows.git'}}
      - {{name: keyed, url: 'git://127.0.0.1/flows.git', state: absent}}
  roles:
    - role: prefect_fleet.fleet.prefect_git_mirror
"""


def test_absent_repo_removes_its_mirror_and_key(host, run_playbook):
    result = run_playbook(PLAY.format(state="present"))
    assert result.rc == 0, result.output
    assert not host.file("/srv/prefect/mirrors/keyed.git").exists
    assert not host.file("/etc/prefect/git/keyed.key").exists
    assert host.file("/srv/prefect/mirrors/flows.git").exists


def test_role_absent_removes_everything(host, run_playbook):
    result = run_playbook(PLAY.format(state="absent"))
    assert result.rc == 0, result.output
    for path in ("/srv/prefect/mirrors/flows.git", "/etc/prefect/git", "/etc/prefect/checkout.json",
                 "/usr/local/bin/prefect-checkout", "/etc/systemd/system/prefect-git-mirror-refresh.timer"):
        assert not host.file(path).exists, path
    assert host.run("systemctl is-active prefect-git-mirror-refresh.timer").stdout.strip() != "active"
