"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import json
import os
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


def start_prefect_server(home: Path, host: str = "127.0.0.1", timeout: float = 90.0) -> tuple[subprocess.Popen, PrefectServer]:
    """Start the pinned Prefect server (SQLite in a temp PREFECT_HOME) and wait for /api/health."""
    port = free_port(host)
    log = home / "server.log"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    prefect = Path(sys.executable).with_name("prefect")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", host, "--port", str(port), "--no-services"],
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


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    home = tmp_path_factory.mktemp("prefect-home")
    proc, server = start_prefect_server(home)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# Fault, bad-input and security cases (@pytest.mark.reliability) are recorded with their
# results for docs/reliability.md (scripts/lib/reliability.py, scripts/reliability).
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    reliability.record(item, outcome.get_result())
