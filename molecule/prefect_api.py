"""A small client of the test Prefect server for the Molecule scenarios' tests.

Importable from every scenario's tests (molecule/ is on sys.path through
molecule/conftest.py). The server is scripts/lib/test-server's, with its state in
$PREFECT_FLEET_SERVER_STATE (each scenario's own, molecule/base.yml); its URL is in url there.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts/lib"))
# FINAL_STATES is re-exported for the scenarios' tests.
from prefect_rest import FINAL_STATES, PrefectRest  # noqa: E402,F401

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[1]))


# The scenario's test server (molecule/base.yml); .cache/test-server outside Molecule.
SERVER_STATE = Path(os.environ.get("PREFECT_FLEET_SERVER_STATE") or REPO / ".cache/test-server")


def api_url() -> str:
    return (SERVER_STATE / "url").read_text().strip()


def api(path: str, body: dict | list | None = None, method: str | None = None, idempotent: bool = True):
    """Call the test server's API (prefect_rest.PrefectRest). Like the kit's Prefect clients
    it retries 429/503 (the SQLite server's "database busy" under load), here after 2, 4,
    ... 128 s, about 4 minutes in all (the tests' runs are few), each with up
    to 20% jitter, and, for calls that may safely be repeated (reads, filters, upserts, run
    creation with an idempotency key: idempotent=True), a timeout too. Each retry is said
    on stderr (pytest shows it with a failure)."""
    client = PrefectRest(api_url(), attempts=8, base=2, jitter=0.2, say_retries=True)
    return client(path, body, method=method, idempotent=idempotent)


def wait_for_state(run_id: str, states: tuple = FINAL_STATES, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = api(f"/flow_runs/{run_id}")["state"]["type"]
        if state in states:
            return state
        assert time.monotonic() < deadline, f"run {run_id} still {state} after {timeout}s"
        time.sleep(1)


def run_logs(run_id: str) -> list[str]:
    return [e["message"] for e in api("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})]


def wait_for_log(run_id: str, needle: str, timeout: float = 30) -> list[str]:
    """The run's log messages once one contains needle (logs are shipped in batches and
    may land shortly after the final state), or whatever is there at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        messages = run_logs(run_id)
        if any(needle in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(1)


def runs(ids: list[str]) -> dict[str, dict]:
    found = api("/flow_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": len(ids)})
    return {r["id"]: r for r in found}


def wait_final(ids: list[str], timeout: float = 420) -> dict[str, dict]:
    """Each run once all of them are in a final state."""
    deadline = time.monotonic() + timeout
    while True:
        found = runs(ids)
        if len(found) == len(ids) and all(r["state"]["type"] in FINAL_STATES for r in found.values()):
            return found
        assert time.monotonic() < deadline, sorted(r["state"]["type"] for r in found.values())
        time.sleep(2)


def wait_running(ids: list[str], at_least: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while sum(r["state"]["type"] == "RUNNING" for r in runs(ids).values()) < at_least:
        assert time.monotonic() < deadline, f"fewer than {at_least} of the runs started"
        time.sleep(1)


def not_completed(found: dict[str, dict]) -> dict[str, str]:
    return {i: f"{r['state']['type']}: {r['state'].get('message')}" for i, r in found.items()
            if r["state"]["type"] != "COMPLETED"}
