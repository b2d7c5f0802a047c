"""Bad input fails early with a message naming the variable, and changes nothing."""

import pytest

pytestmark = pytest.mark.reliability(
    "bad input", subject="prefect_host",
    title="The role fails before any change with one message naming the variable; the host is unchanged.")

PLAY = """
- name: Apply prefect_host with bad input
  hosts: all
  gather_facts: false
  roles:
    - role: prefect_fleet.fleet.prefect_host
"""

# A separate root so that a wrongly accepted run would visibly create something.
FRESH = {"prefect_host_root": "/srv/prefect-bad-input", "prefect_host_config_dir": "/etc/prefect-bad-input"}

CASES = {
    "relative root": ({"prefect_host_root": "srv/prefect"}, "prefect_host_root"),
    "root is /": ({"prefect_host_root": "/"}, "prefect_host_root"),
    "root is a system dir": ({"prefect_host_root": "/usr/"}, "prefect_host_root"),
    "root with ..": ({"prefect_host_root": "/srv/x/../../etc"}, "prefect_host_root"),
    "relative subdir": ({"prefect_host_runs_dir": "runs"}, "prefect_host_runs_dir"),
    "mode not octal": ({"prefect_host_dir_mode": "0789"}, "prefect_host_dir_mode"),
    "mode as a word": ({"prefect_host_root_mode": "rwxr-x---"}, "prefect_host_root_mode"),
    "unquoted mode": ({"prefect_host_locks_dir_mode": 0o644}, "prefect_host_locks_dir_mode"),
    "user with spaces": ({"prefect_host_user": "bad user"}, "prefect_host_user"),
    "group upper case": ({"prefect_host_group": "Prefect"}, "prefect_host_group"),
    "user root": ({"prefect_host_user": "root"}, "prefect_host_user"),
    "unknown state": ({"prefect_host_state": "gone"}, "prefect_host_state"),
    "packages not a list": ({"prefect_host_packages": {"git": 1}}, "prefect_host_packages"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_and_changes_nothing(host, run_playbook, host_state, case):
    bad_vars, variable = CASES[case]
    before = host_state()
    result = run_playbook(PLAY, extra_vars={**FRESH, **bad_vars})
    assert result.rc != 0, f"{case}: the run succeeded\n{result.output}"
    assert variable in result.output, f"{case}: the error does not name {variable}\n{result.output}"
    recap = next(iter(result.recap.values()))
    assert recap["changed"] == 0, result.output
    assert host_state() == before, f"{case}: the host changed"
