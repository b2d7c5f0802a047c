"""The security audit of a converged host: systemd exposure, secrets, the prefect user, file modes."""

from __future__ import annotations

import re

import pytest
from faults_lib import API_KEY, ENV_DIR, UNITS, host
from test_60_concurrent_converge import NEW_KEY, deploy_key_lines

# `systemd-analyze security` exposure (0 = fully locked down, 10 = nothing restricted) of
# every unit the kit installs, as measured on systemd 252 (Debian 12) and 257 (Debian 13),
# which agree. A change that makes a unit more exposed fails here; one that lowers a
# figure should lower it here too.
EXPOSURE = {
    "prefect-worker@a.service": 1.5,
    "prefect-serve@hello.service": 1.5,
    "prefect-launcher@flows.service": 1.5,
    "prefect-git-mirror-refresh.service": 1.4,
}
SECRET_FILES = {
    "/etc/prefect/worker-a.env": ("root", "0600"),
    "/etc/prefect/serve-hello.env": ("root", "0600"),
    "/etc/prefect/launcher-flows.env": ("root", "0600"),
    "/etc/prefect/git/private.key": ("root", "0640"),  # group prefect: git reads it as prefect
}
PATTERNS = "/root/.secret-patterns"


@pytest.fixture(scope="module")
def secrets_on_host():
    """A 0600 file of every secret, for grep -f (so no secret is on a command line)."""
    h = host()
    secrets = [API_KEY, NEW_KEY, *deploy_key_lines()]
    h.check_output(f"umask 077 && cat > {PATTERNS} <<'EOF'\n" + "\n".join(secrets) + "\nEOF")
    yield h
    h.run(f"rm -f {PATTERNS}")


