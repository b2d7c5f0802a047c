"""A small stdlib client of a Prefect 3 server's REST API, for the kit's tests and benchmarks.

Like Prefect's own client it retries 429 and 503 (the SQLite-backed test server answers
503 when its database is busy); calls that may safely be repeated (reads, filters,
upserts, run creation with an idempotency key) are retried after a timeout too. Retry n
(from 0) waits base * 2**n seconds, plus up to `jitter` of that so that concurrent
callers do not collide again; `say_retries` prints each retry on stderr.
"""

from __future__ import annotations

import json
import random
import sys
import time
import urllib.error
import urllib.request

FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


class PrefectRest:
    def __init__(self, url: str, timeout: float = 90, attempts: int = 7, base: float = 0.5, jitter: float = 0.0,
                 say_retries: bool = False) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.base = base
        self.jitter = jitter
        self.say_retries = say_retries

    def __call__(self, path: str, body: object = None, method: str | None = None, idempotent: bool = True):
        data = json.dumps(body).encode() if body is not None else None
        verb = method or ("POST" if data else "GET")
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            req = urllib.request.Request(self.url + path, data=data, method=verb,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 503) or last:
                    raise
                reason = f"HTTP {exc.code}"
            except TimeoutError:
                if not idempotent or last:
                    raise
                reason = "timed out"
            wait = self.base * 2**attempt * (1 + random.uniform(0, self.jitter))
            if self.say_retries:
                print(f"prefect_rest: {verb} {path}: {reason}; retry {attempt + 1} of {self.attempts - 1} "
                      f"in {wait:.1f} s", file=sys.stderr)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def run(self, run_id: str) -> dict:
        return self(f"/flow_runs/{run_id}")

    def state(self, run_id: str) -> str:
        return self.run(run_id)["state"]["type"]

    def trigger(self, deployment_id: str, parameters: dict | None = None, key: str | None = None) -> str:
        body: dict = {"parameters": parameters or {}}
        if key:
            body["idempotency_key"] = key
        return self(f"/deployments/{deployment_id}/create_flow_run", body, idempotent=key is not None)["id"]

    def wait(self, run_ids: list[str], states: tuple = FINAL_STATES, timeout: float = 180) -> dict[str, dict]:
        """Wait until every run is in one of states; return the runs by id, or raise
        AssertionError naming the ones that are not."""
        deadline = time.monotonic() + timeout
        while True:
            runs = {run_id: self.run(run_id) for run_id in run_ids}
            if all(run["state"]["type"] in states for run in runs.values()):
                return runs
            if time.monotonic() > deadline:
                late = {run_id: run["state"]["type"] for run_id, run in runs.items() if run["state"]["type"] not in states}
                raise AssertionError(f"runs not in {states} after {timeout}s: {late}")
            time.sleep(0.5)

    def logs(self, run_id: str, limit: int = 200) -> list[str]:
        rows = self("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": limit})
        return [row["message"] for row in rows]

    def wait_for_log(self, run_id: str, needle: str, timeout: float = 30) -> list[str]:
        """The run's logs once one contains needle (logs can reach the API just after the
        run's final state: the flow-run process flushes them as it exits)."""
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs(run_id)
            if any(needle in line for line in logs):
                return logs
            if time.monotonic() > deadline:
                raise AssertionError(f"no log line with {needle!r} for run {run_id} after {timeout}s: {logs[-10:]}")
            time.sleep(0.5)
