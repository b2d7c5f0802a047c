"""Bad input fails early, naming the variable or item, and changes nothing."""

import pytest

pytestmark = pytest.mark.reliability(
    "bad input", subject="prefect_venv",
    title="The role fails before any change, naming prefect_venv_envs and the item or field; the host is unchanged.")

CASES = {
    "duplicate names": ("[{name: a, prefect_version: '3.8.8'}, {name: a, prefect_version: '3.8.8'}]", "duplicated: ['a']"),
    "unknown installer": ("[{name: b, prefect_version: '3.8.8', installer: conda}]", "installer"),
    "relative requirements file": ("[{name: c, requirements_file: reqs.txt}]", "requirements_file"),
    "name with a slash": ("[{name: 'x/y', prefect_version: '3.8.8'}]", "invalid: ['x/y']"),
    "name with ..": ("[{name: '..', prefect_version: '3.8.8'}]", "invalid: ['..']"),
    "prefect version that is no release": ("[{name: d, prefect_version: '3.9.1; rm -rf /'}]",
                                           "prefect_version must be a release number"),
    "prefect version the kit has no lock of": ("[{name: f, prefect_version: '3.7.0'}]",
                                               "the kit has no lock of Prefect 3.7.0 (it has 3.8.8, 3.9.1)"),
    "bad python": ("[{name: e, prefect_version: '3.8.8', python: python3}]", "python must be an absolute path"),
    "installer option among the requirements": (
        "[{name: g, prefect_version: '3.8.8', requirements: ['pandas', '--index-url https://pypi.example.com/simple']}]",
        "prefect_venv_envs item 'g': installer options ['--index-url https://pypi.example.com/simple'] are refused"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(host, run_playbook, host_state, case):
    envs, message = CASES[case]
    before = host_state()
    result = run_playbook(f"""
- name: Apply prefect_venv with bad input
  hosts: all
  gather_facts: false
  vars:
    prefect_venv_envs: {envs}
  roles:
    - role: prefect_fleet.fleet.prefect_venv
""")
    assert result.rc != 0, f"{case}: accepted\n{result.output}"
    assert message in result.output, result.output
    assert "prefect_venv_envs" in result.output
    assert host_state() == before