@pytest.mark.reliability("security", subject="systemd units")
@pytest.mark.parametrize("unit", sorted(EXPOSURE))
def test_systemd_exposure(unit, record_property):
    """systemd-analyze security: the unit's exposure is no worse than the documented figure."""
    out = host().run(f"systemd-analyze security --no-pager {unit}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    value = float(match.group(1))
    record_property("reliability_detail", f"exposure {value:.1f}, limit {EXPOSURE[unit]:.1f}")
    assert value <= EXPOSURE[unit], out.stdout


SCANS = {
    "ps -ef": "ps -eo args",
    "systemctl show": "for u in $(systemctl list-units --all --plain --no-legend 'prefect-*' | awk '{print $1}'); "
                      "do systemctl show \"$u\"; done",
    "journal": "journalctl --no-pager -o cat",
    "world-readable files": f"find / {ENV_DIR} -xdev \\( -path /proc -o -path /sys \\) -prune -o -type f -perm -o+r "
                            "-size -20M -print0 | xargs -0 grep -lF -f " + PATTERNS + " || true",
}


@pytest.mark.reliability("security", subject="secrets")
@pytest.mark.parametrize("where", list(SCANS))
def test_no_secret_leaks(secrets_on_host, where):
    """No API key (old or new) and no line of the deploy key in the process list, systemctl show of the kit's units, the journal, or any world-readable file."""
    h = secrets_on_host
    command = SCANS[where]
    if where != "world-readable files":
        command = f"({command}) | grep -cF -f {PATTERNS} || true"
        hits = int(h.check_output(command) or 0)
        assert hits == 0, f"{hits} lines of {where} hold a secret"
    else:
        found = h.check_output(command)
        assert found == "", f"world-readable files hold a secret: {found}"
    assert int(h.check_output(f"(systemctl show {UNITS[0]}; ps -eo args) | wc -l")) > 10, "nothing was scanned"


@pytest.mark.reliability("security", subject="secrets")
@pytest.mark.parametrize("path", sorted(SECRET_FILES))
def test_secret_files_are_private(path):
    """Files holding the API key are root's and 0600: the prefect user cannot read them (nor another instance's); the deploy key is root's, 0640 to the prefect group, which git runs as: it can read it but not change it."""
    h = host()
    owner, mode = SECRET_FILES[path]
    f = h.file(path)
    assert f.exists and f.user == owner and f"{f.mode:04o}" == mode, (path, f.user, oct(f.mode))
    readable = h.run(f"cd / && runuser -u prefect -- cat {path}").rc == 0
    assert readable == (mode == "0640"), f"prefect can{'' if readable else 'not'} read {path}"
    assert h.run(f"cd / && runuser -u prefect -- sh -c 'echo >> {path}'").rc != 0, f"prefect can write {path}"


@pytest.mark.reliability("security", subject="prefect user")
def test_prefect_user_cannot_sudo():
    """The prefect user has no sudo rights and cannot use sudo."""
    h = host()
    assert h.run("cd / && runuser -u prefect -- sudo -n true").rc != 0
    listed = h.run("sudo -l -U prefect")
    assert "not allowed to run sudo" in listed.stdout, listed.stdout


# What the prefect user may write: the kit's tree below /srv/prefect (not the root of it),
# and the scratch dirs every user may write.
WRITABLE = ("/srv/prefect", "/tmp", "/var/tmp", "/run/lock", "/dev/shm")


@pytest.mark.reliability("security", subject="prefect user")
def test_prefect_user_writes_only_its_tree():
    """The prefect user can write nowhere outside the kit's tree (/srv/prefect/*) and the world-writable scratch dirs: not the kit's config, units, programs or cron job, nor anything of the system."""
    h = host()
    out = h.run("cd / && runuser -u prefect -- find / /run /dev/shm /srv/prefect/envs/flows -xdev "
                "\\( -path /proc -o -path /sys \\) -prune -o ! -type l ! -type s -writable -print 2>/dev/null")
    writable = sorted({p for p in out.stdout.split("\n") if p})
    outside = [p for p in writable if not any(p.startswith(w + "/") for w in WRITABLE) and p not in WRITABLE[1:]]
    assert any(p.startswith("/srv/prefect/runs") for p in writable), "the scan found nothing at all"
    assert outside == [], outside[:50]


# Everything the kit installs outside its tree is root's and written by root only.
ROOT_ONLY = "/etc/prefect /etc/systemd/system/prefect-* /usr/local/lib/prefect-fleet /usr/local/bin/prefect-* " \
            "/etc/cron.d/prefect-cleanup"
# The kit's tree, as the prefect_host README documents it.
TREE = {
    "/srv/prefect": "root prefect 750",
    "/srv/prefect/envs": "prefect prefect 750",
    "/srv/prefect/mirrors": "prefect prefect 750",
    "/srv/prefect/runs": "prefect prefect 750",
    "/srv/prefect/locks": "prefect prefect 770",
    "/srv/prefect/log": "prefect prefect 750",
    "/srv/prefect/tmp": "prefect prefect 700",
    "/srv/prefect/home": "prefect prefect 700",
    "/etc/prefect": "root prefect 750",
}


@pytest.mark.reliability("security", subject="file modes")
def test_file_modes():
    """Modes and owners of everything the kit writes: its tree as documented, nothing world-writable anywhere in it, and its config, units, programs and cron job owned by root and writable by root only."""
    h = host()
    listing = h.check_output(f"stat -c '%n %U %G %a' {' '.join(TREE)}")
    found = {line.rsplit(" ", 3)[0]: " ".join(line.rsplit(" ", 3)[1:]) for line in listing.splitlines()}
    assert found == TREE
    # uv makes the lock files of its cache and of each venv 0666 on purpose (for caches
    # shared by users); no other user reaches them: /srv/prefect is 0750.
    world_writable = h.check_output(f"find /srv/prefect {ROOT_ONLY} -perm -o+w ! -type l ! \\( -name '*.lock' "
                                    "\\( -path '/srv/prefect/cache/uv/*' -o -path '/srv/prefect/envs/*' \\) \\)")
    assert world_writable == "", world_writable
    not_root = h.check_output(f"find {ROOT_ONLY} \\( ! -user root -o -perm -g+w \\) ! -type l")
    assert not_root == "", not_root
    assert int(h.check_output(f"find /srv/prefect {ROOT_ONLY} | wc -l")) > 100, "nothing was checked"
