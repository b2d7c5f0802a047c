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
