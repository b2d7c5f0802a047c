"""prefect-checkout (roles/prefect_git_mirror/files): real git, a real git daemon, no mocks."""

from __future__ import annotations

import ast
import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkout_helpers import (
    SCRIPT,
    Host,
    base_env,
    calls,
    daemon,  # noqa: F401 - fixture
    empty_host,  # noqa: F401 - fixture
    git,
    git_shim,
    head,
    host,  # noqa: F401 - fixture
    origin,  # noqa: F401 - fixture
    origin_template,  # noqa: F401 - fixture
    writable_paths,
)


def assert_ok(result, expected_dir: Path) -> Path:
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{expected_dir}\n", "stdout must be the directory and nothing else"
    for line in result.stderr.splitlines():
        assert line.startswith("prefect-checkout: "), line
    return Path(result.stdout.strip())


def assert_worktree(path: Path, sha: str) -> None:
    assert (path / ".git").is_file(), "a worktree has a .git file, not a copy of the repository"
    assert head(path) == sha
    assert git("-C", path, "status", "--porcelain", "--untracked-files=all") == ""


def stamp(host: Host) -> Path:
    return host.mirror() / "prefect-checkout-fetched"


# -- the interface ---------------------------------------------------------------------


def test_help_documents_usage_config_and_exit_codes():
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    out = result.stdout
    for text in ("--repo NAME", "--ref REF", "--sha SHA", "--run-id ID", "isolated|shared", "--max-age",
                 "--lock-timeout", "/etc/prefect/checkout.json", "PREFECT_CHECKOUT_CONFIG", '"repos"',
                 "mirror-REPO.lock", "{{ checkout.stdout }}"):
        assert text in out, text
    codes = [line.split()[0] for line in out.split("Exit status")[1].splitlines()[1:] if line.strip()]
    assert codes == ["0", "1", "2", "3", "4", "5", "6", "7"]


def test_script_parses_as_python_3_9():
    ast.parse(SCRIPT.read_text(), feature_version=(3, 9))


def _imports(path) -> set:
    imports = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imports |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports.add((node.module or "").split(".")[0])
    return imports


def test_script_is_stdlib_only_and_executable():
    # The launcher runs the system python, isolated and without site packages; the
    # module beside it holds the code and may use the standard library only.
    assert os.access(SCRIPT, os.X_OK)
    assert SCRIPT.read_text().startswith("#!/usr/bin/python3 -IS\n")
    assert _imports(SCRIPT) == {"os", "sys", "prefect_checkout"}
    module = SCRIPT.with_name("prefect_checkout.py")
    stdlib = set(sys.stdlib_module_names)
    assert _imports(module) <= stdlib, _imports(module) - stdlib


# -- isolated checkouts ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["branch", "full-ref", "annotated-tag", "lightweight-tag", "sha", "other-branch"])
def test_isolated_checkout(host, origin, how):
    arg, sha = {
        "branch": (["--ref", "main"], origin.tip("main")),
        "full-ref": (["--ref", "refs/heads/feature"], origin.tip("feature")),
        "annotated-tag": (["--ref", "v1"], origin.tags["v1"]),
        "lightweight-tag": (["--ref", "v0"], origin.tags["v0"]),
        "sha": (["--sha", origin.pushed["main"][1]], origin.pushed["main"][1]),
        "other-branch": (["--ref", "feature"], origin.tip("feature")),
    }[how]
    result = host.checkout("flows", *arg, "--run-id", "run-1")
    path = assert_ok(result, host.runs / "run-1" / "flows")
    assert_worktree(path, sha)
    assert result.commit == sha
    assert (path / "README.md").read_text() == "flows\n"
    if how == "branch":
        assert (path / "flows/hello.py").read_text() == "print('hello, fleet')\n"
        assert os.access(path / "bin/run.sh", os.X_OK)
        assert os.readlink(path / "link-to-readme") == "README.md"
    # git's own files live in the mirror, not in the run directory
    assert not any(p.name == "objects" for p in path.rglob("*"))


