"""scripts/lib/test-server: the Molecule scenarios' server keeps its database across
restarts, and `start --fresh` begins on an empty one (each scenario starts with --fresh,
so that no scenario's verdict depends on the runs and events of the ones before it); the
server marks queued runs Late only after 10 minutes."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from prefect_rest import PrefectRest

from conftest import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def server(state: Path, *args: str) -> str:
    result = subprocess.run(["scripts/lib/test-server", *args, "--state", str(state)], capture_output=True,
                            text=True, cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def pools(url: str) -> set[str]:
    return {pool["name"] for pool in PrefectRest(url)("/work_pools/filter", {})}


def test_the_database_outlives_a_restart_and_start_fresh_empties_it(tmp_path):
    state = tmp_path / "server"
    start = ["start", "--bind", "loopback", "--port", str(free_port())]
    name = f"kept-{uuid.uuid4().hex[:8]}"
    try:
        url = server(state, *start)
        PrefectRest(url)("/work_pools/", {"name": name, "type": "process"}, idempotent=False)
        server(state, "stop")
        assert name in pools(server(state, *start))
        server(state, "stop")
        url = server(state, *start, "--fresh")
        assert name not in pools(url)
        assert (state / "home/prefect.db").exists()
        # Runs queued by a burst are marked Late only after 10 minutes (see test-server).
        assert PrefectRest(url)("/admin/settings")["server"]["services"]["late_runs"]["after_seconds"] == "PT10M"
    finally:
        server(state, "stop")
