"""A corrupt mirror is moved aside and mirrored again by the next checkout; the run completes."""

from __future__ import annotations

import shlex

import pytest
from faults_lib import MIRROR, MIRROR_LOCK, as_prefect, fsck, host, not_completed, queue, wait_final, wait_for_log

pytestmark = pytest.mark.reliability("fault", subject="prefect-checkout")

CORRUPTIONS = {
    # One pack holds every object (repacked first), so the run's commit is in the cut part.
    "truncated pack": f"""
        set -eu
        cd {MIRROR}
        runuser -u prefect -- git repack -q -a -d
        pack=$(ls objects/pack/*.pack)
        truncate -s $(( $(stat -c %s "$pack") / 3 )) "$pack"
    """,
    "broken ref": f"""
        set -eu
        cd {MIRROR}
        echo 0123456789abcdef0123456789abcdef01234567 > refs/heads/main
        chown prefect:prefect refs/heads/main
    """,
}


@pytest.fixture(scope="module")
def no_refresh():
    """The mirror's refresh timer is stopped meanwhile (and a refresh in flight with it), so
    that the run's checkout is the one that finds the corruption: a refresh also finds it and
    moves the mirror aside, and one that fired between the corruption and the test's own fsck
    made the case fail with "the corruption did not take"."""
    h = host()
    h.check_output("systemctl stop prefect-git-mirror-refresh.timer prefect-git-mirror-refresh.service")
    yield h
    h.check_output("systemctl start prefect-git-mirror-refresh.timer")


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_mirror(no_refresh, corruption):
    """The mirror is corrupted under a live worker; a flow run queued next completes in its own worktree, the mirror is moved aside and mirrored again, and the new one passes git fsck."""
    h = no_refresh
    aside_before = set(h.run(f"ls -d {MIRROR}.corrupt-* 2>/dev/null").stdout.split())
    # Under the mirror's flock, as every writer of the mirror works: a checkout's fetch in
    # flight would otherwise race the repack (its temporary pack vanishing under it).
    h.check_output(f"flock -w 120 {MIRROR_LOCK} sh -c {shlex.quote(CORRUPTIONS[corruption])}")
    assert fsck(h).rc != 0, "the corruption did not take"
    [run] = queue(1, 1)
    found = wait_final([run], timeout=240)
    assert not not_completed(found), not_completed(found)
    logs = wait_for_log(run, "working directory: ")
    assert any(f"working directory: /srv/prefect/runs/{run}" in m for m in logs), logs
    aside = set(h.run(f"ls -d {MIRROR}.corrupt-* 2>/dev/null").stdout.split()) - aside_before
    assert len(aside) == 1, f"expected the corrupt mirror moved aside once, got {aside}"
    checked = fsck(h)
    assert checked.rc == 0, checked.stdout + checked.stderr
    journal = h.run("journalctl --no-pager --since -5min | grep -F 'is corrupt'")
    assert "moving it aside" in journal.stdout, "the host's journal does not say why the mirror was replaced"
    assert h.run(as_prefect(f"git -C {MIRROR} rev-parse --verify -q main")).rc == 0