def test_creates_a_missing_mirror_with_auto_gc_off(host, origin):
    assert not host.mirror().exists()
    assert_ok(host.checkout("flows", "--ref", "main", "--run-id", "r"), host.runs / "r" / "flows")
    mirror = host.mirror()
    assert git("--git-dir", mirror, "config", "--bool", "core.bare") == "true"
    assert git("--git-dir", mirror, "config", "--bool", "remote.origin.mirror") == "true"
    assert git("--git-dir", mirror, "config", "gc.auto") == "0"
    assert git("--git-dir", mirror, "config", "--bool", "maintenance.auto") == "false"
    assert stamp(host).is_file()
    assert sorted(p.name for p in host.mirrors.iterdir()) == ["flows.git"], "no temporary clone left behind"


def test_a_branch_wins_over_a_tag_of_the_same_name(host, origin):
    origin.tag("feature", origin.pushed["main"][0], annotated=False)
    result = host.checkout("flows", "--ref", "feature", "--run-id", "r")
    assert result.returncode == 0, result.stderr
    assert result.commit == origin.tip("feature")
    result = host.checkout("flows", "--ref", "refs/tags/feature", "--run-id", "r2")
    assert result.commit == origin.pushed["main"][0]


def test_fetch_and_clone_never_run_auto_gc(host, origin, tmp_path):
    env, log = git_shim(tmp_path / "shim")
    assert host.checkout("flows", "--ref", "main", "--run-id", "a", env=env).returncode == 0
    origin.commit("main")
    assert host.checkout("flows", "--ref", "main", "--run-id", "b", "--max-age", "0", env=env).returncode == 0
    network = [c for c in calls(log) if " fetch " in f" {c} " or " clone " in f" {c} "]
    assert len(network) == 2, calls(log)
    for call in network:
        assert call.startswith("-c gc.auto=0 -c maintenance.auto=false "), call


# -- retried runs ------------------------------------------------------------------------------


def test_a_retried_run_reuses_a_clean_checkout(host, origin):
    first = host.checkout("flows", "--ref", "main", "--run-id", "retry")
    path = assert_ok(first, host.runs / "retry" / "flows")
    inode = (path / "README.md").stat().st_ino
    second = host.checkout("flows", "--ref", "main", "--run-id", "retry")
    assert_ok(second, path)
    assert " reused " in second.stderr
    assert (path / "README.md").stat().st_ino == inode, "a reused checkout is not rewritten"


def test_a_retried_run_at_another_commit_is_recreated(host, origin):
    path = assert_ok(host.checkout("flows", "--ref", "main", "--run-id", "retry"), host.runs / "retry" / "flows")
    new = origin.commit("main", {"flows/hello.py": "print('v2')\n"})
    result = host.checkout("flows", "--sha", new, "--run-id", "retry")
    assert_ok(result, path)
    assert "recreating" in result.stderr
    assert_worktree(path, new)
    assert (path / "flows/hello.py").read_text() == "print('v2')\n"
    assert_worktree_metadata_clean(host)


@pytest.mark.parametrize("damage", ["modified", "untracked", "ignored-and-deleted", "not-a-worktree", "symlink"])
def test_a_damaged_run_directory_is_recreated(host, origin, damage):
    dest = host.runs / "retry" / "flows"
    if damage == "not-a-worktree":
        (dest / "junk").mkdir(parents=True)
        (dest / "junk/half-written.py").write_text("x")
    elif damage == "symlink":
        dest.parent.mkdir(parents=True)
        dest.symlink_to(host.root)
    else:
        assert_ok(host.checkout("flows", "--ref", "main", "--run-id", "retry"), dest)
        if damage == "modified":
            (dest / "README.md").write_text("changed by the failed attempt\n")
        elif damage == "untracked":
            (dest / "flows/leftover.pyc").write_text("x")
        else:
            (dest / "flows/hello.py").unlink()
    result = host.checkout("flows", "--ref", "main", "--run-id", "retry")
    assert_ok(result, dest)
    assert "recreating" in result.stderr
    assert not dest.is_symlink()
    assert_worktree(dest, origin.tip("main"))
    assert (dest / "README.md").read_text() == "flows\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["flows"], "no trash left behind"
    assert host.root.exists()
    assert_worktree_metadata_clean(host)


