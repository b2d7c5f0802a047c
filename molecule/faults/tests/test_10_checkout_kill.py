"""kill -9 of prefect-checkout in the middle of its work leaves a mirror the next checkout uses."""

from __future__ import annotations

import subprocess
import uuid

import pytest
from faults_lib import MIRROR, STATE, as_prefect, fsck, host, lock_is_free

pytestmark = pytest.mark.reliability("fault", subject="prefect-checkout")

# Runs prefect-checkout in a session of its own as the prefect user, waits (polling every
# 10 ms) until a git process of that session matches PATTERN, SIGKILLs the whole session,
# and waits until all of its processes are gone.
KILL_WHEN = r"""
set -u
runuser -u prefect -- setsid prefect-checkout --repo flows --ref big --run-id {run} > /tmp/{run}.out 2>&1 &
sid=
for i in $(seq 500); do
  leader=$(pgrep -o -u prefect -f -- "--run-id {run}")
  [ -n "$leader" ] && sid=$(ps -o sid= -p "$leader" | tr -d ' ') && [ "$sid" = "$leader" ] && break
  sid=
  sleep 0.01
done
[ -n "$sid" ] || {{ echo "prefect-checkout did not start"; cat /tmp/{run}.out; exit 3; }}
pid=
for i in $(seq 3000); do
  pid=$(pgrep -s "$sid" -f -- '{pattern}' | head -n 1)
  [ -n "$pid" ] && break
  sleep 0.01
done
[ -n "$pid" ] || {{ echo "never saw {pattern}"; cat /tmp/{run}.out; exit 3; }}
ps -o pid=,args= -s "$sid"
# `kill -s KILL`: dash, the hosts' /bin/sh, rejects `kill -9 -- -PID` ("Illegal number"),
# and the session would go on to finish its checkout unkilled.
kill -s KILL -- "-$sid" || {{ echo "kill of session $sid failed"; exit 5; }}
for i in $(seq 200); do pgrep -s "$sid" > /dev/null || break; sleep 0.05; done
if pgrep -s "$sid" > /dev/null; then echo "session $sid still alive"; exit 4; fi
echo "killed session $sid"
"""


@pytest.fixture(scope="module")
def big_branch():
    """A branch `big` on the origin with 96 MiB of incompressible data, so that fetching
    it and writing its files take long enough to be killed in the middle. The mirror's
    refresh timer is stopped meanwhile, so that only the checkout fetches it."""
    h = host()
    h.check_output("systemctl stop prefect-git-mirror-refresh.timer prefect-git-mirror-refresh.service")
    work = STATE / "work"
    script = f"""
        set -eu
        cd {work}
        git checkout -q -B big main
        head -c 96M /dev/urandom > big.bin
        git -c user.email=ci@example.invalid -c user.name=CI add big.bin
        git -c user.email=ci@example.invalid -c user.name=CI commit -qm "96 MiB of noise"
        git push -q -f {STATE}/origin/flows.git big
        git checkout -q main
    """
    subprocess.run(["bash", "-c", script], check=True)
    yield h
    subprocess.run(["bash", "-c", f"git -C {STATE}/origin/flows.git branch -D big -q"], check=False)
    h.check_output("systemctl start prefect-git-mirror-refresh.timer")


def test_kill_9_mid_fetch(big_branch):
    """kill -9 of prefect-checkout mid-fetch: the next checkout succeeds, the mirror passes git fsck, no lock is left held."""
    h = big_branch
    run = "fault-fetch-" + uuid.uuid4().hex[:8]
    killed = h.run(KILL_WHEN.format(run=run, pattern="git .*(fetch|index-pack|unpack-objects)"))
    assert killed.rc == 0 and killed.stderr == "", killed.stdout + killed.stderr
    assert lock_is_free(h), "the mirror's lock is still held after the kill"
    again = h.run(as_prefect(f"prefect-checkout --repo flows --ref big --run-id {run}"))
    assert again.rc == 0, again.stderr
    path = again.stdout.strip()
    assert h.file(f"{path}/big.bin").size == 96 * 1024 * 1024
    checked = fsck(h)
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert lock_is_free(h)
    assert h.run(f"find {MIRROR} -name '*.lock'").stdout == "", "git lock files left in the mirror"


def test_kill_9_mid_worktree_add(big_branch):
    """kill -9 of prefect-checkout while it adds the run's worktree (git worktree add, then its files): a retry of the run gets a whole checkout, the mirror passes git fsck, no lock is left held."""
    h = big_branch
    h.check_output(as_prefect("prefect-checkout --repo flows --ref big --run-id fault-warm-" + uuid.uuid4().hex[:8]))
    run = "fault-worktree-" + uuid.uuid4().hex[:8]
    killed = h.run(KILL_WHEN.format(run=run, pattern="git .*(worktree add|reset -q --hard)"))
    assert killed.rc == 0 and killed.stderr == "", killed.stdout + killed.stderr
    assert lock_is_free(h)
    again = h.run(as_prefect(f"prefect-checkout --repo flows --ref big --run-id {run}"))
    assert again.rc == 0, again.stderr
    path = again.stdout.strip()
    assert h.file(f"{path}/big.bin").size == 96 * 1024 * 1024
    status = h.run(as_prefect(f"git -C {path} status --porcelain"))
    assert status.rc == 0 and status.stdout == "", status.stdout + status.stderr
    checked = fsck(h)
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert lock_is_free(h)
