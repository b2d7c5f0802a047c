#!/usr/bin/env python3
"""prefect-checkout: give one Prefect flow run its own checkout of one commit, fast.

The module behind the `prefect-checkout` launcher; the prefect_git_mirror role installs
both to /usr/local/lib/prefect-fleet with this module precompiled (a cached commit in
shared mode costs a few tens of milliseconds, most of it Python starting), and links
/usr/local/bin/prefect-checkout to the launcher. Standard library only; runs on Python
3.9+. See `prefect-checkout --help` for the interface.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing/subprocess costs startup time
    import subprocess
    from collections.abc import Iterator, Sequence
    from typing import NoReturn

PROG = "prefect-checkout"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNKNOWN_REPO = 3
EXIT_NOT_FOUND = 4
EXIT_MIRROR = 5
EXIT_DISK_FULL = 6
EXIT_LOCK_TIMEOUT = 7

DEFAULT_CONFIG = "/etc/prefect/checkout.json"
DEFAULTS: dict[str, object] = {
    "mirrors_dir": "/srv/prefect/mirrors",
    "runs_dir": "/srv/prefect/runs",
    "locks_dir": "/srv/prefect/locks",
    "lock_timeout": 600.0,
    "max_age": 60.0,
}
ENV_VARS = {
    "mirrors_dir": "PREFECT_CHECKOUT_MIRRORS_DIR",
    "runs_dir": "PREFECT_CHECKOUT_RUNS_DIR",
    "locks_dir": "PREFECT_CHECKOUT_LOCKS_DIR",
    "lock_timeout": "PREFECT_CHECKOUT_LOCK_TIMEOUT",
    "max_age": "PREFECT_CHECKOUT_MAX_AGE",
}
TRANSPORT_ERROR = re.compile(
    r"Could not read from remote|unable to connect|Connection (refused|reset|timed out)|Could not resolve"
    r"|unable to access|not found|Permission denied|timed out|unable to look up|No route to host"
    r"|the remote end hung up|early EOF|Host key verification failed|Authentication failed",
    re.IGNORECASE,
)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA_RE = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
COMMITS = "commits"  # <runs_dir>/commits/<repo>/<sha>: shared read-only checkouts
STAMP = "prefect-checkout-fetched"  # <mirror>/STAMP: mtime = last successful fetch
# Never let a fetch or clone start automatic gc/maintenance: it can prune objects that
# live worktrees need. Mirrors are maintained by the cleanup job, under the mirror lock.
NO_AUTO_GC = ["-c", "gc.auto=0", "-c", "maintenance.auto=false"]
# Variables that would point git at another repository than the one we name.
GIT_LOCATION_VARS = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
)

HELP = """\
Prints the directory of a checkout of REPO at REF (or SHA) made for flow run ID, and
nothing else, on stdout; logs go to stderr, one line each. For a Prefect pull step:

  - prefect.deployments.steps.run_shell_script:
      id: checkout
      script: prefect-checkout --repo flows --ref main --run-id {{ $PREFECT__FLOW_RUN_ID }}
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ checkout.stdout }}"

