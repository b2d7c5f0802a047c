"""Bad repositories fail early with a message naming the item, and change nothing."""

import pytest

pytestmark = pytest.mark.reliability(
    "bad input", subject="prefect_git_mirror",
    title="The role fails before any change, naming prefect_git_mirror_repos (and the item) or the variable, without printing a secret; the host is unchanged.")

CASES = {
    "name with a slash": ("[{name: 'a/b', url: 'file:///srv/origin/flows.git'}]", "item 'a/b': name must be"),
    "name with ..": ("[{name: 'x..y', url: 'file:///srv/origin/flows.git'}]", "item 'x..y': name must be"),
    "duplicate names": ("[{name: d, url: 'file:///x'}, {name: d, url: 'file:///y'}]", "duplicated: ['d']"),
    "password in the URL": ("[{name: p, url: 'https://bob:hunter2@git.example.com/org/flows.git'}]", "item 'p'"),
    "token with an SSH URL": ("[{name: t, url: 'git@git.example.com:org/flows.git', token: abc}]", "item 't'"),
    "no URL": ("[{name: u}]", "item 'u'"),
    "plain http URL": ("[{name: h, url: 'http://git.example.com/org/flows.git'}]", "item 'h': url scheme 'http'"),
    "git's ext:: transport": ("[{name: e, url: 'ext::sh -c touch% /tmp/pwned'}]", "item 'e': url uses git's 'ext::'"),
    "deploy key with an https URL": ("[{name: k, url: 'https://git.example.com/org/flows.git', deploy_key: KEY}]",
                                     "item 'k': 'deploy_key' goes with an SSH url"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_repo(host, run_playbook, host_state, case):
    repos, message = CASES[case]
    before = host_state()
    result = run_playbook(f"""
- name: Apply prefect_git_mirror with bad input
  hosts: all
  gather_facts: false
  vars:
    prefect_git_mirror_repos: {repos}
  roles:
    - role: prefect_fleet.fleet.prefect_git_mirror
""")
    assert result.rc != 0, f"{case}: accepted\n{result.output}"
    assert message in result.output and "prefect_git_mirror_repos" in result.output, result.output
    assert "hunter2" not in result.output, "the password was printed"
    assert host_state() == before


def test_too_short_refresh_interval(host, run_playbook, host_state):
    before = host_state()
    result = run_playbook("""
- name: Apply prefect_git_mirror with a bad interval
  hosts: all
  gather_facts: false
  vars:
    prefect_git_mirror_refresh_interval: 5
  roles:
    - role: prefect_fleet.fleet.prefect_git_mirror
""")
    assert result.rc != 0 and "prefect_git_mirror_refresh_interval" in result.output, result.output
    assert host_state() == before
