"""A small client of the test Prefect server for the Molecule scenarios' tests.

Importable from every scenario's tests (molecule/ is on sys.path through
molecule/conftest.py). The server is scripts/lib/test-server's; its URL is in
.cache/test-server/url.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[1]))
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def api_url() -> str:
    return (REPO / ".cache/test-server/url").read_text().strip()


def api(path: str, body: dict | list | None = None, method: str | None = None, idempotent: bool = True):
    """Call the API; like the kit's Prefect clients (prefect_worker_client_max_retries: 7),
    retry 429/503 (the SQLite server's "database busy" under load) after 2, 4, ... 128 s
    (about 4 minutes in all), each with up to 20% jitter so
    that concurrent callers do not collide again, and, for calls that may safely be
    repeated (reads, filters, upserts, run creation with an idempotency key:
    idempotent=True), a timeout too. Each retry is said on stderr (pytest shows it with
    a failure)."""
    data = json.dumps(body).encode() if body is not None else None
    verb = method or ("POST" if data else "GET")
    for attempt in range(1, 9):
        req = urllib.request.Request(api_url() + path, data=data, method=verb,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=90) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 503) or attempt == 8:
                raise
            reason = f"HTTP {exc.code}"
        except TimeoutError:
            if not idempotent or attempt == 8:
                raise
            reason = "timed out"
        wait = 2**attempt * (1 + random.uniform(0, 0.2))
        print(f"prefect_api: {verb} {path}: {reason}; retry {attempt} of 7 in {wait:.1f} s", file=sys.stderr)
        time.sleep(wait)
    raise AssertionError("unreachable")


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
