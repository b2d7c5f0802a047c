"""prefect-checkout under load: many checkouts at once against a moving origin, and
kill -9 in the middle of a fetch. Real git, a real git daemon, real processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkout_helpers import (
    Host,
    Origin,
    daemon,  # noqa: F401 - fixture
    git,
    head,
    host,  # noqa: F401 - fixture
    origin,  # noqa: F401 - fixture
    origin_template,  # noqa: F401 - fixture
)

pytestmark = pytest.mark.integration

ROUNDS = 20
PROCESSES = 32


def worktree_head(path: Path) -> str:
    """HEAD of a worktree, read from its files (cheaper than a git call per directory)."""
    gitdir = (path / ".git").read_text().split("gitdir: ", 1)[1].strip()
    return Path(gitdir, "HEAD").read_text().strip()


def test_concurrent_checkouts_against_a_moving_origin(host, origin):
    host.write_config(max_age=0.5)  # a fetch every half second at most, besides the refresher's
    assert host.run("--repo", "flows", "--refresh").returncode == 0
    old = origin.pushed["main"][0]
    kinds = [
        ("isolated", "main", ["--ref", "main"]),
        ("isolated", "feature", ["--ref", "feature"]),
        ("isolated", "main", ["--ref", "refs/heads/main", "--max-age", "0"]),
        ("isolated", "v1", ["--ref", "v1"]),
        ("isolated", "sha", ["--sha", old]),
        ("shared", "main", ["--ref", "main"]),
        ("shared", "feature", ["--ref", "feature", "--max-age", "0"]),
        ("shared", "v1", ["--ref", "v1"]),
    ]
    stop = threading.Event()
    background_errors: list[str] = []

    def pusher() -> None:
        i = 0
        while not stop.is_set():
            try:
                origin.commit(("main", "feature")[i % 2])  # pushed over git://
            except AssertionError as exc:
                background_errors.append(f"push: {exc}")
            i += 1
            time.sleep(0.02)

    def refresher() -> None:
        while not stop.is_set():
            result = host.run("--repo", "flows", "--refresh")
            if result.returncode != 0:
                background_errors.append(f"refresh: {result.stderr}")
            time.sleep(0.1)

    threads = [threading.Thread(target=pusher), threading.Thread(target=refresher)]
    for t in threads:
        t.start()
    failures: list[str] = []
    fetched = 0
    try:
        for round_ in range(ROUNDS):
            procs = []
            for i in range(PROCESSES):
                mode, what, args = kinds[i % len(kinds)]
                run_id = f"r{round_}-{i}"
                procs.append((run_id, mode, what, host.popen("--repo", "flows", *args, "--run-id", run_id,
                                                              "--mode", mode)))
            outcomes = [(run_id, mode, what, p.wait(timeout=120), p.stdout.read(), p.stderr.read())
                        for run_id, mode, what, p in procs]
            for p in procs:
                p[3].stdout.close()
                p[3].stderr.close()
            expected = {"main": set(origin.pushed["main"]), "feature": set(origin.pushed["feature"]),
                        "v1": {origin.tags["v1"]}, "sha": {old}}
            for n, (run_id, mode, what, rc, out, err) in enumerate(outcomes):
                dest = host.runs / run_id / "flows"
                commit = next((w[7:] for w in err.split() if w.startswith("commit=")), None)
                problem = None
                if rc != 0 or out != f"{dest}\n":
                    problem = f"exit {rc}, stdout {out!r}"
                elif commit not in expected[what]:
                    problem = f"commit {commit} was never the tip of {what}"
                elif mode == "shared":
                    target = host.runs / "commits" / "flows" / commit
                    if not dest.is_symlink() or dest.resolve() != target or worktree_head(target) != commit:
                        problem = f"link {dest} does not lead to a checkout of {commit}"
                elif worktree_head(dest) != commit:
                    problem = f"HEAD {worktree_head(dest)} is not {commit}"
                elif n % 8 == 0 and git("-C", dest, "status", "--porcelain", "--untracked-files=all") != "":
                    problem = "the checkout is not clean"
                if problem:
                    failures.append(f"round {round_} {run_id} ({mode} {what}): {problem}\n{err}")
                fetched += "fetched=yes" in err
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert failures == [], f"{len(failures)} failures:\n" + "\n".join(failures[:5])
    assert background_errors == [], background_errors[:5]
    assert len(origin.pushed["main"]) > 10, "the origin moved during the test"
    assert fetched > 0, "some checkouts fetched"
    git("--git-dir", host.mirror(), "fsck", "--no-progress")
    assert git("--git-dir", host.mirror(), "rev-parse", "refs/heads/main") in origin.pushed["main"]


SLOW_UPLOAD_PACK = """#!/bin/sh
# git-upload-pack whose answer trickles out at about 3 MiB/s
git upload-pack "$@" | "{python}" -c '
import sys, time
r, w = sys.stdin.buffer, sys.stdout.buffer
while True:
    chunk = r.read1(32768)
    if not chunk:
        break
    w.write(chunk)
    w.flush()
    time.sleep(0.01)
