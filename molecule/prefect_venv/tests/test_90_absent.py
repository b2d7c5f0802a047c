"""prefect_venv_state: absent removes the environments, uv, the wheelhouse and the command."""


def test_role_absent_removes_everything(host, run_playbook):
    result = run_playbook("""
- name: Remove prefect_venv
  hosts: all
  gather_facts: false
  vars:
    prefect_venv_state: absent
    prefect_venv_envs: [{name: flows}, {name: legacy}]
  roles:
    - role: prefect_fleet.fleet.prefect_venv
""")
    assert result.rc == 0, result.output
    for path in ("/srv/prefect/envs/flows", "/srv/prefect/envs/legacy", "/srv/prefect/envs/.uv",
                 "/srv/prefect/wheelhouse", "/usr/local/bin/prefect-venv"):
        assert not host.file(path).exists, path
    assert host.file("/srv/prefect/envs").is_directory, "prefect_host's tree stays"
