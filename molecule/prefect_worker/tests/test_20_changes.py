"""A change restarts only the instance it touches; bad input changes nothing."""

import pytest

BASE_VARS = """
    __repo: "{{ lookup('env', 'MOLECULE_PROJECT_DIRECTORY') }}"
    prefect_worker_api_url: "{{ lookup('file', lookup('env', 'PREFECT_FLEET_SERVER_STATE') ~ '/url') }}"
    prefect_worker_api_key: pnu_moleculeSecretKey0123456789
"""


def play(instances: str, extra: str = "") -> str:
    return f"""
- name: Apply prefect_worker
  hosts: all
  gather_facts: false
  vars:
{BASE_VARS}
    prefect_worker_instances: {instances}
{extra}
  roles:
    - role: prefect_fleet.fleet.prefect_worker
"""


A = "{name: a, pool: molecule-pool, healthcheck_port: 8081}"
B = "{name: b, pool: molecule-pool, healthcheck_port: 8082, query_seconds: 1, limit: 2%s}"


def main_pid(host, instance):
    return host.check_output("systemctl show -p MainPID --value prefect-worker@%s.service", instance)


def test_change_to_one_instance_restarts_only_it(host, run_playbook):
    before = {i: main_pid(host, i) for i in ("a", "b")}
    result = run_playbook(play(f"[{A}, {B % ', extra_env: {MOLECULE_MARK: one}'}]"))
    assert result.rc == 0, result.output
    assert main_pid(host, "a") == before["a"], "instance a was restarted"
    assert main_pid(host, "b") != before["b"], "instance b kept its old settings"
    assert "pnu_moleculeSecretKey0123456789" not in result.output


S = "    prefect_worker_served_flows: [{name: s, healthcheck_port: 8091, %s}]"


@pytest.mark.reliability(
    "bad input", subject="prefect_worker",
    title="The role fails before any change, naming the variable (prefect_worker_instances, _served_flows or _launchers) and the item; no file changes and the running worker is not restarted.")
@pytest.mark.parametrize(
    "instances,extra,message,variable",
    [
        (f"[{A}, {{name: a, pool: molecule-pool, healthcheck_port: 8083}}]", "", "duplicated: ['a']", "instances"),
        (f"[{A}, {{name: c, pool: molecule-pool, healthcheck_port: 8081}}]", "", "duplicated: [8081]", "instances"),
        ("[{name: c, pool: 'my pool', healthcheck_port: 8090}]", "", "invalid: ['my pool']", "instances"),
        ("[{name: c, pool: molecule-pool, healthcheck_port: 8090, env: nosuchenv}]",
         "    prefect_venv_envs: [{name: flows}]", "env 'nosuchenv'", "instances"),
        ("[{name: c, pool: molecule-pool, healthcheck_port: 8090, env: nosuchenv}]", "", "not built", "instances"),
        ("[{name: c, pool: molecule-pool, healthcheck_port: 8090, limit: 0}]", "", "limit must be at least 1", "instances"),
        (f"[{A}]", S.replace("8091", "8081") % "repo: flows, entrypoint: 'flow.py:hello'", "duplicated: [8081]",
         "instances"),
        (f"[{A}]", S % "repo: flows, path: /srv/code, entrypoint: 'flow.py:hello'", "invalid: ['s']", "served_flows"),
        (f"[{A}]", S % "repo: flows, entrypoint: flow.py", "invalid: ['s']", "served_flows"),
        (f"[{A}]", S % "repo: nosuchrepo, entrypoint: 'flow.py:hello'" + "\n    prefect_git_mirror_repos: [{name: flows}]",
         "invalid: ['s']", "served_flows"),
        (f"[{A}]", S % "path: relative/dir, entrypoint: 'flow.py:hello'", "invalid: ['s']", "served_flows"),
        (f"[{A}]", S % "repo: flows, entrypoint: 'flow.py:hello', limit: 0", "limit must be at least 1", "served_flows"),
        (f"[{A}]", "    prefect_worker_launchers: [{env: 'bad env'}]", "invalid: ['bad env']", "launchers"),
        (f"[{A}]", "    prefect_worker_launchers: [{env: flows, preload: ['pandas; rm -rf /']}]",
         "invalid: ['pandas; rm -rf /']", "launchers"),
        (f"[{A}]", "    prefect_venv_envs: [{name: flows, prefect_version: '3.7.0'}]",
         "its environment 'flows' has Prefect 3.7.0", "instances"),
        (f"[{A}]", "    prefect_venv_envs: [{name: flows}, {name: next, prefect_version: '3.10.0'}]\n"
                   "    prefect_worker_launchers: [{env: next}]",
         "prefect_worker_launchers item 'next': its environment 'next' has Prefect 3.10.0", "launchers"),
    ],
    ids=["duplicate names", "duplicate ports", "pool with a space", "env not in prefect_venv_envs",
         "env not built", "limit 0", "served port taken by a worker", "served repo and path",
         "served entrypoint without function", "served repo not mirrored", "served relative path", "served limit 0",
         "launcher env with a space", "launcher preload not a module", "worker env on an unsupported Prefect",
         "launcher env on an unsupported Prefect"],
)
def test_bad_input(host, run_playbook, host_state, instances, extra, message, variable):
    # Running workers write under /srv/prefect (home, runs): compare what the role writes.
    paths = ("/etc/prefect", "/etc/systemd/system", "/usr/local/lib/prefect-fleet")
    before = host_state(paths), main_pid(host, "a")
    result = run_playbook(play(instances, extra))
    assert result.rc != 0, result.output
    assert message in result.output and f"prefect_worker_{variable}" in result.output, result.output
    assert (host_state(paths), main_pid(host, "a")) == before


def test_absent_instance_is_stopped_and_removed(host, run_playbook):
    result = run_playbook(play(f"[{A}, {B % ', state: absent'}]"))
    assert result.rc == 0, result.output
    assert not host.service("prefect-worker@b.service").is_running
    assert not host.file("/etc/prefect/worker-b.env").exists
    assert not host.file("/etc/systemd/system/prefect-worker@b.service.d").exists
    assert host.service("prefect-worker@a.service").is_running


def test_absent_served_flow_is_stopped_and_removed(host, run_playbook):
    served = "    prefect_worker_served_flows: [{name: hello, repo: flows, entrypoint: 'flow.py:hello', state: absent}]"
    result = run_playbook(play(f"[{A}]", served))
    assert result.rc == 0, result.output
    assert not host.service("prefect-serve@hello.service").is_running
    assert not host.file("/etc/prefect/serve-hello.env").exists
    assert not host.file("/etc/systemd/system/prefect-serve@hello.service.d").exists
    assert host.file("/etc/systemd/system/prefect-serve@.service").exists, "the template stays for other served flows"
    assert host.service("prefect-worker@a.service").is_running


def test_absent_launcher_is_stopped_and_removed(host, run_playbook):
    result = run_playbook(play(f"[{A}]", "    prefect_worker_launchers: [{env: flows, state: absent}]"))
    assert result.rc == 0, result.output
    assert not host.service("prefect-launcher@flows.service").is_running
    assert not host.file("/etc/prefect/launcher-flows.env").exists
    assert not host.file("/etc/systemd/system/prefect-launcher@flows.service.d").exists
    assert not host.file("/srv/prefect/launchers/flows.sock").exists
    assert host.service("prefect-worker@a.service").is_running