How it works:
  The mirror MIRRORS_DIR/REPO.git is a bare `git clone --mirror` (made by the
  prefect_git_mirror role, or here when missing and its URL is configured). It is
  fetched only when the ref or commit is not in it, or its last good fetch started
  more than --max-age seconds ago (the mtime of MIRROR/prefect-checkout-fetched);
  a --sha already present needs no network. The fetch and the registration of the
  worktree run under an exclusive flock on LOCKS_DIR/mirror-REPO.lock; the files
  are written after the lock is released. Anything else that writes to a mirror
  must hold the same lock (a git it starts inherits it, so a killed
  prefect-checkout's fetch keeps the mirror locked until that fetch ends).

  isolated  RUNS_DIR/ID/REPO is a `git worktree` of the commit (detached; a .git file,
            no copy of the history). The same ID again reuses the directory when it
            is clean and at the commit, and recreates it otherwise.
  shared    RUNS_DIR/commits/REPO/SHA is one read-only worktree per commit, built
            once and renamed into place; RUNS_DIR/ID/REPO is a symlink to it. A
            commit already there costs no git call with --sha and one with --ref.

  A corrupt mirror is moved aside to MIRRORS_DIR/REPO.git.corrupt-TIMESTAMP and
  mirrored again once from its URL. On failure no half-made run directory is left.

  NAME and ID: 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit, without
  '..'; the ID "commits" is reserved. --ref: a branch (refs/heads/REF) wins over a
  tag (refs/tags/REF); a full ref (refs/...) is taken as it is.

Configuration (command line > environment > config file > built-in default):
  --config FILE    $PREFECT_CHECKOUT_CONFIG, default /etc/prefect/checkout.json (a
                   missing default file is fine). JSON object, every key optional:
                     {"mirrors_dir": "/srv/prefect/mirrors",
                      "runs_dir": "/srv/prefect/runs",
                      "locks_dir": "/srv/prefect/locks",
                      "lock_timeout": 600, "max_age": 60,
                      "repos": {"flows": {"url": "git@git.example.com:org/flows.git",
                                          "git_config": "/etc/prefect/git/flows.gitconfig"}}}
                   A repo's URL is needed to create or re-create its mirror; without
                   it the URL stored in the mirror is used. URLs must not embed a
                   password or token: use a deploy key or a credential helper, set
                   in the repo's optional git_config file (a mirror made here gets
                   include.path = that file, as the role's mirrors do) or inherited
                   from the environment (GIT_SSH_COMMAND).
  --mirrors-dir    $PREFECT_CHECKOUT_MIRRORS_DIR   (default /srv/prefect/mirrors)
  --runs-dir       $PREFECT_CHECKOUT_RUNS_DIR      (default /srv/prefect/runs)
  --locks-dir      $PREFECT_CHECKOUT_LOCKS_DIR     (default /srv/prefect/locks)
  --lock-timeout   $PREFECT_CHECKOUT_LOCK_TIMEOUT  (default 600 s; also bounds a fetch)
  --max-age        $PREFECT_CHECKOUT_MAX_AGE       (default 60 s; 0 with --refresh)

Exit status (with a one-line error on stderr):
  0  ok
  1  anything else (e.g. origin unreachable when a fetch is needed)
  2  usage or bad input (names, ids, SHA, config file)
  3  unknown repo: no mirror and no URL configured
  4  ref or commit not found, after a fetch
  5  mirror missing or corrupt, and mirroring it again failed
  6  disk full
  7  timed out waiting for the mirror lock
"""


class Failure(Exception):
    """An error with its exit status and one-line message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class GitError(Exception):
    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} failed ({returncode})")
        self.returncode = returncode
        self.stderr = stderr

    @property
    def last_line(self) -> str:
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.returncode}"


class LockTimeout(Exception):
    pass


class Retry(Exception):
    """The mirror was replaced under a checkout in progress: start it again."""


