"""prefect-worker-run, the drain switch of the kit's workers, on each supported Prefect.

A real server of that release (the `versioned_prefect_server` fixture) and a real process worker started as
prefect-worker@.service starts it: `python -I prefect-worker-run --drain-file FILE --
worker start ...`. While FILE exists the worker takes no new runs but stays ONLINE and
healthy, and a run it already has goes on to COMPLETED; when FILE goes, it takes runs again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "lib"))
sys.path.insert(0, str(REPO / "tests"))
from conftest import free_port  # noqa: E402
from prefect_rest import PrefectRest  # noqa: E402
from processes import stop_group  # noqa: E402

pytestmark = pytest.mark.integration

RUN = REPO / "roles" / "prefect_worker" / "files" / "prefect-worker-run"
FLOWS = Path(__file__).resolve().parent / "launcher_flows"


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.3)
    return value


class Drained:
    def __init__(self, api: PrefectRest, pool: str, drain: Path, log: Path, port: int, deployments: dict,
                 pid: int) -> None:
        self.api, self.pool, self.drain, self.log, self.port, self.deployments = api, pool, drain, log, port, deployments
        self.pid = pid

    def trigger(self, flow: str, **parameters) -> str:
        return self.api.trigger(self.deployments[flow], parameters)

    def says(self, text: str) -> bool:
        return text in self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as resp:
            return resp.status == 200

    def takes_no_run(self, mark: str) -> str:
        """Trigger a run and check that it stays SCHEDULED through six polls while the
        worker stays ONLINE and healthy; the run's id."""
        run_id = self.trigger("hello", mark=mark)
        time.sleep(6)  # six polls
        assert self.api.state(run_id) == "SCHEDULED", self.log.read_text()[-3000:]
        assert self.status() == "ONLINE"
        assert self.healthy()
        return run_id

    def status(self) -> str:
        workers = self.api(f"/work_pools/{self.pool}/workers/filter", {})
        return next((w["status"] for w in workers if w["name"] == "drain-test"), "absent")


@pytest.fixture(scope="module")
def worker(prefect_install, versioned_prefect_server, tmp_path_factory) -> Iterator[Drained]:
    prefect_server = versioned_prefect_server
    tmp = tmp_path_factory.mktemp("drain")
    api = PrefectRest(prefect_server.url, timeout=30)
    pool = f"drain-{uuid.uuid4().hex[:6]}"
    api("/work_pools/", {"name": pool, "type": "process"})
    drain, log, port = tmp / "drain", tmp / "worker.log", free_port()
    drain.write_text("drained by the test\n")
    deployments = {}
    for name in ("hello", "sleeper"):
        flow_id = api("/flows/", {"name": f"launched-{name}"})["id"]
        deployments[name] = api("/deployments/", {
            "name": f"drain-{name}", "flow_id": flow_id, "work_pool_name": pool, "entrypoint": f"launched.py:{name}",
            "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(FLOWS)}}],
            "job_variables": {"command": f"{prefect_install.python} -m prefect.engine"},
        })["id"]
    env = {**os.environ, "PREFECT_API_URL": prefect_server.url, "PREFECT_HOME": str(tmp),
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_WEBSERVER_PORT": str(port),
           "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}
    with log.open("w") as out:
        proc = subprocess.Popen([str(prefect_install.python), "-I", str(RUN), "--drain-file", str(drain), "--", "worker", "start",
                                 "--pool", pool, "--name", "drain-test", "--type", "process", "--limit", "4",
                                 "--with-healthcheck", "--no-create-pool-if-not-found"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield Drained(api, pool, drain, log, port, deployments, proc.pid)
    finally:
        stop_group(proc)


def test_a_drained_worker_takes_no_run_but_stays_online_and_healthy(worker: Drained):
    wait_until(lambda: worker.says("prefect-worker-run: draining ("), 60, "the worker reports the drain")
    run_id = worker.takes_no_run("drained")

    worker.drain.unlink()
    state = worker.api.wait([run_id], timeout=120)[run_id]["state"]["type"]
    assert state == "COMPLETED", worker.log.read_text()[-3000:]
    assert worker.says("prefect-worker-run: drain lifted: taking flow runs again")


def test_a_run_in_flight_completes_under_a_drain(worker: Drained):
    in_flight = worker.trigger("sleeper", seconds=8)
    worker.api.wait([in_flight], states=("RUNNING",), timeout=120)
    worker.drain.write_text("drained by the test\n")
    wait_until(lambda: worker.log.read_text().count("prefect-worker-run: draining (") == 2, 30, "drain seen again")
    new = worker.trigger("hello", mark="after-drain")
    assert worker.api.wait([in_flight], timeout=120)[in_flight]["state"]["type"] == "COMPLETED"
    assert worker.api.state(new) == "SCHEDULED"
    worker.drain.unlink()
    assert worker.api.wait([new], timeout=120)[new]["state"]["type"] == "COMPLETED"


def test_sigusr1_stops_taking_runs_for_good(worker: Drained):
    """What prefect-worker-stop sends a stopping worker before it ends its runs: the slots
    they free must not go to new runs that the stop would cut short."""
    os.kill(worker.pid, signal.SIGUSR1)
    wait_until(lambda: worker.says("prefect-worker-run: stopping: taking no new flow runs"), 30, "the stop is logged")
    worker.takes_no_run("stopping")


def test_a_prefect_without_the_polling_method_refuses_to_start(prefect_install, tmp_path):
    """If a Prefect release renames the method the switch wraps, the worker does not start
    (exit 78) rather than run with a drain switch that does nothing."""
    shim = tmp_path / "sitecustomize_shim"
    shim.mkdir()
    (shim / "prefect_worker_run_probe.py").write_text(
        "import runpy, sys\n"
        "from prefect.workers.base import BaseWorker\n"
        "del BaseWorker.get_and_submit_flow_runs\n"
        f"sys.argv = [{str(RUN)!r}, '--drain-file', '/nonexistent', '--', 'version']\n"
        f"runpy.run_path({str(RUN)!r}, run_name='__main__')\n")
    result = subprocess.run([str(prefect_install.python), str(shim / "prefect_worker_run_probe.py")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 78, result.stderr
    assert "refusing to start" in result.stderr


def test_a_prefect_release_outside_the_supported_lines_refuses_to_start(prefect_install, tmp_path):
    """A Prefect the wrapper is not proven on (here the installed one, calling itself 3.10.0):
    one line that names the version, and exit 78, which prefect-worker@.service does not
    restart (RestartPreventExitStatus=78)."""
    probe = tmp_path / "prefect_worker_run_probe.py"
    probe.write_text(
        "import runpy, sys\n"
        "import prefect\n"
        "prefect.__version__ = '3.10.0'\n"
        f"sys.argv = [{str(RUN)!r}, '--drain-file', '/nonexistent', '--', 'version']\n"
        f"runpy.run_path({str(RUN)!r}, run_name='__main__')\n")
    result = subprocess.run([str(prefect_install.python), str(probe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 78, result.stderr
    assert result.stderr.strip().splitlines() == [
        "prefect-worker-run: refusing to start: Prefect 3.10.0 is not supported by the drain wrapper "
        "(it supports Prefect 3.8.x, 3.9.x)"]
