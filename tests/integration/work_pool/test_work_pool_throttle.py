"""Migration phases with a real process worker: throttle holds a pool to one flow run at a
time, open lets the runs go in parallel; flow runs start through the kit's `command`
default, `<venv>/bin/python -m prefect.engine`."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
VENV_BIN = Path(__file__).resolve().parents[3] / ".venv" / "bin"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from processes import stop_group  # noqa: E402

FLOW = '''\
import time

from prefect import flow


@flow
def sleepy(seconds: float = 3.0) -> float:
    time.sleep(seconds)
    return seconds
'''


@dataclass
class Sample:
    t: float
    states: collections.Counter

    @property
    def running(self) -> int:
        return self.states["RUNNING"]

    @property
    def active(self) -> int:  # what holds a pool slot
        return self.states["RUNNING"] + self.states["PENDING"]


class Sampler(threading.Thread):
    """Counts the deployment's flow runs by state every 0.2 s (one query, so one consistent view)."""

    def __init__(self, api, deployment_id: str):
        super().__init__(daemon=True)
        self.api, self.deployment_id = api, deployment_id
        self.samples: list[Sample] = []
        self.done = threading.Event()

    def run(self) -> None:
        body = {"deployments": {"id": {"any_": [self.deployment_id]}}}
        while not self.done.is_set():
            runs = self.api.call("POST", "/flow_runs/filter", body)
            self.samples.append(Sample(time.monotonic(), collections.Counter(r["state_type"] for r in runs)))
            time.sleep(0.2)

    def wait_for(self, what: str, condition, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.samples[-1] if self.samples else None
            if last and condition(last):
                return
            if last and last.states["CRASHED"] + last.states["FAILED"]:
                raise AssertionError("a flow run failed: %s" % dict(last.states))
            time.sleep(0.2)
        raise AssertionError("no %s after %ss: %s" % (what, timeout, self.samples[-1:]))


def test_throttle_phase_runs_one_at_a_time_then_open_runs_in_parallel(prefect_server, api, playbook, tmp_path, unique):
    pool = unique("migrate")
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "flow.py").write_text(FLOW)
    # The "prebuilt venv": its bin/python records each call, then runs the real interpreter.
    calls = tmp_path / "engine-calls.log"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\necho "$PREFECT__FLOW_RUN_ID $PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES $*" >> %s\n'
                      'exec %s "$@"\n' % (calls, sys.executable))
    python.chmod(0o755)

    variables = {
        "prefect_work_pool_api_url": prefect_server.url,
        "prefect_work_pool_venv": str(venv),
        "prefect_work_pool_phase": "throttle",
        "prefect_work_pool_pools": [{"name": pool, "concurrency_limit": 5, "throttle_limit": 1}],
    }
    throttle = playbook(variables)
    assert throttle.rc == 0, throttle.stdout[-3000:]
    assert api.pool(pool)["concurrency_limit"] == 1

    home = tmp_path / "worker-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=prefect_server.url, PREFECT_HOME=str(home), PREFECT_WORKER_QUERY_SECONDS="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(VENV_BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True,
    )
    sampler = None
    try:
        flow_id = api.call("POST", "/flows/", {"name": "sleepy"})["id"]
        deployment = api.call("POST", "/deployments/", {
            "name": pool, "flow_id": flow_id, "work_pool_name": pool, "entrypoint": "flow.py:sleepy",
            "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(flows)}}],
        })["id"]
        runs = [api.call("POST", "/deployments/%s/create_flow_run" % deployment, {})["id"] for _ in range(5)]
        sampler = Sampler(api, deployment)
        sampler.start()

        # One run done and the next one holding the single slot: the hand-over happened
        # under the throttle; the other runs are still waiting.
        sampler.wait_for("hand-over", lambda s: s.states["COMPLETED"] >= 1 and s.active == 1, timeout=60)
        opening = time.monotonic()
        opened = playbook(dict(variables, prefect_work_pool_phase="open"))
        open_at = time.monotonic()
        assert opened.rc == 0, opened.stdout[-3000:]
        assert api.pool(pool)["concurrency_limit"] == 5
        sampler.wait_for("5 completed runs", lambda s: s.states["COMPLETED"] == 5, timeout=60)
    finally:
        if sampler:
            sampler.done.set()
        stop_group(worker, timeout=20)
        log.close()

    worker_log = (tmp_path / "worker.log").read_text()[-3000:]
    throttled = [s for s in sampler.samples if s.t < opening]
    parallel = [s for s in sampler.samples if s.t > open_at]
    assert max(s.running for s in throttled) == 1, worker_log
    assert max(s.active for s in throttled) == 1, [s.states for s in throttled]
    assert max(s.running for s in parallel) >= 2, "\n".join("%.1f %s" % (s.t - open_at, dict(s.states)) for s in parallel)
    assert sampler.samples[-1].states == {"COMPLETED": 5}

    # Every run started through the pool's command default with the kit's env.
    lines = calls.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(runs), lines
    assert all(line.split()[1:] == ["false", "-m", "prefect.engine"] for line in lines), lines