def assert_worktree_metadata_clean(host: Host) -> None:
    """Every worktree the mirror knows still exists (removed ones were pruned)."""
    listing = git("--git-dir", host.mirror(), "worktree", "list", "--porcelain")
    paths = [line.split(" ", 1)[1] for line in listing.splitlines() if line.startswith("worktree ")]
    assert all(Path(p).exists() for p in paths), listing
    assert "prunable" not in listing, listing


# -- shared mode -------------------------------------------------------------------------------------


def test_shared_mode_links_runs_to_one_read_only_checkout_per_commit(host, origin, tmp_path):
    sha = origin.tip("main")
    first = host.checkout("flows", "--ref", "main", "--run-id", "s1", "--mode", "shared")
    link = assert_ok(first, host.runs / "s1" / "flows")
    commit_dir = host.runs / "commits" / "flows" / sha
    assert link.is_symlink() and link.resolve() == commit_dir
    assert_worktree(commit_dir, sha)
    assert (link / "flows/hello.py").read_text() == "print('hello, fleet')\n"
    assert writable_paths(commit_dir) == [], "the shared checkout is read-only"
    assert os.access(commit_dir / "bin/run.sh", os.X_OK), "read-only keeps the executable bit"
    assert sorted(p.name for p in commit_dir.parent.iterdir()) == [sha], "no temporary directory left"
    before = commit_dir.stat()

    # A cached commit by SHA: no git at all (no git on PATH, no mirror either).
    host.mirror().rename(host.mirrors / "away.git")
    env = base_env(PATH=str(tmp_path / "no-git-here"))
    second = host.checkout("flows", "--sha", sha, "--run-id", "s2", "--mode", "shared", env=env)
    assert_ok(second, host.runs / "s2" / "flows")
    assert (host.runs / "s2" / "flows").resolve() == commit_dir
    host.mirrors.joinpath("away.git").rename(host.mirror())

    # A cached commit by ref with a fresh mirror: one git call (resolve), no fetch.
    env, log = git_shim(tmp_path / "shim")
    third = host.checkout("flows", "--ref", "main", "--run-id", "s3", "--mode", "shared", env=env)
    assert_ok(third, host.runs / "s3" / "flows")
    assert len(calls(log)) == 1 and "cat-file" in calls(log)[0], calls(log)

    after = commit_dir.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_shared_mode_another_commit_gets_its_own_directory_and_the_link_moves(host, origin):
    first = host.checkout("flows", "--ref", "main", "--run-id", "s", "--mode", "shared")
    link = assert_ok(first, host.runs / "s" / "flows")
    second = host.checkout("flows", "--ref", "feature", "--run-id", "s", "--mode", "shared")
    assert_ok(second, link)
    assert link.resolve() == host.runs / "commits" / "flows" / origin.tip("feature")
    assert sorted(p.name for p in (host.runs / "commits" / "flows").iterdir()) == sorted(
        [origin.tip("main"), origin.tip("feature")])


def test_shared_mode_replaces_an_isolated_checkout_of_the_same_run(host, origin):
    dest = assert_ok(host.checkout("flows", "--ref", "main", "--run-id", "x"), host.runs / "x" / "flows")
    assert not dest.is_symlink()
    assert_ok(host.checkout("flows", "--ref", "main", "--run-id", "x", "--mode", "shared"), dest)
    assert dest.is_symlink()
    assert_ok(host.checkout("flows", "--ref", "main", "--run-id", "x"), dest)
    assert not dest.is_symlink()
    assert_worktree(dest, origin.tip("main"))