'
"""


def test_kill_9_in_the_middle_of_a_fetch_leaves_a_usable_mirror(tmp_path):
    origin = Origin.create(tmp_path / "origin/big.git", tmp_path / "work-big")
    origin.commit("main", {"README.md": "big\n"})
    host = Host(tmp_path / "host", {"big": str(origin.bare)})
    assert host.run("--repo", "big", "--refresh").returncode == 0
    slow = tmp_path / "slow-upload-pack"
    slow.write_text(SLOW_UPLOAD_PACK.format(python=sys.executable))
    slow.chmod(0o755)
    mirror = host.mirror("big")
    git("--git-dir", mirror, "config", "remote.origin.uploadpack", slow)
    rng = random.Random(1234)

    def fetch_in_progress(pid: int, timeout: float = 15) -> bool:
        """Has prefect-checkout (pid) started its git fetch?"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run(["pgrep", "-P", str(pid), "-f", "fetch"], capture_output=True).stdout:
                return True
            time.sleep(0.01)
        return False

    cases = [("checkout only", "pack"), ("process group", "pack"), ("process group", "random"),
             ("checkout only", "random"), ("process group", "random")]
    for n, (victim, when) in enumerate(cases):
        sha = origin.commit("main", {"blob.bin": os.urandom(4 << 20)})  # ~1.5 s through the slow pipe
        run_id = f"kill-{n}"
        proc = host.popen("--repo", "big", "--ref", "main", "--run-id", run_id, "--max-age", "0")
        if when == "pack":
            assert fetch_in_progress(proc.pid), "the fetch started"
            time.sleep(0.3)
        else:
            time.sleep(rng.uniform(0.05, 2.0))
        if victim == "checkout only":  # the git it started lives on, holding the lock
            proc.send_signal(signal.SIGKILL)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()

        # The same run, retried, and a new run both succeed at the new commit.
        for retry in (run_id, f"{run_id}-next"):
            result = host.run("--repo", "big", "--ref", "main", "--run-id", retry, "--max-age", "0",
                              "--lock-timeout", "60")
            assert result.returncode == 0, f"case {n} ({victim}, {when}):\n{result.stderr}"
            assert result.stdout == f"{host.runs / retry / 'big'}\n"
            assert result.commit == sha
            assert head(host.runs / retry / "big") == sha
            assert git("-C", host.runs / retry / "big", "status", "--porcelain") == ""
        git("--git-dir", mirror, "fsck", "--no-progress")
        assert not list(mirror.glob("refs/**/*.lock")) and not (mirror / "packed-refs.lock").exists()
    # no git of ours is left running
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", str(slow)], capture_output=True).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-f", str(slow)], capture_output=True).stdout == b""
