"""Real git repositories, a real `git daemon` on 127.0.0.1, and a host layout for
testing the prefect-checkout host command (roles/prefect_git_mirror/files).

Import the fixtures into a test module: `from checkout_helpers import daemon, origin, host`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "roles/prefect_git_mirror/files/prefect-checkout"
GIT = shutil.which("git") or "/usr/bin/git"

# git in tests sees no system or user configuration, and commits need no setup.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PREFECT_CHECKOUT_"))}
    env.update(GIT_ENV)
    env.update(extra)
    return env


def git(*args: object, cwd: Path | str | None = None, check: bool = True, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [GIT, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env or base_env(),
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GitDaemon:
    """`git daemon` serving every repository under base as git://127.0.0.1:PORT/<name>.git."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}.git"

    def start(self, timeout: float = 10.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [GIT, "daemon", "--export-all", f"--base-path={self.base}", "--reuseaddr",
             "--listen=127.0.0.1", f"--port={self.port}", "--enable=receive-pack", "--informative-errors"],
            env=base_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"git daemon exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"git daemon did not answer on 127.0.0.1:{self.port} within {timeout}s")

    def stop(self) -> None:
        if self.proc is None:
            return
        with _suppress_lookup():
            os.killpg(self.proc.pid, signal.SIGTERM)  # the daemon and its per-connection children
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with _suppress_lookup():
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


class _suppress_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is ProcessLookupError


@dataclass
class Origin:
    """A bare repository served by the daemon, with a work clone to commit and push from."""

    name: str
    bare: Path
    work: Path
    url: str
    pushed: dict[str, list[str]] = field(default_factory=dict)  # branch -> every tip pushed
    tags: dict[str, str] = field(default_factory=dict)  # tag -> its commit

    @classmethod
    def create(cls, bare: Path, work: Path, url: str | None = None) -> Origin:
        """A new, empty origin; pushes go to url (default: the bare repository's path)."""
        git("init", "-q", "--bare", "-b", "main", bare)
        git("init", "-q", "-b", "main", work)
        git("-C", work, "remote", "add", "origin", url or str(bare))
        return cls(name=bare.name.removesuffix(".git"), bare=bare, work=work, url=url or str(bare))

    def copy_to(self, daemon: GitDaemon, work: Path) -> Origin:
        """A copy of this origin served by daemon (pushes go over git:// too)."""
        bare = daemon.base / self.bare.name
        daemon.base.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.bare, bare, symlinks=True)
        shutil.copytree(self.work, work, symlinks=True)
        url = daemon.url(self.name)
        git("-C", work, "remote", "set-url", "origin", url)
        return Origin(name=self.name, bare=bare, work=work, url=url,
                      pushed=copy.deepcopy(self.pushed), tags=dict(self.tags))

    def commit(self, branch: str = "main", files: dict[str, str | bytes] | None = None, message: str = "",
               push: bool = True) -> str:
        """Commit files on branch (created from main if new) and push; return the SHA."""
        branches = git("-C", self.work, "branch", "--list", "--format=%(refname:short)").split()
        if not branches:  # nothing committed yet
            git("-C", self.work, "symbolic-ref", "HEAD", f"refs/heads/{branch}")
        elif branch in branches:
            git("-C", self.work, "checkout", "-q", branch)
        else:
            git("-C", self.work, "checkout", "-q", "-b", branch, "main")
        n = sum(len(v) for v in self.pushed.values())
        for path, content in (files or {f"{branch}.txt": f"{branch} {n} {time.time_ns()}\n"}).items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        git("-C", self.work, "add", "-A")
        git("-C", self.work, "commit", "-q", "-m", message or f"{branch} commit {n}")
        sha = git("-C", self.work, "rev-parse", "HEAD")
        if push:
            self.push(branch)
        self.pushed.setdefault(branch, []).append(sha)
        return sha

    def push(self, *refs: str) -> None:
        git("-C", self.work, "push", "-q", "origin", *refs)

    def tag(self, name: str, rev: str, annotated: bool = True) -> str:
        if annotated:
            git("-C", self.work, "tag", "-a", "-m", f"tag {name}", name, rev)
        else:
            git("-C", self.work, "tag", name, rev)
        self.push(f"refs/tags/{name}")
        self.tags[name] = git("-C", self.work, "rev-parse", f"{name}^{{commit}}")
        return self.tags[name]

    def tip(self, branch: str) -> str:
        return self.pushed[branch][-1]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def commit(self) -> str | None:
        """The commit= the command logged (prefect-checkout's summary line)."""
        for line in self.stderr.splitlines():
            for word in line.split():
                if word.startswith("commit="):
                    return word[len("commit="):]
        return None