def test_shared_mode_concurrent_first_use_builds_once(host, origin):
    host.checkout("flows", "--ref", "v0", "--run-id", "warm")  # the mirror exists
    procs = [host.popen("--repo", "flows", "--ref", "main", "--run-id", f"c{i}", "--mode", "shared")
             for i in range(6)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    assert [r[0] for r in results] == [0] * 6, results
    created = [r for r in results if " created " in r[2]]
    assert len(created) == 1, [r[2] for r in results]
    commits = host.runs / "commits" / "flows"
    assert sorted(p.name for p in commits.iterdir()) == [origin.tip("main")]


# -- fetching ----------------------------------------------------------------------------------------


def test_a_present_sha_needs_no_network(host, origin, daemon):
    host.checkout("flows", "--ref", "main", "--run-id", "warm")
    daemon.stop()
    old = origin.pushed["main"][0]
    result = host.checkout("flows", "--sha", old, "--run-id", "offline", "--max-age", "0")
    assert_worktree(assert_ok(result, host.runs / "offline" / "flows"), old)
    assert "fetched=no" in result.stderr
    # a ref in a fresh mirror needs none either
    assert host.checkout("flows", "--ref", "feature", "--run-id", "offline2").returncode == 0
    # a ref that must be fetched fails cleanly (exit 1) and leaves no run directory
    result = host.checkout("flows", "--ref", "main", "--run-id", "offline3", "--max-age", "0")
    assert result.returncode == 1, result.stderr
    assert "fetch of flows from origin failed" in result.stderr
    assert result.stdout == ""
    assert not (host.runs / "offline3").exists()


def test_max_age_decides_when_to_fetch(host, origin, tmp_path):
    assert host.checkout("flows", "--ref", "main", "--run-id", "a").returncode == 0
    fetch_head = host.mirror() / "FETCH_HEAD"
    marks = (stamp(host).stat().st_mtime_ns, fetch_head.stat().st_mtime_ns if fetch_head.exists() else None)
    old, new = origin.tip("main"), origin.commit("main")
    env, log = git_shim(tmp_path / "shim")

    fresh = host.checkout("flows", "--ref", "main", "--run-id", "b", "--max-age", "3600", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.commit == old, "a fresh mirror is used as it is"
    assert not [c for c in calls(log) if "fetch" in c]
    assert (stamp(host).stat().st_mtime_ns, fetch_head.stat().st_mtime_ns if fetch_head.exists() else None) == marks

    forced = host.checkout("flows", "--ref", "main", "--run-id", "c", "--max-age", "0", env=env)
    assert forced.returncode == 0, forced.stderr
    assert forced.commit == new
    assert "fetched=yes" in forced.stderr
    assert stamp(host).stat().st_mtime_ns > marks[0]

    time.sleep(1.1)
    stale = host.checkout("flows", "--ref", "main", "--run-id", "d", "--max-age", "1")
    assert "fetched=yes" in stale.stderr, "older than --max-age: fetched"


def test_a_ref_missing_from_a_fresh_mirror_is_fetched(host, origin):
    assert host.checkout("flows", "--ref", "main", "--run-id", "a").returncode == 0
    sha = origin.commit("brand-new")
    result = host.checkout("flows", "--ref", "brand-new", "--run-id", "b", "--max-age", "3600")
    assert result.returncode == 0, result.stderr
    assert result.commit == sha and "fetched=yes" in result.stderr


def test_a_role_made_mirror_without_stamp_is_fetched_once(host, origin):
    host.make_mirror("flows", origin.url)
    new = origin.commit("main")
    first = host.checkout("flows", "--ref", "main", "--run-id", "a")
    assert first.commit == new and "fetched=yes" in first.stderr
    second = host.checkout("flows", "--ref", "main", "--run-id", "b")
    assert "fetched=no" in second.stderr


def test_refresh_fetches_and_prints_nothing(host, origin):
    result = host.run("--repo", "flows", "--refresh")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert host.mirror().is_dir() and stamp(host).is_file()
    new = origin.commit("main")
    assert host.run("--repo", "flows", "--refresh").returncode == 0
    assert git("--git-dir", host.mirror(), "rev-parse", "refs/heads/main") == new


def test_stale_git_lock_files_do_not_block_a_fetch(host, origin):
    assert host.checkout("flows", "--ref", "main", "--run-id", "a").returncode == 0
    mirror = host.mirror()
    # what a git killed in the middle of a fetch leaves behind
    (mirror / "refs/heads").mkdir(parents=True, exist_ok=True)
    (mirror / "refs/heads/main.lock").write_text("")
    (mirror / "packed-refs.lock").write_text("")
    (mirror / "objects/pack/tmp_pack_XXXXXX").write_bytes(b"PACK")
    new = origin.commit("main")
    result = host.checkout("flows", "--ref", "main", "--run-id", "b", "--max-age", "0")
    assert result.returncode == 0, result.stderr
    assert result.commit == new
    assert "stale git lock" in result.stderr
    assert not list(mirror.rglob("*.lock")) and not list(mirror.glob("objects/pack/tmp_*"))


# -- errors --------------------------------------------------------------------------------------------


def test_unknown_repo_exits_3(empty_host):
    host = empty_host
    result = host.checkout("nope", "--ref", "main", "--run-id", "r")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "unknown repo nope" in result.stderr
    assert not host.runs.exists()


@pytest.mark.parametrize("arg", [["--ref", "no-such-branch"], ["--sha", "0123456789abcdef0123456789abcdef01234567"]])
def test_unknown_ref_or_sha_exits_4_and_leaves_nothing(host, origin, arg):
    assert host.checkout("flows", "--ref", "main", "--run-id", "warm").returncode == 0
    result = host.checkout("flows", *arg, "--run-id", "r")
    assert result.returncode == 4, result.stderr
    assert result.stdout == ""
    assert "not found" in result.stderr.splitlines()[-1]
    assert "fetched=" not in result.stderr and "fetched flows" in result.stderr, "it fetched before giving up"
    assert not (host.runs / "r").exists()


@pytest.mark.parametrize("args", [
    ["--repo", "flows", "--ref", "main", "--run-id", "../x"],
    ["--repo", "flows", "--ref", "main", "--run-id", "a/b"],
    ["--repo", "flows", "--ref", "main", "--run-id", ".hidden"],
    ["--repo", "flows", "--ref", "main", "--run-id", "a..b"],
    ["--repo", "flows", "--ref", "main", "--run-id", "commits"],
    ["--repo", "flows", "--ref", "main", "--run-id", "x" * 129],
    ["--repo", "../flows", "--ref", "main", "--run-id", "r"],
    ["--repo", "flows", "--sha", "abc123", "--run-id", "r"],
    ["--repo", "flows", "--sha", "g" * 40, "--run-id", "r"],
    ["--repo", "flows", "--ref", "-x", "--run-id", "r"],
    ["--repo", "flows", "--ref", "a..b", "--run-id", "r"],
    ["--repo", "flows", "--ref", "main", "--sha", "a" * 40, "--run-id", "r"],
    ["--repo", "flows", "--run-id", "r"],
    ["--repo", "flows", "--ref", "main"],
    ["--repo", "flows", "--ref", "main", "--run-id", "r", "--mode", "other"],
    ["--repo", "flows", "--ref", "main", "--run-id", "r", "--max-age", "-1"],
], ids=lambda args: " ".join(a if len(a) < 20 else a[:8] + "...(%d chars)" % len(a) for a in args))
@pytest.mark.reliability("bad input", subject="prefect-checkout",
                         title="Exit 2 with one line on stderr, nothing on stdout, no run directory made.")
def test_bad_input_exits_2(empty_host, args):
    host = empty_host
    result = host.run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not host.runs.exists()


@pytest.mark.reliability("bad input", subject="prefect-checkout",
                         title="A config file that is not JSON, missing, or holds a URL with a password: exit 2.")
def test_config_errors_exit_2(empty_host, tmp_path):
    host = empty_host
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = host.run("--repo", "flows", "--ref", "main", "--run-id", "r", "--config", str(bad), dirs=False)
    assert result.returncode == 2
    missing = tmp_path / "missing.json"
    assert host.run("--repo", "flows", "--ref", "main", "--run-id", "r", "--config", str(missing),
                    dirs=False).returncode == 2
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"repos": {"flows": {"url": "https://user:token@git.example.com/flows.git"}}}))
    result = host.run("--repo", "flows", "--ref", "main", "--run-id", "r", "--config", str(secret), dirs=False)
    assert result.returncode == 2 and "password or token" in result.stderr