def log(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def disk_full(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


def safe_url(url: str) -> str:
    """The URL without any user information, for logs."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url)


URL_SCHEMES = ("https", "ssh", "git", "file")


def url_problem(url: object) -> str:
    """'' for a URL of a transport the kit supports, else why not. The roles' copy of this
    rule is the filter prefect_fleet.fleet.repo_problems; tests/unit/test_repo_rules.py
    keeps both deciding alike."""
    if not isinstance(url, str) or not url:
        return "needs a url (a non-empty string)"
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not hold control characters"
    if url.startswith("-"):
        return "must not start with '-'"
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*::", url):
        return "uses a git remote-helper transport ('name::'), which the kit refuses"
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if scheme:
        if scheme.group(1) not in URL_SCHEMES:
            return f"has scheme '{scheme.group(1)}'; the kit supports {', '.join(URL_SCHEMES)}"
        rest = url[len(scheme.group(0)):]
        if scheme.group(1) == "file":
            return "" if rest.startswith("/") else "must be file:///absolute/path"
        userinfo, _, host = rest.split("/", 1)[0].rpartition("@")
        if ":" in userinfo:
            return "embeds a password or token; use a deploy key or a credential helper"
        return "" if host and not host.startswith("-") else "needs a host that does not start with '-'"
    scp = re.match(r"^(?:[^@/:]*@)?([^/:]*):", url)
    if scp:
        return "" if scp.group(1) and not scp.group(1).startswith("-") else "needs a host that does not start with '-'"
    return "" if url.startswith("/") else "is a relative path; write an absolute one or file:///path"


# ---------------------------------------------------------------------------
# settings


class Settings:
    def __init__(self, args: argparse.Namespace) -> None:
        config_path = args.config or os.environ.get("PREFECT_CHECKOUT_CONFIG") or ""
        explicit = bool(config_path)
        config = self._load(config_path or DEFAULT_CONFIG, explicit)

        def pick(key: str, cli: object) -> object:
            if cli is not None:
                return cli
            env = os.environ.get(ENV_VARS[key])
            if env:
                return env
            if key in config:
                return config[key]
            return DEFAULTS[key]

        self.mirrors_dir = self._path("mirrors_dir", pick("mirrors_dir", args.mirrors_dir))
        self.runs_dir = self._path("runs_dir", pick("runs_dir", args.runs_dir))
        self.locks_dir = self._path("locks_dir", pick("locks_dir", args.locks_dir))
        self.lock_timeout = self._seconds("lock_timeout", pick("lock_timeout", args.lock_timeout))
        max_age = args.max_age
        if max_age is None and args.refresh:
            max_age = 0.0
        self.max_age = self._seconds("max_age", pick("max_age", max_age))
        repos = config.get("repos", {})
        if not isinstance(repos, dict):
            raise Failure(EXIT_USAGE, "config key 'repos' must be an object of {name: {url: ...}}")
        self.urls: dict[str, str] = {}
        self.git_configs: dict[str, str] = {}
        for name, repo in repos.items():
            url = repo.get("url") if isinstance(repo, dict) else None
            if not isinstance(repo, dict) or not isinstance(url, str) or not url:
                raise Failure(EXIT_USAGE, f"config repos.{name} needs a string 'url'")
            problem = url_problem(url)
            if problem:
                raise Failure(EXIT_USAGE, f"config repos.{name}.url {problem}")
            self.urls[str(name)] = url
            git_config = repo.get("git_config")
            if git_config is not None:
                if not isinstance(git_config, str) or not os.path.isabs(git_config):
                    raise Failure(EXIT_USAGE, f"config repos.{name}.git_config must be an absolute path")
                self.git_configs[str(name)] = git_config

    @staticmethod
    def _load(path: str, explicit: bool) -> dict[str, object]:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            if explicit:
                raise Failure(EXIT_USAGE, f"config file {path} does not exist") from None
            return {}
        except (OSError, ValueError) as exc:
            raise Failure(EXIT_USAGE, f"cannot read config file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise Failure(EXIT_USAGE, f"config file {path} must hold a JSON object")
        return data

    @staticmethod
    def _path(key: str, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise Failure(EXIT_USAGE, f"{key} must be a non-empty path")
        return os.path.abspath(value)

    @staticmethod
    def _seconds(key: str, value: object) -> float:
        try:
            seconds = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise Failure(EXIT_USAGE, f"{key} must be a number of seconds, not {value!r}") from None
        if not 0 <= seconds < float("inf"):  # also refuses NaN
            raise Failure(EXIT_USAGE, f"{key} must be a finite number >= 0")
        return seconds


# ---------------------------------------------------------------------------
# small file-system helpers


def make_writable(path: str) -> None:
    """chmod u+rwx every directory under path (never following symlinks)."""
    for root, dirs, _files in os.walk(path):
        for d in [*dirs, "."]:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                with contextlib.suppress(OSError):
                    os.chmod(p, os.lstat(p).st_mode | 0o700)


def remove_tree(path: str) -> None:
    import shutil  # here: only needed on the slow paths; startup time counts

    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
        return
    if not os.path.isdir(path):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        make_writable(path)
        shutil.rmtree(path, ignore_errors=True)


def make_read_only(path: str) -> None:
    """chmod a-w everything under path, children first; symlinks are left alone."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files + dirs:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if not os.path.islink(p):
                os.chmod(p, st.st_mode & ~0o222)
    os.chmod(path, os.stat(path).st_mode & ~0o222)


def unique_suffix() -> str:
    return f"{os.getpid()}-{os.urandom(3).hex()}"


def discard(path: str) -> None:
    """Remove a run directory or link: rename it away first, so it vanishes at once."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    trash = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.trash-{unique_suffix()}")
    os.rename(path, trash)
    remove_tree(trash)


# ---------------------------------------------------------------------------
# locking


def _alarm(signum: int, frame: object) -> None:
    raise LockTimeout()


def acquire_lock(path: str, timeout: float, what: str) -> int:
    """Open and flock(LOCK_EX) path; wait at most timeout seconds (exit 7 after).

    prefect-cleanup unlinks stale lock files while holding them; a lock taken on a
    file that was unlinked meanwhile protects nothing, so take it again on the file
    now at path."""
    deadline = time.monotonic() + timeout
    while True:
        fd = _acquire_lock_once(path, max(0.0, deadline - time.monotonic()) if timeout > 0 else timeout, what)
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _acquire_lock_once(path: str, timeout: float, what: str) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        if timeout <= 0:
            raise LockTimeout()
        log(f"waiting for the {what} lock {path} (at most {timeout:g} s)")
        started = time.monotonic()
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except LockTimeout:
            try:  # the alarm may have raced with a successful flock
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockTimeout() from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        waited = time.monotonic() - started
        if waited >= 1:
            log(f"got the {what} lock after {waited:.1f} s")
        return fd
    except LockTimeout:
        os.close(fd)
        raise Failure(EXIT_LOCK_TIMEOUT, f"timed out after {timeout:g} s waiting for the {what} lock {path}") from None
    except BaseException:
        os.close(fd)
        raise


# ---------------------------------------------------------------------------
# the checkout


class Checkout:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.s = settings
        self.repo: str = args.repo
        self.ref: str | None = args.ref
        self.sha: str | None = args.sha.lower() if args.sha else None
        self.run_id: str | None = args.run_id
        self.mode: str = args.mode
        self.mirror = os.path.join(settings.mirrors_dir, f"{self.repo}.git")
        self.lock_path = os.path.join(settings.locks_dir, f"mirror-{self.repo}.lock")
        self.commits_dir = os.path.join(settings.runs_dir, COMMITS, self.repo)
        self.run_parent = os.path.join(settings.runs_dir, self.run_id or "")
        self.dest = os.path.join(self.run_parent, self.repo)
        self.started = time.time()
        self.lock_fd: int | None = None
        self.fetched = False
        self.remirrored = False
        self.mirror_inode = 0  # of the mirror a worktree was added to
        env = dict(os.environ)
        for var in GIT_LOCATION_VARS:
            env.pop(var, None)
        env.pop("LANGUAGE", None)
        env["LC_ALL"] = "C"  # git's messages are parsed (disk full)
        env["GIT_TERMINAL_PROMPT"] = "0"
        self.env = env

    # -- git ---------------------------------------------------------------

    def git(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """Run git; under the mirror lock the child inherits the lock, so a git left
        running by a killed prefect-checkout keeps the mirror locked until it ends."""
        import subprocess  # here: the cached shared path never runs git; startup time counts

        cmd = ["git", *args]
        try:
            result = subprocess.run(
                cmd, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                text=True, errors="replace", timeout=timeout,
                pass_fds=(self.lock_fd,) if self.lock_fd is not None else (),
            )
        except FileNotFoundError:
            raise Failure(EXIT_ERROR, "git is not installed or not on PATH") from None
        except subprocess.TimeoutExpired:
            sub = next((a for a in args if a in ("fetch", "clone")), "command")
            raise Failure(EXIT_ERROR, f"git {sub} took longer than {timeout:g} s; killed it") from None
        if disk_full(result.stderr):
            line = next(line for line in result.stderr.splitlines() if disk_full(line))
            raise Failure(EXIT_DISK_FULL, f"disk full: {line.strip()}")
        if check and result.returncode != 0:
            raise GitError(args, result.returncode, result.stderr)
        return result

    def mgit(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """git on the mirror (--git-dir: never discovers an enclosing repository)."""
        return self.git(f"--git-dir={self.mirror}", *args, stdin=stdin, check=check)

    def wgit(self, path: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """git in the worktree at path."""
        return self.git(f"--git-dir={os.path.join(path, '.git')}", f"--work-tree={path}", *args, check=check)

    # -- locking -------------------------------------------------------------

    @contextlib.contextmanager
    def mirror_lock(self, timeout: float | None = None) -> Iterator[None]:
        fd = acquire_lock(self.lock_path, self.s.lock_timeout if timeout is None else timeout, "mirror")
        self.lock_fd = fd
        try:
            yield
        finally:
            self.lock_fd = None
            os.close(fd)

    # -- the mirror ------------------------------------------------------------

    def url(self) -> str | None:
        url = self.s.urls.get(self.repo)
        if url:
            return url
        config = os.path.join(self.mirror, "config")
        if os.path.isfile(config):
            result = self.git("config", "--file", config, "--get", "remote.origin.url", check=False)
            stored: str = result.stdout.strip()
            # A mirror made by hand may hold any URL: use it only if the rule for
            # configured URLs (no secret, a supported transport) accepts it.
            if stored and not url_problem(stored):
                return stored
        return None

    def unknown_repo(self) -> Failure:
        return Failure(EXIT_UNKNOWN_REPO, f"unknown repo {self.repo}: no mirror {self.mirror} and no URL configured")

    def stamp_mtime(self) -> float:
        try:
            return os.stat(os.path.join(self.mirror, STAMP)).st_mtime
        except OSError:
            return 0.0

    def write_stamp(self, mirror: str, fetch_started: float) -> None:
        """Record a good fetch. The mtime is when it STARTED: the mirror holds at least
        what origin had then, so "fetched after we started" really means newer."""
        path = os.path.join(mirror, STAMP)
        with open(path, "w", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime(fetch_started)))
        os.utime(path, (fetch_started, fetch_started))

    def fresh(self) -> bool:
        return time.time() - self.stamp_mtime() <= self.s.max_age

    def candidates(self) -> list[str]:
        if self.sha:
            return [self.sha]
        ref = self.ref or ""
        if ref.startswith("refs/") or ref == "HEAD":
            return [ref]
        return [f"refs/heads/{ref}", f"refs/tags/{ref}"]  # a branch wins over a tag

    def resolve(self) -> str | None:
        """The commit for --ref/--sha in the mirror as it is, or None."""
        if not os.path.isdir(self.mirror):
            return None
        query = "".join(f"{name}^{{commit}}\n" for name in self.candidates())
        result = self.mgit("cat-file", "--batch-check", stdin=query, check=False)
        if result.returncode != 0:
            return None
        for line in result.stdout.splitlines():
            parts: list[str] = line.split()
            if len(parts) == 3 and parts[1] == "commit" and SHA_RE.match(parts[0]):
                return parts[0]
        return None

    def problem(self, thorough: bool = False) -> str | None:
        """Why the mirror is unusable (broken or dangling refs; with thorough, missing
        objects anywhere), or None."""
        if not os.path.isdir(self.mirror):
            return "missing"
        result = self.mgit("for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", check=False)
        for line in result.stderr.splitlines():
            if result.returncode != 0 or "broken" in line or "ignoring" in line or "error" in line:
                return line.strip() or f"git for-each-ref failed ({result.returncode})"
        if result.returncode != 0:
            return f"git for-each-ref failed ({result.returncode})"
        if thorough:
            result = self.mgit("fsck", "--connectivity-only", "--no-progress", "--no-dangling", check=False)
            if result.returncode != 0:
                lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
                return lines[0].strip() if lines else f"git fsck failed ({result.returncode})"
        return None

    def clean_stale_git_locks(self) -> None:
        """Under the mirror lock nobody else writes to the mirror: git's own lock and
        temporary files there were left by a killed git and would fail the fetch."""
        removed = 0
        candidates = [os.path.join(self.mirror, n) for n in
                      ("packed-refs.lock", "HEAD.lock", "config.lock", "shallow.lock", "FETCH_HEAD.lock")]
        for root, _dirs, files in os.walk(os.path.join(self.mirror, "refs")):
            candidates += [os.path.join(root, f) for f in files if f.endswith(".lock")]
        pack_dir = os.path.join(self.mirror, "objects", "pack")
        with contextlib.suppress(OSError):
            for name in os.listdir(pack_dir):
                path = os.path.join(pack_dir, name)
                if name.startswith("tmp_"):
                    candidates.append(path)
                elif name.endswith(".keep"):
                    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as f:
                        if f.read(64).startswith("fetch-pack"):
                            candidates.append(path)
        for path in candidates:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
        if removed:
            log(f"removed {removed} stale git lock/temporary file(s) from {self.mirror} (an interrupted git left them)")

    def clone_mirror(self, url: str) -> None:
        """Under the mirror lock: clone into a temporary name, then rename into place."""
        os.makedirs(self.s.mirrors_dir, exist_ok=True)
        prefix = f".{self.repo}.git.tmp-"
        for name in os.listdir(self.s.mirrors_dir):
            if name.startswith(prefix):  # left by a killed clone (we hold the lock)
                remove_tree(os.path.join(self.s.mirrors_dir, name))
        tmp = os.path.join(self.s.mirrors_dir, prefix + unique_suffix())
        include = self.s.git_configs.get(self.repo)
        # clone's own -c settings are written to the new mirror before it fetches
        settings = [*NO_AUTO_GC, *(["-c", f"include.path={include}"] if include else [])]
        started, wall_started = time.monotonic(), time.time()
        try:
            self.git(*NO_AUTO_GC, "clone", "--mirror", "--quiet", *settings, "--", url, tmp,
                     timeout=self.s.lock_timeout or None)
            self.write_stamp(tmp, wall_started)
            os.rename(tmp, self.mirror)
        except GitError as exc:
            remove_tree(tmp)
            raise Failure(EXIT_MIRROR, f"could not mirror {safe_url(url)}: {exc.last_line}") from None
        except BaseException:
            remove_tree(tmp)
            raise
        self.fetched = True
        log(f"mirrored {safe_url(url)} to {self.mirror} in {time.monotonic() - started:.2f} s")

    def remirror(self, reason: str) -> None:
        """Move a corrupt mirror aside (kept for inspection) and mirror again, once."""
        if self.remirrored:
            raise Failure(EXIT_MIRROR, f"mirror {self.mirror} is still unusable after mirroring it again: {reason}")
        self.remirrored = True
        url = self.url()
        if not url:
            raise Failure(EXIT_MIRROR, f"mirror {self.mirror} is corrupt ({reason}) and no URL is known")
        aside = f"{self.mirror}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        if os.path.lexists(aside):
            aside += f"-{unique_suffix()}"
        log(f"mirror {self.mirror} is corrupt ({reason}); moving it aside to {aside} and mirroring it again")
        os.rename(self.mirror, aside)
        self.clone_mirror(url)

    def fetch(self) -> None:
        self.clean_stale_git_locks()
        started, wall_started = time.monotonic(), time.time()
        result = self.git(*NO_AUTO_GC, f"--git-dir={self.mirror}", "fetch", "--prune", "--quiet", "origin",
                          check=False, timeout=self.s.lock_timeout or None)
        if result.returncode != 0:
            error = GitError(["fetch"], result.returncode, result.stderr)
            # A transport error says nothing about the mirror: skip the (slow) fsck then.
            reason = self.problem(thorough=not TRANSPORT_ERROR.search(result.stderr))
            if reason:
                self.remirror(reason)
                return
            raise Failure(EXIT_ERROR, f"fetch of {self.repo} from origin failed: {error.last_line}")
        self.write_stamp(self.mirror, wall_started)
        self.fetched = True
        log(f"fetched {self.repo} in {time.monotonic() - started:.2f} s")

    def update(self) -> str:
        """Under the mirror lock: create, repair or fetch the mirror; return the commit."""
        if not os.path.isdir(self.mirror):
            url = self.url()
            if not url:
                raise self.unknown_repo()
            self.clone_mirror(url)
        else:
            if self.stamp_mtime() >= self.started:  # fetched by another process while we waited
                sha = self.resolve()
                if sha:
                    return sha
            reason = self.problem()
            if reason:
                self.remirror(reason)
            else:
                self.fetch()
        sha = self.resolve()
        if sha is None and not self.remirrored:
            reason = self.problem(thorough=True)
            if reason:
                self.remirror(reason)
                sha = self.resolve()
        if sha is None:
            what = f"commit {self.sha}" if self.sha else f"ref {self.ref}"
            raise Failure(EXIT_NOT_FOUND, f"{what} not found in {self.repo} (after a fetch)")
        return sha

    def resolve_without_lock(self) -> str | None:
        """The commit, when no fetch is needed for it; None otherwise."""
        if not os.path.isdir(self.mirror):
            if not self.s.urls.get(self.repo):
                raise self.unknown_repo()
            return None
        if self.sha is None and not self.fresh():
            return None
        return self.resolve()

    # -- worktrees -----------------------------------------------------------

    def add_worktree(self, path: str, sha: str, prune: bool = False) -> None:
        """Under the mirror lock: register a worktree at path, without its files."""
        if prune:
            self.mgit("worktree", "prune", check=False)
        try:
            self.mgit("worktree", "add", "--no-checkout", "--detach", path, sha)
            self.mirror_inode = os.stat(self.mirror).st_ino
        except GitError as exc:
            reason = self.problem(thorough=True)
            if reason and not self.remirrored:
                with contextlib.suppress(OSError):
                    discard(path)
                self.remirror(reason)
                raise Retry() from None
            raise Failure(EXIT_ERROR, f"git worktree add {path} failed: {exc.last_line}") from None

    def populate(self, path: str, sha: str) -> None:
        """Outside the lock: write the files of the worktree at path."""
        try:
            self.wgit(path, "reset", "-q", "--hard", sha)
        except GitError as exc:
            full = self.space_problem(path, sha)
            if full:
                raise Failure(EXIT_DISK_FULL, f"disk full: {full}") from None
            with contextlib.suppress(OSError):
                if os.stat(self.mirror).st_ino != self.mirror_inode:
                    raise Retry() from None  # re-mirrored by another process meanwhile
            if not self.remirrored:
                with self.mirror_lock(timeout=min(self.s.lock_timeout, 60.0)):
                    reason = self.problem(thorough=True)
                    if reason:
                        self.remirror(reason)
                        raise Retry() from None
            raise Failure(EXIT_ERROR, f"checkout of {sha} in {path} failed: {exc.last_line}") from None

    def space_problem(self, path: str, sha: str) -> str | None:
        """After a failed checkout (git does not say why a file could not be written):
        is the tree bigger than the free space, or are inodes or the mirror's disk out?"""
        try:
            run_fs = os.statvfs(path)
            mirror_fs = os.statvfs(self.mirror)
        except OSError:
            return None
        if run_fs.f_favail == 0 or mirror_fs.f_favail == 0:
            return f"no free inodes for {path} or {self.mirror}"
        if mirror_fs.f_bavail * mirror_fs.f_frsize < 1 << 20:
            return f"less than 1 MiB free for {self.mirror}"
        listing = self.mgit("ls-tree", "-r", "-l", sha, check=False)
        block = run_fs.f_frsize or 4096
        need = 0
        for line in listing.stdout.splitlines():
            fields = line.split(None, 4)
            if len(fields) == 5 and fields[3].isdigit():
                need += -(-int(fields[3]) // block) * block
        free = run_fs.f_bavail * run_fs.f_frsize
        if need > free:
            return f"the files of {sha[:12]} need {need >> 10} KiB, {free >> 10} KiB free for {path}"
        return None

    def reusable(self, sha: str) -> bool:
        """A retried run: is the existing directory a clean worktree of this mirror at sha?"""
        dest = self.dest
        if os.path.islink(dest) or not os.path.isdir(dest) or not os.path.isfile(os.path.join(dest, ".git")):
            return False
        result = self.wgit(dest, "rev-parse", "--git-common-dir", "HEAD", check=False)
        lines = result.stdout.split()
        if result.returncode != 0 or len(lines) != 2 or lines[1] != sha:
            return False
        if os.path.realpath(os.path.join(dest, lines[0])) != os.path.realpath(self.mirror):
            return False
        status = self.wgit(dest, "status", "--porcelain", "--ignored", "--untracked-files=all", check=False)
        return status.returncode == 0 and status.stdout == ""

    def forget_failed(self, path: str) -> None:
        """Remove a half-made worktree and, if we can get the lock quickly, its metadata."""
        with contextlib.suppress(OSError):
            discard(path)
        if os.path.isdir(self.mirror):
            with contextlib.suppress(Failure, OSError), self.mirror_lock(timeout=min(self.s.lock_timeout, 10.0)):
                self.mgit("worktree", "prune", check=False)

    def make_run_parent(self) -> bool:
        """Create RUNS_DIR/ID; True when it did not exist."""
        try:
            os.makedirs(self.run_parent)
            return True
        except FileExistsError:
            return False

    def drop_run_parent(self, created: bool) -> None:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(self.run_parent)  # only when empty

    # -- modes -----------------------------------------------------------------

    def isolated(self) -> str:
        sha = self.resolve_without_lock()
        if sha and self.reusable(sha):
            self.report(sha, "reused")
            return self.dest
        removed = os.path.lexists(self.dest)
        if removed:
            log(f"{self.dest} exists but is not a clean worktree at the commit; recreating it")
            discard(self.dest)
        created_parent = self.make_run_parent()
        made = False
        try:
            with self.mirror_lock():
                if sha is None:
                    sha = self.update()
                self.add_worktree(self.dest, sha, prune=removed)
                made = True
            self.populate(self.dest, sha)
        except BaseException:
            if made or os.path.lexists(self.dest):
                self.forget_failed(self.dest)
            self.drop_run_parent(created_parent)
            raise
        self.report(sha, "created")
        return self.dest

    def shared(self) -> str:
        if self.sha and os.path.isdir(os.path.join(self.commits_dir, self.sha)):
            return self.link(self.sha, "cached")  # no git at all
        sha = self.resolve_without_lock()
        if sha is None:
            with self.mirror_lock():
                sha = self.update()
        final = os.path.join(self.commits_dir, sha)
        if os.path.isdir(final):
            return self.link(sha, "cached")
        os.makedirs(self.commits_dir, exist_ok=True)
        fd = acquire_lock(os.path.join(self.s.locks_dir, f"commit-{self.repo}-{sha}.lock"),
                          self.s.lock_timeout, "commit")
        try:
            if os.path.isdir(final):  # built by another process while we waited
                return self.link(sha, "cached")
            self.build_commit_dir(sha, final)
        finally:
            os.close(fd)
        return self.link(sha, "created")

    def build_commit_dir(self, sha: str, final: str) -> None:
        # Built under a temporary name in the same directory, made read-only, then
        # renamed into place (git worktree move: rename(2) + metadata), so a reader
        # never sees a half-written tree.
        tmp = os.path.join(self.commits_dir, f".tmp-{sha[:12]}-{unique_suffix()}")
        try:
            with self.mirror_lock():
                self.add_worktree(tmp, sha, prune=True)
            self.populate(tmp, sha)
            make_read_only(tmp)
            with self.mirror_lock():
                self.mgit("worktree", "move", tmp, final)
        except GitError as exc:
            self.forget_failed(tmp)
            if os.path.isdir(final):
                return
            raise Failure(EXIT_ERROR, f"could not move {tmp} to {final}: {exc.last_line}") from None
        except BaseException:
            self.forget_failed(tmp)
            raise

    def link(self, sha: str, how: str) -> str:
        target = os.path.join(self.commits_dir, sha)
        created_parent = self.make_run_parent()
        try:
            if os.path.islink(self.dest) and os.readlink(self.dest) == target:
                self.report(sha, f"{how}, link reused")
                return self.dest
            if os.path.lexists(self.dest) and not os.path.islink(self.dest):
                discard(self.dest)
            tmp = os.path.join(self.run_parent, f".{self.repo}.link-{unique_suffix()}")
            os.symlink(target, tmp)
            os.replace(tmp, self.dest)
        except BaseException:
            self.drop_run_parent(created_parent)
            raise
        self.report(sha, how)
        return self.dest

    def report(self, sha: str, how: str) -> None:
        what = f"sha={self.sha}" if self.sha else f"ref={self.ref}"
        log(f"repo={self.repo} {what} commit={sha} mode={self.mode} {how} dir={self.dest} "
            f"fetched={'yes' if self.fetched else 'no'} seconds={time.time() - self.started:.3f}")

    def refresh(self) -> None:
        if not os.path.isdir(self.mirror) and not self.s.urls.get(self.repo):
            raise self.unknown_repo()
        if os.path.isdir(self.mirror) and self.s.max_age > 0 and self.fresh():
            log(f"{self.repo}: mirror fetched less than {self.s.max_age:g} s ago; nothing to do")
            return
        with self.mirror_lock():
            if not os.path.isdir(self.mirror):
                self.clone_mirror(self.url() or "")
            elif self.stamp_mtime() >= self.started:
                log(f"{self.repo}: fetched by another process meanwhile")
            else:
                reason = self.problem()
                if reason:
                    self.remirror(reason)
                else:
                    self.fetch()

    def run(self) -> str:
        for attempt in (1, 2):
            try:
                return self.shared() if self.mode == "shared" else self.isolated()
            except Retry:
                if attempt == 2:
                    break
                log("mirror replaced during the checkout; starting again")
        raise Failure(EXIT_MIRROR, f"checkout failed again after mirroring {self.repo} again")


# ---------------------------------------------------------------------------
# command line


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        sys.exit(EXIT_USAGE)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = Parser(
        prog=PROG,
        usage=(f"{PROG} --repo NAME (--ref REF | --sha SHA) --run-id ID [--mode isolated|shared]\n"
               f"{' ' * 23}[--max-age SECONDS] [--mirrors-dir DIR] [--runs-dir DIR] [--locks-dir DIR]\n"
               f"{' ' * 23}[--lock-timeout SECONDS] [--config FILE]\n"
               f"       {PROG} --repo NAME --refresh [--max-age SECONDS] [...]"),
        description="Check out a commit of a mirrored git repository for one Prefect flow run.",
        epilog=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--repo", required=True, metavar="NAME", help="repository name (its mirror is MIRRORS_DIR/NAME.git)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--ref", metavar="REF",
                      help="branch, tag or full ref (refs/heads/x); a branch wins over a tag of the same name")
    what.add_argument("--sha", metavar="SHA", help="full commit id (40 or 64 hex digits)")
    what.add_argument("--refresh", action="store_true",
                      help="only create or fetch the mirror (for timers), under the same lock; prints nothing")
    p.add_argument("--run-id", metavar="ID", help="flow run id: the checkout goes to RUNS_DIR/ID/NAME")
    p.add_argument("--mode", choices=("isolated", "shared"), default="isolated",
                   help="isolated (default): own worktree; shared: symlink to one read-only checkout per commit")
    p.add_argument("--max-age", type=float, metavar="SECONDS",
                   help="fetch when the mirror's last fetch is older (default 60)")
    p.add_argument("--mirrors-dir", metavar="DIR")
    p.add_argument("--runs-dir", metavar="DIR")
    p.add_argument("--locks-dir", metavar="DIR")
    p.add_argument("--lock-timeout", type=float, metavar="SECONDS",
                   help="wait at most this long for a lock (default 600)")
    p.add_argument("--config", metavar="FILE",
                   help="JSON config (default $PREFECT_CHECKOUT_CONFIG or /etc/prefect/checkout.json)")
    args = p.parse_args(argv)
    if not args.refresh:
        if not args.ref and not args.sha:
            p.error("one of --ref, --sha or --refresh is required")
        if not args.run_id:
            p.error("--run-id is required")
    return args


def check_name(kind: str, value: str) -> None:
    if not NAME_RE.fullmatch(value) or ".." in value:
        raise Failure(EXIT_USAGE, f"bad {kind} {value!r}: use 1-128 of A-Z a-z 0-9 . _ - (starting with a letter "
                      "or digit, no '..')")


def check_ref(ref: str) -> None:
    bad = (not ref or ref.startswith(("-", "/")) or ref.endswith(("/", ".", ".lock")) or ".." in ref
           or "@{" in ref or "//" in ref or any(c in ref for c in " ~^:?*[\\\x7f")
           or any(ord(c) < 32 for c in ref))
    if bad:
        raise Failure(EXIT_USAGE, f"bad ref {ref!r}")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()  # unwinds through the cleanup of a half-made checkout


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        check_name("repo name", args.repo)
        if args.run_id is not None:
            check_name("run id", args.run_id)
            if args.run_id == COMMITS:
                raise Failure(EXIT_USAGE, f"bad run id {COMMITS!r}: RUNS_DIR/{COMMITS} holds the shared checkouts")
        if args.sha is not None and not SHA_RE.match(args.sha):
            raise Failure(EXIT_USAGE, f"bad sha {args.sha!r}: give the full commit id (40 or 64 hex digits)")
        if args.ref is not None:
            check_ref(args.ref)
        checkout = Checkout(Settings(args), args)
        if args.refresh:
            checkout.refresh()
            return EXIT_OK
        path = checkout.run()
        sys.stdout.write(path + "\n")
        sys.stdout.flush()
        return EXIT_OK
    except Failure as exc:
        log(f"error: {exc.message}")
        return exc.code
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log(f"error: disk full: {exc}")
            return EXIT_DISK_FULL
        log(f"error: {exc}")
        return EXIT_ERROR
    except GitError as exc:
        log(f"error: {exc}: {exc.last_line}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        log("error: interrupted")
        return EXIT_ERROR
    except Exception as exc:  # one line, never a traceback
        if os.environ.get("PREFECT_CHECKOUT_DEBUG"):
            raise
        log(f"error: {type(exc).__name__}: {exc}")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
