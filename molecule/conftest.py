"""Shared fixtures for the Molecule scenarios' testinfra tests.

Tests reach the test hosts through testinfra's podman backend (``podman://NAME``),
which is about 13x faster than going through Ansible. The host names come from the
inventory Molecule wrote for the scenario.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts/lib"))

import prefect_api  # noqa: E402  (molecule/, this file's folder, is on sys.path)
import reliability  # noqa: E402


def _inventory_hosts(path: Path) -> list[str]:
    """Every host name in a YAML inventory, in order, once."""
    data = yaml.safe_load(path.read_text()) or {}
    names: list[str] = []

    def walk(group: dict) -> None:
        for name in (group.get("hosts") or {}):
            if name not in names:
                names.append(name)
        for child in (group.get("children") or {}).values():
            walk(child or {})

    for group in data.values():
        walk(group or {})
    return names


def molecule_inventory() -> Path:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        raise RuntimeError("MOLECULE_INVENTORY_FILE is not set: run these tests through molecule verify")
    return Path(inventory)


def pytest_configure(config: pytest.Config) -> None:
    """Point testinfra at the scenario's hosts over the podman connection."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if inventory and config.option.hosts is None:
        config.option.hosts = ",".join(f"podman://{h}" for h in _inventory_hosts(Path(inventory)))


@dataclass
class PlaybookResult:
    rc: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP counters per host, e.g. {'h': {'ok': 3, 'changed': 0, ...}}."""
        hosts: dict[str, dict[str, int]] = {}
        for match in re.finditer(r"^(\S+)\s*:\s+(ok=\d+.*)$", self.output, re.MULTILINE):
            hosts[match.group(1)] = {
                k: int(v) for k, v in (kv.split("=") for kv in match.group(2).split())
            }
        return hosts

    @property
    def task_statuses(self) -> dict[str, set[str]]:
        """What each task reported on any host, by its header: {'role : name': {'ok', 'skipping'}}."""
        statuses: dict[str, set[str]] = {}
        task = None
        for line in self.output.splitlines():
            header = re.match(r"^TASK \[(.+?)\] \*", line)
            if header:
                task = header.group(1)
                statuses.setdefault(task, set())
                continue
            status = re.match(r"^(ok|changed|skipping|failed|fatal): \[", line)
            if task and status:
                statuses[task].add(status.group(1))
        return statuses


@pytest.fixture(scope="session")
def run_playbook(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., PlaybookResult]:
    """Run ansible-playbook against the scenario's inventory, as Molecule would."""
    inventory = molecule_inventory()
    workdir = tmp_path_factory.mktemp("playbooks")

    def run(playbook: str | Path, extra_vars: dict | None = None, check: bool = False,
            limit: str | None = None, args: tuple[str, ...] = ()) -> PlaybookResult:
        """playbook: the text of a playbook, or the Path of one of the kit's; args: more
        command line arguments (e.g. ("--tags", "prefect_cleanup"))."""
        path = workdir / f"play-{len(list(workdir.iterdir()))}.yml"
        if isinstance(playbook, Path):
            path = playbook
        else:
            path.write_text(playbook)
        cmd = ["ansible-playbook", "-i", str(inventory), str(path)]
        if extra_vars is not None:
            vars_file = workdir / f"vars-{len(list(workdir.iterdir()))}.json"
            vars_file.write_text(json.dumps(extra_vars))
            cmd += ["-e", f"@{vars_file}"]
        if check:
            cmd.append("--check")
        if limit:
            cmd += ["--limit", limit]
        cmd += list(args)
        env = dict(os.environ)
        env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / ".cache" / "collections"))
        env["ANSIBLE_NOCOLOR"] = "1"
        env["ANSIBLE_FORCE_COLOR"] = "0"
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        return PlaybookResult(proc.returncode, proc.stdout + proc.stderr)

    return run


@pytest.fixture
def host_state(host) -> Callable[..., str]:
    """A fingerprint of what the kit could touch on a host: users, groups, and the
    given paths with owner and mode. Equal before/after = nothing changed. Scenarios
    with running workers pass paths that flow runs do not write to."""

    def snapshot(paths: tuple[str, ...] = ("/srv", "/etc/prefect")) -> str:
        out = host.run(
            "getent passwd; getent group; "
            "find %s -xdev -printf '%%p %%u %%g %%m %%y\\n' 2>/dev/null | sort" % " ".join(paths)
        )
        return out.stdout

    return snapshot


@pytest.fixture
def journal(host) -> Iterator[Callable[[str], str]]:
    """journalctl of a unit, to put in assertion messages of service tests."""

    def read(unit: str, lines: int = 80) -> str:
        return host.run(f"journalctl --no-pager -n {lines} -u {unit}").stdout

    yield read


# Fault, bad-input and security cases (@pytest.mark.reliability) are recorded with their
# results for docs/reliability.md (scripts/lib/reliability.py, scripts/reliability).
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    reliability.record(item, outcome.get_result())


# When a scenario's tests fail, its hosts are destroyed right after: keep what they
# logged. Every host's journal of the kit's units goes to .cache/test-logs/ with the
# test server's log, and the errors in them are printed at the end of the test output,
# which is what CI shows.
JOURNAL_DIGEST = re.compile(r"error|failed|crash|traceback|\b50[23]\b", re.IGNORECASE)


def pytest_terminal_summary(terminalreporter, exitstatus: int) -> None:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    failed = terminalreporter.stats.get("failed") or terminalreporter.stats.get("error")
    if not inventory or not failed or not Path(inventory).is_file():
        return
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "scenario")
    logs = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", REPO)) / ".cache/test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    write = terminalreporter.write_line
    terminalreporter.section(f"logs of {scenario}'s hosts (tests failed)")
    for name in _inventory_hosts(Path(inventory)):
        try:
            proc = subprocess.run(["podman", "exec", name, "journalctl", "--no-pager", "-o", "short-iso",
                                   "-u", "prefect-*"], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            write(f"{name}: no journal ({exc})")
            continue
        if proc.returncode != 0:
            write(f"{name}: no journal (journalctl: {proc.stderr.strip()[:200]})")
            continue
        path = logs / f"journal-{scenario}-{name}.log"
        path.write_text(proc.stdout + proc.stderr)
        errors = [line for line in proc.stdout.splitlines() if JOURNAL_DIGEST.search(line)]
        write(f"{name}: {len(errors)} error lines in {path.relative_to(path.parents[2])}")
        for line in errors[-12:]:
            write(f"  {line[:300]}")
    server_log = prefect_api.SERVER_STATE / "server.log"
    if server_log.is_file():
        text = server_log.read_text(errors="replace")
        (logs / f"server-{scenario}.log").write_text(text)
        write(f"test server: {text.count('database is locked')} 'database is locked' errors, "
              f"{text.count('| ERROR ')} ERROR lines (.cache/test-logs/server-{scenario}.log)")