def test_config_file_from_the_environment(host, origin, tmp_path):
    config = tmp_path / "elsewhere.json"
    config.write_text(json.dumps({
        "mirrors_dir": str(tmp_path / "m"), "runs_dir": str(tmp_path / "r"), "locks_dir": str(tmp_path / "l"),
        "lock_timeout": 30, "max_age": 5, "repos": {"flows": {"url": origin.url}},
    }))
    env = base_env(PREFECT_CHECKOUT_CONFIG=str(config))
    result = host.run("--repo", "flows", "--ref", "main", "--run-id", "r", env=env, dirs=False)
    assert_ok(result, tmp_path / "r" / "r" / "flows")
    assert (tmp_path / "m/flows.git").is_dir() and (tmp_path / "l/mirror-flows.lock").exists()
    # an environment variable beats the config file
    env["PREFECT_CHECKOUT_RUNS_DIR"] = str(tmp_path / "r2")
    assert_ok(host.run("--repo", "flows", "--ref", "main", "--run-id", "r", env=env, dirs=False),
              tmp_path / "r2" / "r" / "flows")


def test_a_mirror_made_here_includes_the_repos_git_config(host, origin, daemon, tmp_path):
    # The role keeps how git reaches a repo (sshCommand, credential helper) in a per-repo
    # file that mirrors include. Here the configured URL works only through that file.
    gitconfig = tmp_path / "flows.gitconfig"
    gitconfig.write_text(f'[url "git://127.0.0.1:{daemon.port}/"]\n\tinsteadOf = git://127.0.0.1:1/\n')
    host.config.write_text(json.dumps({"repos": {"flows": {
        "url": "git://127.0.0.1:1/flows.git", "git_config": str(gitconfig)}}}))
    result = host.checkout("flows", "--ref", "main", "--run-id", "a")
    assert_worktree(assert_ok(result, host.runs / "a" / "flows"), origin.tip("main"))
    assert git("--git-dir", host.mirror(), "config", "include.path") == str(gitconfig)
    new = origin.commit("main")
    result = host.checkout("flows", "--ref", "main", "--run-id", "b", "--max-age", "0")
    assert result.returncode == 0, result.stderr
    assert result.commit == new


