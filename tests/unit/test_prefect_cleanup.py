"""prefect-cleanup on a real tree: old and unused things go, anything in use stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMAND = REPO / "roles/prefect_cleanup/files/prefect-cleanup"
OLD = time.time() - 3 * 86400


def run(root: Path, *args: str) -> tuple[int, dict, str]:
    proc = subprocess.run(
        [sys.executable, str(COMMAND), "--config", str(root / "cleanup.json"), *args],
        capture_output=True, text=True,
    )
    summary = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, summary, proc.stderr


def age(path: Path, when: float = OLD) -> None:
    os.utime(path, (when, when), follow_symlinks=False)


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "prefect"
    for d in ("runs", "mirrors", "envs", "locks", "tmp", "log"):
        (root / d).mkdir(parents=True)
    (root / "cleanup.json").write_text(json.dumps({
        "root": str(root), "ttl": 86400, "pressure_ttl": 3600, "min_free_percent": 0,
        "tmp_ttl": 86400, "log": str(root / "log/cleanup.log"), "lock_timeout": 2,
    }))
    return root


def make_run(root: Path, run_id: str, old: bool = True) -> Path:
    run = root / "runs" / run_id / "flows"
    run.mkdir(parents=True)
    (run / "data.bin").write_bytes(os.urandom(64 * 1024))
    if old:
        age(run.parent)
    return run.parent


def test_old_unused_runs_go_and_young_or_busy_ones_stay(tree: Path):
    old = make_run(tree, "old-run")
    young = make_run(tree, "young-run", old=False)
    busy = make_run(tree, "busy-run")
    holder = subprocess.Popen(["sleep", "60"], cwd=busy / "flows")
    try:
        rc, summary, err = run(tree)
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0, err
    assert not old.exists()
    assert young.exists() and busy.exists()
    assert any(s["path"] == str(busy) and "in use" in s["why"] for s in summary["skipped"])
    assert summary["bytes_freed"] >= 64 * 1024
    logged = (tree / "log/cleanup.log").read_text().splitlines()
    assert json.loads(logged[-1])["removed"][0]["path"] == str(old)


def test_an_open_file_counts_as_in_use(tree: Path):
    busy = make_run(tree, "open-file-run")
    data = busy / "flows/data.bin"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import sys, time; f = open({str(data)!r}); print('open', flush=True); time.sleep(60)"],
        cwd="/", stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        rc, summary, _ = run(tree)
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0
    assert busy.exists()
    assert any(s["path"] == str(busy) and str(data) in s["why"] for s in summary["skipped"])


def test_dry_run_deletes_nothing(tree: Path):
    old = make_run(tree, "old-run")
    rc, summary, _ = run(tree, "--dry-run")
    assert rc == 0 and summary["dry_run"] is True
    assert old.exists()
    assert [r["path"] for r in summary["removed"]] == [str(old)]


def test_symlinks_out_of_the_tree_are_not_followed(tree: Path, tmp_path: Path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    run_dir = tree / "runs" / "linked-run"
    run_dir.mkdir()
    (run_dir / "flows").symlink_to(outside)
    age(run_dir)
    evil = tree / "runs" / "evil"
    evil.symlink_to(outside)
    age(evil)
    rc, _, err = run(tree)
    assert rc == 0, err
    assert (outside / "keep.txt").read_text() == "keep"
    assert not run_dir.exists()


def test_shared_checkouts_go_only_when_no_recent_run_links_them(tree: Path):
    commits = tree / "runs/commits/flows"
    linked, unlinked = commits / ("a" * 40), commits / ("b" * 40)
    for d in (linked, unlinked):
        d.mkdir(parents=True)
        (d / "flow.py").write_text("x")
        os.chmod(d, 0o555)
        age(d)
    recent = tree / "runs/recent-run"
    recent.mkdir()
    (recent / "flows").symlink_to(linked)
    rc, summary, err = run(tree)
    assert rc == 0, err
    assert linked.exists() and not unlinked.exists()


def test_venv_generations_beyond_keep_go_but_never_current_or_in_use(tree: Path):
    env = tree / "envs/flows"
    env.mkdir()
    gens = []
    for i, name in enumerate(["a", "b", "c", "d", "e"]):
        gen = env / (name * 16)
        (gen / "bin").mkdir(parents=True)
        (gen / "prefect-fleet.json").write_text(json.dumps({"built_at": f"2026-01-0{i + 1}T00:00:00+00:00"}))
        gens.append(gen)
    (env / ("f" * 16)).mkdir()  # incomplete (a build in progress): never touched
    os.symlink("a" * 16, env / "current")  # rolled back to the oldest
    (env / "env.json").write_text(json.dumps({"keep": 2, "current": "a" * 16}))
    holder = subprocess.Popen(["sleep", "60"], cwd=gens[1])  # "b" is used by a running process
    try:
        rc, summary, err = run(tree, "--only", "envs")
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0, err
    remaining = sorted(p.name[0] for p in env.iterdir() if p.is_dir() and not p.is_symlink())
    # newest two (e, d) kept, a is current, b in use, f incomplete; c goes
    assert remaining == ["a", "b", "d", "e", "f"]


def test_mirror_worktree_metadata_is_pruned_under_the_lock(tree: Path, tmp_path: Path):
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    (origin / "f.txt").write_text("1")
    git("add", ".", cwd=origin)
    git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "one", cwd=origin)
    mirror = tree / "mirrors/flows.git"
    git("clone", "-q", "--mirror", str(origin), str(mirror))
    run_dir = tree / "runs/gone-run"
    git("-C", str(mirror), "worktree", "add", "-q", "--detach", str(run_dir / "flows"), "main")
    age(run_dir)
    assert git("-C", str(mirror), "worktree", "list").count("\n") == 1
    rc, summary, err = run(tree)
    assert rc == 0, err
    assert not run_dir.exists()
    assert git("-C", str(mirror), "worktree", "list").count("\n") == 0, "the dead worktree is pruned"


def test_busy_mirror_lock_is_skipped_not_waited_for_forever(tree: Path, tmp_path: Path):
    mirror = tree / "mirrors/flows.git"
    git("init", "-q", "--bare", str(mirror))
    import fcntl

    fd = os.open(tree / "locks/mirror-flows.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        rc, summary, err = run(tree, "--only", "mirrors")
        assert time.monotonic() - started < 15
    finally:
        os.close(fd)
    assert rc == 0, err
    assert any("busy" in s["why"] for s in summary["skipped"])


def test_disk_pressure_uses_the_shorter_ttl(tree: Path):
    config = json.loads((tree / "cleanup.json").read_text())
    config.update({"min_free_percent": 100, "pressure_ttl": 60})
    (tree / "cleanup.json").write_text(json.dumps(config))
    hour_old = make_run(tree, "hour-old", old=False)
    age(hour_old, time.time() - 3600)
    rc, summary, err = run(tree)
    assert rc == 0
    assert summary["disk_pressure"] is True and summary["ttl"] == 60
    assert "disk pressure" in err
    assert not hour_old.exists()


@pytest.mark.parametrize(
    "root,message",
    [("/", "system directory"), ("/usr", "system directory"), ("relative/path", "absolute path")],
)
def test_refuses_a_root_that_is_not_the_kits_tree(tree: Path, root: str, message: str):
    rc, _, err = run(tree, "--root", root)
    assert rc == 2 and message in err


def test_refuses_a_directory_without_the_kits_layout(tmp_path: Path, tree: Path):
    rc, _, err = run(tree, "--root", str(tmp_path))
    assert rc == 2 and "not the kit's tree" in err


def test_refuses_a_zero_ttl(tree: Path):
    rc, _, err = run(tree, "--ttl", "0")
    assert rc == 2 and "ttl must be greater than 0" in err


# -- what prefect-checkout leaves behind ---------------------------------------


def make_mirror(root: Path, tmp_path: Path, repo: str = "flows") -> tuple[Path, str]:
    origin = tmp_path / f"origin-{repo}"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    (origin / "f.txt").write_text("1")
    git("add", ".", cwd=origin)
    git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "one", cwd=origin)
    mirror = root / "mirrors" / f"{repo}.git"
    git("clone", "-q", "--mirror", str(origin), str(mirror))
    return mirror, git("-C", str(mirror), "rev-parse", "main")


def corrupt_aside(root: Path, moved: float, suffix: str = "") -> Path:
    """A mirror moved aside the way prefect-checkout names it, at the time moved."""
    aside = root / "mirrors" / f"flows.git.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(moved))}{suffix}"
    git("init", "-q", "--bare", str(aside))
    (aside / "objects/pack/pack-broken.pack").write_bytes(os.urandom(32 * 1024))
    age(aside, OLD - 30 * 86400)  # renaming keeps the old mtime: the name says when it was moved
    return aside


def set_config(root: Path, **values: object) -> None:
    config = json.loads((root / "cleanup.json").read_text())
    config.update(values)
    (root / "cleanup.json").write_text(json.dumps(config))


def held_lock(path: Path) -> int:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def by_path(items: list[dict]) -> dict[str, dict]:
    return {item["path"]: item for item in items}


def test_corrupt_mirrors_are_kept_for_the_corrupt_ttl_then_removed(tree: Path):
    old = corrupt_aside(tree, time.time() - 8 * 86400)
    old_again = corrupt_aside(tree, time.time() - 8 * 86400, suffix="-123-abcdef")  # a second one that second
    recent = corrupt_aside(tree, time.time() - 86400)  # old mtime, but moved aside yesterday
    busy = corrupt_aside(tree, time.time() - 9 * 86400)
    not_ours = tree / "mirrors/flows.git.corrupt-by-hand"
    not_ours.mkdir()
    age(not_ours)
    holder = subprocess.Popen(["sleep", "60"], cwd=busy / "objects")
    try:
        rc, summary, err = run(tree, "--only", "mirrors")
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0, err
    assert not old.exists() and not old_again.exists()
    assert recent.exists() and busy.exists() and not_ours.exists()
    removed = by_path(summary["removed"])
    assert removed[str(old)]["kind"] == "corrupt-mirror" and removed[str(old)]["bytes"] >= 32 * 1024
    assert "604800s" in removed[str(old)]["why"]
    assert "in use" in by_path(summary["skipped"])[str(busy)]["why"]
    assert summary["corrupt_ttl"] == 604800


def test_corrupt_ttl_is_configurable_and_disk_pressure_shortens_it(tree: Path):
    two_hours = corrupt_aside(tree, time.time() - 7200)
    two_days = corrupt_aside(tree, time.time() - 2 * 86400)
    set_config(tree, corrupt_ttl=86400)
    rc, summary, err = run(tree, "--only", "mirrors")
    assert rc == 0, err
    assert two_hours.exists() and not two_days.exists()
    set_config(tree, min_free_percent=100, pressure_ttl=3600)
    rc, summary, err = run(tree, "--only", "mirrors")
    assert rc == 0, err
    assert summary["disk_pressure"] is True and summary["corrupt_ttl"] == 3600
    assert not two_hours.exists()


def test_pressure_never_lengthens_the_corrupt_ttl(tree: Path):
    aside = corrupt_aside(tree, time.time() - 7200)
    set_config(tree, corrupt_ttl=3600, min_free_percent=100, pressure_ttl=86400)
    rc, summary, err = run(tree, "--only", "mirrors")
    assert rc == 0, err
    assert summary["corrupt_ttl"] == 3600 and not aside.exists()


def test_stale_temporary_mirror_clones_go_under_the_mirror_lock(tree: Path, tmp_path: Path):
    make_mirror(tree, tmp_path)
    stale = tree / "mirrors/.flows.git.tmp-4242-a1b2c3"
    git("init", "-q", "--bare", str(stale))
    age(stale)
    young = tree / "mirrors/.flows.git.tmp-4343-d4e5f6"
    git("init", "-q", "--bare", str(young))
    busy = tree / "mirrors/.flows.git.tmp-4444-0a0b0c"
    git("init", "-q", "--bare", str(busy))
    age(busy)
    orphan = tree / "mirrors/.gone.git.tmp-1-ffffff"  # the clone of a mirror that never came to be
    git("init", "-q", "--bare", str(orphan))
    age(orphan)
    if os.geteuid() == 0:  # as on a host: the kit's user owns locks/, root runs the cleanup
        os.chown(tree / "locks", 65534, 65534)
    holder = subprocess.Popen(["sleep", "60"], cwd=busy / "refs")
    try:
        rc, summary, err = run(tree, "--only", "mirrors")
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0, err
    assert not stale.exists() and not orphan.exists()
    assert young.exists() and busy.exists()
    assert (tree / "mirrors/flows.git").is_dir()
    removed = by_path(summary["removed"])
    assert removed[str(stale)]["kind"] == "mirror-tmp" and removed[str(stale)]["bytes"] > 0
    assert "in use" in by_path(summary["skipped"])[str(busy)]["why"]
    # the lock taken for a repo without a lock file exists afterwards, owned like the locks directory
    lock, locks = tree / "locks/mirror-gone.lock", (tree / "locks").stat()
    assert lock.is_file() and (lock.stat().st_uid, lock.stat().st_gid) == (locks.st_uid, locks.st_gid)


def test_a_temporary_mirror_clone_waits_while_the_mirror_lock_is_busy(tree: Path):
    stale = tree / "mirrors/.flows.git.tmp-4242-a1b2c3"
    git("init", "-q", "--bare", str(stale))
    age(stale)
    fd = held_lock(tree / "locks/mirror-flows.lock")
    try:
        started = time.monotonic()
        rc, summary, err = run(tree, "--only", "mirrors")
        assert time.monotonic() - started < 15
    finally:
        os.close(fd)
    assert rc == 0, err
    assert stale.exists()
    assert "mirror-flows.lock busy" in by_path(summary["skipped"])[str(stale)]["why"]
    rc, summary, err = run(tree, "--only", "mirrors")
    assert rc == 0, err
    assert not stale.exists()


def test_stale_temporary_shared_checkouts_go_unless_in_use_or_being_built(tree: Path, tmp_path: Path):
    mirror, sha = make_mirror(tree, tmp_path)
    other = git("--git-dir", str(mirror), "commit-tree", "-m", "two", "-p", sha, f"{sha}^{{tree}}")
    commits = tree / "runs/commits/flows"
    commits.mkdir(parents=True)
    temps = {}
    for name in ("stale", "young", "busy", "building"):
        suffix = {"stale": "1-aaaaaa", "young": "2-bbbbbb", "busy": "3-cccccc", "building": "4-dddddd"}[name]
        commit = other if name == "building" else sha
        path = commits / f".tmp-{commit[:12]}-{suffix}"
        git("--git-dir", str(mirror), "worktree", "add", "-q", "--detach", str(path), commit)
        if name != "young":
            age(path)
        temps[name] = path
    os.chmod(temps["stale"], 0o555)  # prefect-checkout makes them read-only before the move
    assert git("--git-dir", str(mirror), "worktree", "list").count("\n") == 4
    holder = subprocess.Popen(["sleep", "60"], cwd=temps["busy"])
    # the build of "building" holds the commit lock (this process is the command's parent,
    # which the /proc scan leaves out: only the flock keeps it)
    fd = held_lock(tree / f"locks/commit-flows-{other}.lock")
    (tree / f"locks/commit-flows-{sha}.lock").touch()  # left by the killed build of "stale": free
    try:
        rc, summary, err = run(tree, "--only", "runs,mirrors")
    finally:
        holder.kill()
        holder.wait()
    assert rc == 0, err
    assert not temps["stale"].exists()
    assert temps["young"].exists() and temps["busy"].exists() and temps["building"].exists()
    removed, skipped = by_path(summary["removed"]), by_path(summary["skipped"])
    assert removed[str(temps["stale"])]["kind"] == "shared-checkout-tmp"
    assert "in use" in skipped[str(temps["busy"])]["why"]
    assert f"commit-flows-{other}.lock busy" in skipped[str(temps["building"])]["why"]
    # the mirrors step pruned the removed checkout's worktree metadata
    assert git("--git-dir", str(mirror), "worktree", "list").count("\n") == 3
    os.close(fd)
    rc, summary, err = run(tree, "--only", "runs")
    assert rc == 0, err
    assert not temps["building"].exists()


def test_stale_commit_locks_go_only_when_free_and_mirror_locks_never(tree: Path):
    locks = tree / "locks"
    free = locks / f"commit-flows-{'a' * 40}.lock"
    held = locks / f"commit-flows-{'b' * 40}.lock"
    young = locks / f"commit-flows-{'c' * 40}.lock"
    mirror_lock = locks / "mirror-flows.lock"
    cleanup_lock = locks / "cleanup.lock"
    for lock in (free, held, young, mirror_lock, cleanup_lock):
        lock.touch()
        if lock is not young:
            age(lock)
    outside = tree.parent / "outside.lock"
    outside.touch()
    age(outside)
    link = locks / f"commit-flows-{'d' * 40}.lock"
    link.symlink_to(outside)
    age(link)
    fd = held_lock(held)
    try:
        rc, summary, err = run(tree, "--only", "tmp")
    finally:
        os.close(fd)
    assert rc == 0, err
    assert not free.exists()
    assert held.exists() and young.exists() and mirror_lock.exists() and cleanup_lock.exists()
    assert link.is_symlink() and outside.exists()
    removed, skipped = by_path(summary["removed"]), by_path(summary["skipped"])
    assert list(removed) == [str(free)]
    assert removed[str(free)] == {"path": str(free), "kind": "commit-lock", "bytes": 0,
                                  "why": "older than 86400s and not held"}
    assert "busy" in skipped[str(held)]["why"]


def test_dry_run_removes_no_checkout_leftovers(tree: Path, tmp_path: Path):
    mirror, sha = make_mirror(tree, tmp_path)
    aside = corrupt_aside(tree, time.time() - 8 * 86400)
    mirror_tmp = tree / "mirrors/.flows.git.tmp-1-abcdef"
    git("init", "-q", "--bare", str(mirror_tmp))
    age(mirror_tmp)
    commit_tmp = tree / f"runs/commits/flows/.tmp-{sha[:12]}-1-abcdef"
    git("--git-dir", str(mirror), "worktree", "add", "-q", "--detach", str(commit_tmp), sha)
    age(commit_tmp)
    lock = tree / f"locks/commit-flows-{sha}.lock"
    lock.touch()
    age(lock)
    def listing() -> list[str]:
        return sorted(str(p) for p in tree.rglob("*") if p.parent.name != "log")

    before = listing()
    rc, summary, err = run(tree, "--dry-run")
    assert rc == 0, err
    assert listing() == before, "a dry run changes nothing (creates no lock file either)"
    kinds = {r["path"]: r["kind"] for r in summary["removed"]}
    assert kinds[str(aside)] == "corrupt-mirror"
    assert kinds[str(mirror_tmp)] == "mirror-tmp"
    assert kinds[str(commit_tmp)] == "shared-checkout-tmp"
    assert kinds[str(lock)] == "commit-lock"


def test_leftovers_never_lead_out_of_the_tree(tree: Path, tmp_path: Path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    moved = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 30 * 86400))
    links = [tree / "mirrors/.flows.git.tmp-1-abcdef", tree / f"mirrors/flows.git.corrupt-{moved}",
             tree / "runs/commits/flows/.tmp-0123456789ab-1-abcdef"]
    (tree / "runs/commits/flows").mkdir(parents=True)
    for link in links:
        link.symlink_to(outside)
        age(link)
    stale = tree / "mirrors/.flows.git.tmp-2-abcdef"
    stale.mkdir()
    (stale / "escape").symlink_to(outside)
    age(stale)
    rc, summary, err = run(tree)
    assert rc == 0, err
    assert (outside / "keep.txt").read_text() == "keep"
    assert all(link.is_symlink() for link in links)
    assert not stale.exists()


def test_refuses_a_zero_corrupt_ttl(tree: Path):
    set_config(tree, corrupt_ttl=0)
    rc, _, err = run(tree)
    assert rc == 2 and "corrupt_ttl must be greater than 0" in err
