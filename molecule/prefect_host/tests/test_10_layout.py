"""What a user checks after converging prefect_host with its defaults."""

import pytest

ROOT = "/srv/prefect"
TREE = {
    # path: (owner, group, mode)
    ROOT: ("root", "prefect", 0o750),
    f"{ROOT}/envs": ("prefect", "prefect", 0o750),
    f"{ROOT}/mirrors": ("prefect", "prefect", 0o750),
    f"{ROOT}/runs": ("prefect", "prefect", 0o750),
    f"{ROOT}/locks": ("prefect", "prefect", 0o770),
    f"{ROOT}/log": ("prefect", "prefect", 0o750),
    f"{ROOT}/tmp": ("prefect", "prefect", 0o700),
    f"{ROOT}/home": ("prefect", "prefect", 0o700),
    "/etc/prefect": ("root", "prefect", 0o750),
}


def test_system_user(host):
    user = host.user("prefect")
    assert user.exists
    assert user.uid < 1000, "a system user"
    assert user.group == "prefect"
    assert user.groups == ["prefect"]
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == f"{ROOT}/home"
    assert user.password in ("!", "*", "!*"), "no password login"


@pytest.mark.parametrize("path", sorted(TREE))
def test_tree_owner_and_mode(host, path):
    owner, group, mode = TREE[path]
    d = host.file(path)
    assert d.is_directory
    assert (d.user, d.group, d.mode) == (owner, group, mode)


@pytest.mark.parametrize("package", ["git", "python3-venv", "util-linux", "procps"])
def test_base_packages(host, package):
    assert host.package(package).is_installed


def test_user_can_work_in_its_tree(host):
    script = (
        f"set -e; touch {ROOT}/runs/probe; rm {ROOT}/runs/probe; "
        f"flock -w 5 {ROOT}/locks/probe.lock true; rm {ROOT}/locks/probe.lock; "
        f"python3 -m venv {ROOT}/tmp/probe-venv; rm -rf {ROOT}/tmp/probe-venv"
    )
    result = host.run("runuser -u prefect -- sh -c %s", script)
    assert result.rc == 0, result.stderr


def test_user_cannot_write_outside_its_tree(host):
    # Every path on the root filesystem the prefect user may write to, except its
    # own tree and the world-writable sticky temp directories every user has.
    # (Symbolic links are skipped: -writable would judge their target.)
    result = host.run(
        "runuser -u prefect -- find / -xdev "
        r"\( -path /proc -o -path /sys -o -path %s -o -path /tmp -o -path /var/tmp \) -prune "
        "-o ! -type l -writable -print",
        ROOT,
    )
    writable = [p for p in result.stdout.split() if p]
    assert writable == [], f"prefect can write outside {ROOT}: {writable}"
    for path in ("/etc/prefect", "/usr/local/bin", "/srv", ROOT):
        probe = host.run("runuser -u prefect -- touch %s/probe", path)
        assert probe.rc != 0, f"prefect could create a file in {path}"


def test_other_users_cannot_read_the_tree(host):
    result = host.run("runuser -u nobody -- ls %s", ROOT)
    assert result.rc != 0


def test_user_has_no_sudo(host):
    result = host.run("sudo -l -U prefect")
    assert "not allowed to run sudo" in result.stdout + result.stderr