def corrupt_by_deleting_the_pack(mirror: Path) -> None:
    packs = list(mirror.glob("objects/pack/*.pack"))
    assert packs, "the mirror (cloned over git://) keeps its objects in a pack"
    for pack in packs:
        pack.unlink()


def corrupt_by_garbage_in_a_ref(mirror: Path) -> None:
    (mirror / "refs/heads").mkdir(parents=True, exist_ok=True)
    (mirror / "refs/heads/main").write_text("this is not an object id\n")


@pytest.mark.parametrize("corrupt", [corrupt_by_deleting_the_pack, corrupt_by_garbage_in_a_ref])
def test_a_corrupt_mirror_is_moved_aside_and_mirrored_again(host, origin, corrupt):
    assert host.checkout("flows", "--ref", "feature", "--run-id", "warm").returncode == 0
    corrupt(host.mirror())
    result = host.checkout("flows", "--ref", "main", "--run-id", "r")
    path = assert_ok(result, host.runs / "r" / "flows")
    assert_worktree(path, origin.tip("main"))
    assert "is corrupt" in result.stderr
    aside = [p for p in host.mirrors.iterdir() if p.name.startswith("flows.git.corrupt-")]
    assert len(aside) == 1, "the corrupt copy is kept aside"
    git("--git-dir", host.mirror(), "fsck", "--connectivity-only")
    assert git("--git-dir", host.mirror(), "config", "gc.auto") == "0"


def test_a_corrupt_mirror_that_cannot_be_mirrored_again_exits_5(host, origin, daemon):
    assert host.checkout("flows", "--ref", "main", "--run-id", "warm").returncode == 0
    corrupt_by_deleting_the_pack(host.mirror())
    daemon.stop()
    host.urls.clear()
    host.write_config()  # no URL configured: the mirror's own origin URL is tried
    result = host.checkout("flows", "--ref", "main", "--run-id", "r")
    assert result.returncode == 5, result.stderr
    assert result.stdout == ""
    assert "could not mirror" in result.stderr
    assert [p.name.startswith("flows.git.corrupt-") for p in host.mirrors.iterdir()] == [True]
    assert not (host.runs / "r").exists()