@dataclass
class Host:
    """The directories of a worker host and a config file naming the repositories."""

    root: Path
    urls: dict[str, str]

    @property
    def mirrors(self) -> Path:
        return self.root / "mirrors"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def config(self) -> Path:
        return self.root / "checkout.json"

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_config()

    def write_config(self, **extra: object) -> None:
        data = {"repos": {name: {"url": url} for name, url in self.urls.items()}, **extra}
        self.config.write_text(json.dumps(data, indent=2))

    def mirror(self, repo: str = "flows") -> Path:
        return self.mirrors / f"{repo}.git"

    def args(self) -> list[str]:
        return ["--mirrors-dir", str(self.mirrors), "--runs-dir", str(self.runs),
                "--locks-dir", str(self.locks), "--config", str(self.config)]

    def command(self, *args: str, dirs: bool = True) -> list[str]:
        return [sys.executable, str(SCRIPT), *args, *(self.args() if dirs else [])]

    def run(self, *args: str, env: dict[str, str] | None = None, dirs: bool = True, timeout: float = 120) -> Result:
        started = time.monotonic()
        proc = subprocess.run(self.command(*args, dirs=dirs), capture_output=True, text=True,
                              env=env or base_env(), timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env or base_env(), start_new_session=True)

    def checkout(self, repo: str, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.run("--repo", repo, *args, env=env)

    def make_mirror(self, repo: str, url: str) -> Path:
        """A mirror as the prefect_git_mirror role makes it (no fetch stamp yet)."""
        mirror = self.mirror(repo)
        mirror.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "-q", "--mirror", url, mirror)
        git("--git-dir", mirror, "config", "gc.auto", "0")
        git("--git-dir", mirror, "config", "maintenance.auto", "false")
        return mirror


def git_shim(directory: Path) -> tuple[dict[str, str], Path]:
    """An environment whose `git` logs each call (one line of arguments) and runs the real git."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "calls.log"
    shim = directory / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{GIT}" "$@"\n')
    shim.chmod(0o755)
    env = base_env(PATH=f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    return env, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def head(path: Path) -> str:
    return git("-C", path, "rev-parse", "HEAD")


def writable_paths(path: Path) -> list[Path]:
    """Everything under path (path included, symlinks excluded) with a write bit set."""
    found = []
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files, ""]:
            p = Path(root, name) if name else Path(root)
            if not p.is_symlink() and p.lstat().st_mode & 0o222:
                found.append(p)
    return found


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    d = GitDaemon(tmp_path / "served")
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def origin_template(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    """flows: main (3 commits, a subdirectory, an executable, a symlink), feature
    (one more commit), annotated tag v1 on main~1, lightweight tag v0 on main~2.
    Built once; each test serves its own copy."""
    base = tmp_path_factory.mktemp("origin-template")
    o = Origin.create(base / "flows.git", base / "work-flows")
    o.commit("main", {"README.md": "flows\n", "flows/hello.py": "print('hello')\n"}, push=False)
    o.commit("main", {"flows/hello.py": "print('hello, world')\n"}, push=False)
    run_sh = o.work / "bin/run.sh"
    run_sh.parent.mkdir()
    run_sh.write_text("#!/bin/sh\necho run\n")
    run_sh.chmod(0o755)
    (o.work / "link-to-readme").symlink_to("README.md")
    o.commit("main", {"flows/hello.py": "print('hello, fleet')\n"}, push=False)
    o.push("main")
    o.commit("feature", {"flows/feature.py": "FEATURE = True\n"})
    o.tag("v1", o.pushed["main"][1])
    o.tag("v0", o.pushed["main"][0], annotated=False)
    git("-C", o.work, "checkout", "-q", "main")
    return o


@pytest.fixture
def origin(origin_template: Origin, daemon: GitDaemon, tmp_path: Path) -> Origin:
    return origin_template.copy_to(daemon, tmp_path / "work-flows")


@pytest.fixture
def host(tmp_path: Path, origin: Origin) -> Host:
    """A host whose config names the flows repository (served by the daemon)."""
    return Host(tmp_path / "host", {"flows": origin.url})


@pytest.fixture
def empty_host(tmp_path: Path) -> Host:
    """A host that knows no repository."""
    return Host(tmp_path / "host", {})
