"""Mirrors, timer and prefect-checkout on a converged host.

The tests run git as root in repositories the prefect user owns, hence
`-c safe.directory=*`."""

import json

import pytest

MIRRORS = "/srv/prefect/mirrors"
SECRET = "TEST-DEPLOY-KEY-SECRET-7f3a91"


def git_config(host, repo, key):
    return host.check_output("git config --file %s/%s.git/config --get %s", MIRRORS, repo, key)


@pytest.mark.parametrize("repo", ["flows", "keyed"])
def test_mirror_is_bare_owned_and_gc_is_off(host, repo):
    mirror = host.file(f"{MIRRORS}/{repo}.git")
    assert mirror.is_directory and (mirror.user, mirror.group) == ("prefect", "prefect")
    assert host.check_output("git -c safe.directory=* -C %s/%s.git rev-parse --is-bare-repository", MIRRORS, repo) == "true"
    assert git_config(host, repo, "gc.auto") == "0"
    assert git_config(host, repo, "maintenance.auto") == "false"
    assert git_config(host, repo, "remote.origin.mirror") == "true"
    assert git_config(host, repo, "remote.origin.url") == "git://127.0.0.1/flows.git"
    assert git_config(host, repo, "include.path") == f"/etc/prefect/git/{repo}.gitconfig"


def test_refresh_timer_is_active_and_enabled(host, journal):
    timer = host.service("prefect-git-mirror-refresh.timer")
    assert timer.is_running and timer.is_enabled, journal("prefect-git-mirror-refresh.timer")


def test_refresh_fetches_new_commits_under_the_lock(host, journal):
    host.run_test(
        "cd /tmp/origin-work && echo 'print(4)' > flow.py && git commit -qam 'commit 4' "
        "&& git push -q /srv/origin/flows.git main"
    )
    want = host.check_output("git -C /srv/origin/flows.git rev-parse main")
    result = host.run("systemctl start prefect-git-mirror-refresh.service")
    assert result.rc == 0, journal("prefect-git-mirror-refresh.service")
    assert host.check_output("git -c safe.directory=* -C %s/flows.git rev-parse main", MIRRORS) == want
    assert host.file(f"{MIRRORS}/flows.git/prefect-checkout-fetched").exists


def test_checkout_as_the_prefect_user_gives_a_worktree_of_the_right_commit(host):
    want = host.check_output("git -C /srv/origin/flows.git rev-parse release")
    result = host.run("runuser -u prefect -- prefect-checkout --repo flows --ref release --run-id molecule-run-1")
    assert result.rc == 0, result.stderr
    path = result.stdout.strip()
    assert path == "/srv/prefect/runs/molecule-run-1/flows"
    assert host.check_output("git -c safe.directory=* -C %s rev-parse HEAD", path) == want
    assert host.file(f"{path}/.git").is_file, "a worktree, not a clone"
    assert host.file(f"{path}/flow.py").user == "prefect"


def test_checkout_config_names_the_repos(host):
    config = json.loads(host.file("/etc/prefect/checkout.json").content_string)
    assert config["repos"]["flows"]["url"] == "git://127.0.0.1/flows.git"
    assert config["mirrors_dir"] == MIRRORS
    f = host.file("/etc/prefect/checkout.json")
    assert (f.user, f.group, f.mode) == ("root", "prefect", 0o640)


def test_deploy_key_is_private_and_nowhere_else(host):
    key = host.file("/etc/prefect/git/keyed.key")
    assert (key.user, key.group, key.mode) == ("root", "prefect", 0o640)
    assert SECRET in key.content_string
    secrets_dir = host.file("/etc/prefect/git")
    assert (secrets_dir.user, secrets_dir.group, secrets_dir.mode) == ("root", "prefect", 0o750)
    # git runs as prefect: it reads the key, but cannot change it or how it is used.
    assert host.run("runuser -u prefect -- cat /etc/prefect/git/keyed.key").rc == 0
    assert host.run("runuser -u prefect -- sh -c 'echo x >> /etc/prefect/git/keyed.gitconfig'").rc != 0
    assert "-i /etc/prefect/git/keyed.key" in host.file("/etc/prefect/git/keyed.gitconfig").content_string
    places = (
        "ps -eo args; systemctl cat prefect-git-mirror-refresh.service prefect-git-mirror-refresh.timer; "
        "cat /srv/prefect/mirrors/keyed.git/config /etc/prefect/checkout.json; journalctl --no-pager"
    )
    assert SECRET not in host.run(places).stdout


def test_other_users_cannot_read_credentials(host):
    assert host.run("runuser -u nobody -- cat /etc/prefect/git/keyed.key").rc != 0