@pytest.mark.parametrize("stored", ["ext::sh -c touch% pwned", "https://bob:hunter2@127.0.0.1:9/flows.git"])
def test_a_corrupt_mirror_is_not_mirrored_again_from_a_stored_url_the_rule_refuses(host, origin, stored):
    """The mirror's own origin URL stands in for a configured one only if the rule for
    configured URLs (url_problem) accepts it: no remote helper, no embedded secret."""
    assert host.checkout("flows", "--ref", "main", "--run-id", "warm").returncode == 0
    corrupt_by_deleting_the_pack(host.mirror())
    git("--git-dir", host.mirror(), "config", "remote.origin.url", stored)
    host.urls.clear()
    host.write_config()
    result = host.checkout("flows", "--ref", "main", "--run-id", "r")
    assert result.returncode == 5, result.stderr
    assert "no URL is known" in result.stderr
    assert "hunter2" not in result.stderr
    assert not (host.runs / "r").exists() and not (host.root / "pwned").exists()


def test_lock_timeout_exits_7_and_a_released_lock_is_taken(host, origin):
    assert host.checkout("flows", "--ref", "main", "--run-id", "warm").returncode == 0
    lock = host.locks / "mirror-flows.lock"
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = host.checkout("flows", "--ref", "main", "--run-id", "r", "--lock-timeout", "0.5")
        assert result.returncode == 7, result.stderr
        assert 0.5 <= result.seconds < 5
        assert "timed out" in result.stderr.splitlines()[-1]
        assert result.stdout == ""
        assert not (host.runs / "r").exists()

        # a waiter gets the lock as soon as it is released
        threading.Timer(0.5, fcntl.flock, (held, fcntl.LOCK_UN)).start()
        result = host.checkout("flows", "--ref", "main", "--run-id", "r", "--lock-timeout", "20")
    assert_ok(result, host.runs / "r" / "flows")
    assert result.seconds < 10


def test_disk_full_exits_6_and_leaves_nothing(host, origin, tmp_path):
    runs = tmp_path / "small-runs"
    runs.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(runs)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        big = origin.commit("main", {"big.bin": os.urandom(1024 * 1024)})
        result = host.run("--repo", "flows", "--sha", big, "--run-id", "r", "--runs-dir", str(runs),
                          "--mirrors-dir", str(host.mirrors), "--locks-dir", str(host.locks),
                          "--config", str(host.config), dirs=False)
        assert result.returncode == 6, result.stderr
        assert "disk full" in result.stderr.splitlines()[-1]
        assert list(runs.iterdir()) == [], "no half-made run directory"
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def test_sigterm_cleans_up_a_half_made_checkout(host, origin):
    # many files make the checkout slow enough to interrupt while its files are written
    files = {f"many/{i:05d}.txt": f"{i}\n" * 200 for i in range(2500)}
    sha = origin.commit("main", files)
    assert host.run("--repo", "flows", "--refresh").returncode == 0
    proc = host.popen("--repo", "flows", "--sha", sha, "--run-id", "term")
    dest = host.runs / "term" / "flows"
    deadline = time.monotonic() + 20
    while not (dest / ".git").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.terminate()
    rc = proc.wait(timeout=30)
    if rc == 0:
        pytest.skip("the checkout finished before SIGTERM arrived")
    assert rc == 1
    assert not (host.runs / "term").exists()
    assert_worktree_metadata_clean(host)


def test_mode_bits_of_a_shared_checkout_are_read_only(host, origin):
    result = host.checkout("flows", "--ref", "main", "--run-id", "ro", "--mode", "shared")
    commit_dir = (host.runs / "ro" / "flows").resolve()
    assert result.returncode == 0
    assert stat.S_IMODE(commit_dir.stat().st_mode) & 0o222 == 0
    assert stat.S_IMODE((commit_dir / "README.md").stat().st_mode) & 0o222 == 0
