"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts/lib"))

import prefect_versions  # noqa: E402
import reliability  # noqa: E402


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class PrefectServer:
    url: str  # the API URL, ending in /api
    home: Path
    log: Path

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())


@dataclass(frozen=True)
class PrefectInstall:
    """One supported Prefect release on the control node: .venv for the default, the venv
    scripts/bootstrap made for each other one (scripts/lib/prefect_versions.py)."""
    version: str
    bin: Path

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def prefect(self) -> Path:
        return self.bin / "prefect"

    def run_python(self, code: str, **kwargs) -> str:
        """Run CODE with this release's Python (isolated from this process's imports); its stdout."""
        result = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, timeout=300,
                                **kwargs)
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout


DEFAULT_PREFECT = PrefectInstall(prefect_versions.default(), prefect_versions.bin_dir(prefect_versions.default()))


@pytest.fixture(scope="session", params=prefect_versions.supported(), ids=lambda v: f"prefect-{v}")
def prefect_install(request: pytest.FixtureRequest) -> PrefectInstall:
    """Each supported Prefect release in turn: a test that takes this fixture checks its fact
    on every version the kit supports."""
    install = PrefectInstall(request.param, prefect_versions.bin_dir(request.param))
    installed = install.run_python("import importlib.metadata as m; print(m.version('prefect'))").strip()
    assert installed == install.version, f"{install.bin}: prefect {installed}; run scripts/bootstrap"
    return install


def start_prefect_server(home: Path, host: str = "127.0.0.1", timeout: float = 90.0,
                         install: PrefectInstall = DEFAULT_PREFECT) -> tuple[subprocess.Popen, PrefectServer]:
    """Start a pinned Prefect server (SQLite in a temp PREFECT_HOME) and wait for /api/health.
    Its database is a copy of one migrated once per release, as the test servers' (--fresh)."""
    shutil.copyfile(prefect_versions.migrated_database(install.version), home / "prefect.db")
    port = free_port(host)
    log = home / "server.log"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(install.prefect), "server", "start", "--host", host, "--port", str(port), "--no-services"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )
    server = PrefectServer(url=f"http://{host}:{port}/api", home=home, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if server.get("/health") is True:
                return proc, server
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"prefect server did not answer /api/health in {timeout}s:\n{log.read_text()[-4000:]}")


def serve(home: Path, install: PrefectInstall) -> Iterator[PrefectServer]:
    proc, server = start_prefect_server(home, install=install)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of the default Prefect release."""
    yield from serve(tmp_path_factory.mktemp("prefect-home"), DEFAULT_PREFECT)


@pytest.fixture(scope="session")
def versioned_prefect_server(prefect_install: PrefectInstall, request: pytest.FixtureRequest,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of each supported release in turn (with prefect_install): for Prefect facts.
    The default release's is the prefect_server of the other tests."""
    if prefect_install == DEFAULT_PREFECT:
        yield request.getfixturevalue("prefect_server")
    else:
        yield from serve(tmp_path_factory.mktemp(f"prefect-home-{prefect_install.version}"), prefect_install)


# Fault, bad-input and security cases (@pytest.mark.reliability) are recorded with their
# results for docs/reliability.md (scripts/lib/reliability.py, scripts/reliability).
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    reliability.record(item, outcome.get_result())
