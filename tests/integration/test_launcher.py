"""The warm launcher (prefect-launcher + prefect-launch), end to end on this machine.

For each supported Prefect release (3.9.1 and 3.8.8): a real Prefect server of that release
(the `versioned_prefect_server` fixture), a real `prefect worker start --type process`
polling every second, and the launcher serving an environment directory laid out as
prefect_venv lays it out (<env>/<generation>/, <env>/current -> <generation>). The two
generations here are small venvs of this machine's Python that see that release's
site-packages through a .pth file, so switching `current` is a real generation change. The deployments' `command` is the client, exactly as the kit's pools
set it: `prefect-launch --socket SOCKET <env>/current/bin/python -m prefect.engine`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "lib"))
sys.path.insert(0, str(REPO / "tests"))
from prefect_rest import PrefectRest  # noqa: E402
from processes import stop_group  # noqa: E402
from role_defaults import role_default  # noqa: E402

pytestmark = pytest.mark.integration

FILES = REPO / "roles" / "prefect_worker" / "files"
LAUNCHER = FILES / "prefect-launcher"
CLIENT = FILES / "prefect-launch"
FLOWS = Path(__file__).resolve().parent / "launcher_flows"
HELLO = re.compile(r"launched-hello mark=(\S*) pid=(\d+) parent=(\d+) grandparent=(\d+) cwd=(\S+) python=(\S+) "
                   r"env=(\S*) prefix=(\S+) path0=(\S+)")


def make_generation(path: Path, purelib: str) -> Path:
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(path)], check=True)
    site = next(path.glob("lib/python3*/site-packages"))
    (site / "kit-test.pth").write_text(purelib + "\n")
    return path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Launcher:
    """prefect-launcher for one environment, started as its unit starts it."""

    def __init__(self, env_dir: Path, socket: Path, log: Path, home: Path) -> None:
        self.env_dir, self.socket, self.log, self.home = env_dir, socket, log, home
        self.proc: subprocess.Popen | None = None

    def start(self, *extra: str, wait: bool = True) -> subprocess.Popen:
        self.log.write_text("")
        env = {"PATH": "/usr/bin:/bin", "PREFECT_HOME": str(self.home), "LANG": "C.UTF-8"}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [str(self.env_dir / "current/bin/python"), "-I", str(LAUNCHER), "--env-dir", str(self.env_dir),
                 "--socket", str(self.socket), *extra], stdout=out, stderr=subprocess.STDOUT, env=env)
        if wait:
            wait_until(lambda: "ready on" in self.log.read_text() or self.proc.poll() is not None, 60,
                       "launcher ready")
            assert self.proc.poll() is None, self.log.read_text()
        return self.proc

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class Bench:
    """The server, the worker, the launcher and one deployment per test flow."""

    def __init__(self, api: PrefectRest, launcher: Launcher, worker: subprocess.Popen, worker_log: Path,
                 deployments: dict[str, str], tmp: Path) -> None:
        self.api, self.launcher, self.worker, self.worker_log = api, launcher, worker, worker_log
        self.deployments, self.tmp = deployments, tmp

    def trigger(self, flow: str, **parameters) -> str:
        return self.api.trigger(self.deployments[flow], parameters)

    def hello(self, run_id: str) -> re.Match:
        logs = self.api.wait_for_log(run_id, "launched-hello mark=")
        match = next(m for m in map(HELLO.search, logs) if m)
        return match

    def worker_tail(self) -> str:
        return self.worker_log.read_text(errors="replace")[-5000:]

    def clients(self) -> list[int]:
        """The worker's flow-run processes that are prefect-launch clients."""
        found = []
        for pid in children(self.worker.pid):
            try:
                if str(CLIENT).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                pass
        return found


@pytest.fixture(scope="module")
def bench(prefect_install, versioned_prefect_server, tmp_path_factory) -> Iterator[Bench]:
    prefect_server = versioned_prefect_server
    tmp = tmp_path_factory.mktemp("launcher")
    env_dir = tmp / "envs" / "flows"
    env_dir.mkdir(parents=True)
    purelib = prefect_install.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    for name in ("g1", "g2"):
        make_generation(env_dir / name, purelib)
    (env_dir / "current").symlink_to("g1")
    (tmp / "home").mkdir()
    launcher = Launcher(env_dir, tmp / "launchers" / "flows.sock", tmp / "launcher.log", tmp / "home")
    launcher.start()

    api = PrefectRest(prefect_server.url, timeout=30)
    pool = f"launcher-{uuid.uuid4().hex[:6]}"
    worker_log = tmp / "worker.log"
    # The worker's settings as prefect_worker's env file gives them, retries included: a run is
    # handed the worker's environment, and in a 32-run burst on a SQLite server a run's call can
    # meet a busy database for longer than Prefect's default 5 retries wait (CRASHED, 503).
    env = {**os.environ, "PREFECT_API_URL": prefect_server.url, "PREFECT_HOME": str(tmp / "home"),
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
           "PREFECT_CLIENT_MAX_RETRIES": role_default("prefect_worker_client_max_retries"),
           "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false", "LAUNCHER_TEST_MARK": "from-the-worker"}
    with worker_log.open("w") as out:
        worker = subprocess.Popen([str(prefect_install.prefect), "worker", "start", "--pool", pool, "--type", "process",
                                   "--limit", "40"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    try:
        wait_until(lambda: api("/work_pools/filter", {"work_pools": {"name": {"any_": [pool]}}}), 60, "pool created")
        command = f"{CLIENT} --socket {launcher.socket} {env_dir}/current/bin/python -m prefect.engine"
        deployments = {}
        for name in ("hello", "sleeper", "fails", "exits"):
            flow_id = api("/flows/", {"name": f"launched-{name}"})["id"]
            deployments[name] = api("/deployments/", {
                "name": f"launcher-{name}", "flow_id": flow_id, "work_pool_name": pool,
                "entrypoint": f"launched.py:{name}",
                "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(FLOWS)}}],
                "job_variables": {"command": command},
            })["id"]
        yield Bench(api, launcher, worker, worker_log, deployments, tmp)
    finally:
        stop_group(worker)
        launcher.stop()


@pytest.fixture
def running(bench: Bench) -> Bench:
    """The launcher is up on generation g1 when the test starts."""
    current = bench.launcher.env_dir / "current"
    if os.readlink(current) != "g1":
        tmp_link = current.with_name(".current-tmp")
        tmp_link.symlink_to("g1")
        tmp_link.replace(current)
        bench.launcher.stop()
    if bench.launcher.proc is None or bench.launcher.proc.poll() is not None:
        bench.launcher.start()
    return bench


def test_a_run_through_the_launcher_completes_with_its_logs_in_the_api(running: Bench):
    mark = uuid.uuid4().hex
    run_id = running.trigger("hello", mark=mark)
    state = running.api.wait([run_id], timeout=120)[run_id]["state"]
    assert state["type"] == "COMPLETED", (state, running.worker_tail())
    hello = running.hello(run_id)
    assert hello.group(1) == mark
    # Forked by the launcher: the run's parent is its monitor, whose parent is the launcher.
    assert int(hello.group(4)) == running.launcher.pid, (hello.group(0), running.launcher.pid)
    assert hello.group(5) == str(FLOWS)  # the pull step's working directory
    assert hello.group(6) == f"{running.launcher.env_dir}/current/bin/python"
    assert hello.group(7) == "from-the-worker"  # the worker's environment, not the launcher's
    assert hello.group(8) == str(running.launcher.env_dir / "g1")


def test_cancelling_a_run_from_the_api_stops_it(running: Bench):
    pidfile = running.tmp / f"cancel-{uuid.uuid4().hex}.pid"
    run_id = running.trigger("sleeper", seconds=300, pidfile=str(pidfile))
    running.api.wait([run_id], states=("RUNNING",), timeout=120)
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), 30, "sleeper wrote its pid"))
    running.api(f"/flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLING"}, "force": True})
    final = running.api.wait([run_id], timeout=90)[run_id]["state"]["type"]
    assert final == "CANCELLED", running.worker_tail()
    wait_until(lambda: not pid_alive(pid), 30, f"cancelled run's process {pid} gone")


def test_a_failing_flow_is_reported_failed(running: Bench):
    run_id = running.trigger("fails")
    assert running.api.wait([run_id], timeout=120)[run_id]["state"]["type"] == "FAILED"
    running.api.wait_for_log(run_id, "launched-fails raised on purpose")


def test_a_flow_that_exits_hard_is_reported_crashed_with_its_exit_code(running: Bench):
    run_id = running.trigger("exits", code=3)
    state = running.api.wait([run_id], timeout=120)[run_id]["state"]
    assert state["type"] == "CRASHED", state
    assert "3" in (state.get("message") or ""), state  # the exit code, relayed by the client


def test_killing_the_client_kills_the_run(running: Bench):
    pidfile = running.tmp / f"kill-{uuid.uuid4().hex}.pid"
    run_id = running.trigger("sleeper", seconds=300, pidfile=str(pidfile))
    running.api.wait([run_id], states=("RUNNING",), timeout=120)
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text(), 30, "sleeper wrote its pid"))
    clients = wait_until(running.clients, 10, "the run's prefect-launch client")
    assert len(clients) == 1, clients
    assert pid not in clients  # the run is the launcher's child, not the worker's
    os.kill(clients[0], signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 15, f"run process {pid} killed with its client")
    assert running.api.wait([run_id], timeout=90)[run_id]["state"]["type"] == "CRASHED"


def test_32_concurrent_runs_through_one_launcher_all_complete(running: Bench):
    marks = [uuid.uuid4().hex for _ in range(32)]
    run_ids = [running.trigger("hello", mark=mark) for mark in marks]
    runs = running.api.wait(run_ids, timeout=400)
    states = [run["state"]["type"] for run in runs.values()]
    assert states.count("COMPLETED") == 32, (states, running.worker_tail())
    for run_id, mark in zip(run_ids, marks):
        hello = running.hello(run_id)
        assert hello.group(1) == mark
        assert int(hello.group(4)) == running.launcher.pid


def test_launcher_memory_stays_flat_across_500_launches(running: Bench):
    """500 launches through the client, each a full request: fds, env and cwd handed over,
    monitor and run forked, prefect.engine run to its exit (here the engine's own exit 1 for
    an argument that is not a flow run id, so no server load). The launcher's RSS after 500
    must stay within 2 MiB of what it was after a first 50."""
    command = [str(CLIENT), "--socket", str(running.launcher.socket),
               f"{running.launcher.env_dir}/current/bin/python", "-m", "prefect.engine", "not-a-flow-run-id"]

    def launch(count: int) -> None:
        procs: list[subprocess.Popen] = []
        for _ in range(count):
            procs.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            if len(procs) == 8:
                check(procs.pop(0))
        for proc in procs:
            check(proc)

    def check(proc: subprocess.Popen) -> None:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert b"Invalid flow run id" in err and b"prefect-launch:" not in err, err  # the engine's, not a fallback

    launch(50)
    before = rss_kb(running.launcher.pid)
    launch(500)
    after = rss_kb(running.launcher.pid)
    assert after - before < 2048, f"launcher RSS grew from {before} KiB to {after} KiB over 500 launches"


def test_a_new_generation_is_picked_up_while_runs_in_flight_finish_on_the_old(running: Bench):
    pidfile = running.tmp / f"gen-{uuid.uuid4().hex}.pid"
    in_flight = running.trigger("sleeper", seconds=8, pidfile=str(pidfile))
    running.api.wait([in_flight], states=("RUNNING",), timeout=120)
    wait_until(pidfile.exists, 30, "sleeper started")
    launcher_pid = running.launcher.pid
    current = running.launcher.env_dir / "current"
    tmp_link = current.with_name(".current-tmp")
    tmp_link.symlink_to("g2")
    tmp_link.replace(current)  # as prefect-venv switches generations
    wait_until(lambda: re.search(r"ready on .*/g2 ", running.launcher.log.read_text()), 60, "launcher on g2")
    assert running.launcher.pid == launcher_pid and running.launcher.proc.poll() is None  # re-executed in place
    run_id = running.trigger("hello", mark="after-switch")
    assert running.api.wait([run_id], timeout=120)[run_id]["state"]["type"] == "COMPLETED"
    hello = running.hello(run_id)
    assert hello.group(8) == str(running.launcher.env_dir / "g2")
    assert int(hello.group(4)) == launcher_pid
    assert running.api.wait([in_flight], timeout=60)[in_flight]["state"]["type"] == "COMPLETED"


def test_with_the_launcher_down_runs_fall_back_and_complete(running: Bench):
    run_id = running.trigger("hello", mark="forked")
    assert running.api.wait([run_id], timeout=120)[run_id]["state"]["type"] == "COMPLETED"
    forked = running.hello(run_id)
    assert int(forked.group(4)) == running.launcher.pid
    running.launcher.stop()
    assert not running.launcher.socket.exists()  # a stopped launcher takes its socket away
    run_id = running.trigger("hello", mark="no-launcher")
    assert running.api.wait([run_id], timeout=120)[run_id]["state"]["type"] == "COMPLETED", running.worker_tail()
    hello = running.hello(run_id)
    assert int(hello.group(3)) == running.worker.pid  # the worker's own child: the client exec'd the engine
    # A forked run saw the sys.path a plain `python -m prefect.engine` sees: its start directory first.
    assert hello.group(9) == forked.group(9), (hello.group(0), forked.group(0))

    # A launcher killed outright leaves its socket behind, with nobody listening.
    running.launcher.start()
    running.launcher.proc.kill()
    running.launcher.proc.wait()
    assert running.launcher.socket.exists()
    run_id = running.trigger("hello", mark="stale-socket")
    assert running.api.wait([run_id], timeout=120)[run_id]["state"]["type"] == "COMPLETED", running.worker_tail()
    assert int(running.hello(run_id).group(3)) == running.worker.pid


def test_a_deployments_env_cannot_override_a_setting_the_worker_has(running: Bench):
    """Prefect fact the kit documents (prefect_work_pool README), on 3.8.8 and 3.9.1: with a
    `command`, the process worker puts the Prefect settings of its own environment over a
    deployment's `env` job variable. A run given another PREFECT_API_URL that way still reaches the
    worker's API and completes; a variable that is not a setting of the worker passes."""
    template = running.api(f"/deployments/{running.deployments['hello']}")
    flow_id = running.api("/flows/", {"name": "launched-hello"})["id"]
    deployment = running.api("/deployments/", {
        "name": f"launcher-env-{uuid.uuid4().hex[:6]}", "flow_id": flow_id,
        "work_pool_name": template["work_pool_name"], "entrypoint": "launched.py:hello",
        "pull_steps": template["pull_steps"],
        "job_variables": {**template["job_variables"], "env": {
            "PREFECT_API_URL": "http://127.0.0.1:9/api", "LAUNCHER_TEST_MARK": "from-the-deployment"}},
    })["id"]
    run_id = running.api.trigger(deployment, {"mark": "env"})
    state = running.api.wait([run_id], timeout=120)[run_id]["state"]
    assert state["type"] == "COMPLETED", (state, running.worker_tail())
    assert running.hello(run_id).group(7) == "from-the-deployment"


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate its own CA."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class TlsFront:
    """The test server behind TLS on 127.0.0.1: a certificate of its own, bytes piped both
    ways (HTTP and the events websocket alike)."""

    def __init__(self, upstream: str, directory: Path) -> None:
        self.upstream = upstream.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        self.cert, key = self_signed(directory, "front")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}/api"
        self.handshakes_refused = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        try:
            front = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_refused += 1
            conn.close()
            return
        back = socket.create_connection((self.upstream[0], int(self.upstream[1])))

        def pipe(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pipe, args=(back, front), daemon=True).start()
        pipe(front, back)

    def close(self) -> None:
        self.sock.close()


def test_runs_verify_a_tls_api_with_one_shared_context(running: Bench, tmp_path: Path):
    """The launcher gives a run's API clients one TLS context per CA file. Over https (the
    test server behind a TLS front), a launched run given the front's CA completes with its
    logs in the API and its clients share one verifying context; given another CA it cannot
    reach the API and does not run (verification as strict as without the launcher).

    The client is run here as a worker runs it, with the environment chosen by the test: a
    Prefect 3.8/3.9 process worker with a `command` puts its own settings over a deployment's
    `env` job variable, so a job variable cannot point a run at another API URL."""
    front = TlsFront(running.api.url, tmp_path)
    other_ca, _ = self_signed(tmp_path, "other")
    try:
        pool = f"launcher-tls-{uuid.uuid4().hex[:6]}"  # no worker polls it
        running.api("/work_pools/", {"name": pool, "type": "process"})
        flow_id = running.api("/flows/", {"name": "launched-tls"})["id"]
        deployment = running.api("/deployments/", {
            "name": pool, "flow_id": flow_id, "work_pool_name": pool, "entrypoint": "launched.py:tls",
            "pull_steps": [{"prefect.deployments.steps.set_working_directory": {"directory": str(FLOWS)}}]})["id"]
        python = f"{running.launcher.env_dir}/current/bin/python"

        def launch(ca: Path) -> tuple[str, subprocess.CompletedProcess]:
            run_id = running.api.trigger(deployment)
            env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_HOME": str(running.launcher.home),
                   "PREFECT_API_URL": front.url, "PREFECT_API_SSL_CERT_FILE": str(ca),
                   "PREFECT_CLIENT_MAX_RETRIES": "0", "PREFECT__FLOW_RUN_ID": run_id}
            done = subprocess.run([str(CLIENT), "--socket", str(running.launcher.socket), python, "-m",
                                   "prefect.engine"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=180)
            return run_id, done

        run_id, done = launch(front.cert)
        assert done.returncode == 0, done.stderr[-3000:]
        assert running.api.run(run_id)["state"]["type"] == "COMPLETED"
        logs = running.api.wait_for_log(run_id, "launched-tls ")
        line = next(entry for entry in logs if "launched-tls " in entry)
        assert f"grandparent={running.launcher.pid} " in line, line  # forked by the launcher
        assert "api=https cafile=front.pem contexts=1 verify=CERT_REQUIRED check_hostname=True" in line, line
        assert front.handshakes_refused == 0

        run_id, done = launch(other_ca)
        assert done.returncode != 0
        assert "CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr[-3000:]
        assert front.handshakes_refused > 0
        assert running.api.run(run_id)["state"]["type"] == "SCHEDULED"  # it never got to run
        assert not any("launched-tls " in entry for entry in running.api.logs(run_id))
    finally:
        front.close()


def test_the_launcher_refuses_to_start_when_an_import_starts_a_thread(bench: Bench, tmp_path: Path):
    site = next((bench.launcher.env_dir / "g1").glob("lib/python3*/site-packages"))
    (site / "kit_thread_probe.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n")
    other = Launcher(bench.launcher.env_dir, tmp_path / "probe.sock", tmp_path / "probe.log", bench.launcher.home)
    proc = other.start("--preload", "kit_thread_probe", wait=False)
    assert proc.wait(timeout=60) == 78  # EX_CONFIG: the unit does not restart on it
    assert "refusing to start" in other.log.read_text()
    assert not other.socket.exists()


def test_the_launcher_refuses_a_prefect_release_outside_the_supported_lines(bench: Bench, tmp_path: Path):
    """On a Prefect it is not proven on (here the installed one, calling itself 3.10.0) the
    launcher does not start (exit 78, not restarted) and says so in one line; clients fall
    back to running the engine themselves."""
    probe = tmp_path / "launcher_probe.py"
    probe.write_text(
        "import runpy, sys\n"
        "import prefect\n"
        "prefect.__version__ = '3.10.0'\n"
        f"sys.argv = [{str(LAUNCHER)!r}] + sys.argv[1:]\n"
        f"runpy.run_path({str(LAUNCHER)!r}, run_name='__main__')\n")
    python = bench.launcher.env_dir / "g1/bin/python"  # the generation itself: no re-exec without the probe
    result = subprocess.run([str(python), str(probe), "--env-dir", str(bench.launcher.env_dir),
                             "--socket", str(tmp_path / "probe.sock")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 78, result.stderr
    refused = [line for line in result.stderr.splitlines() if "refusing" in line]
    assert len(refused) == 1 and refused[0].endswith(
        "refusing to start: Prefect 3.10.0 is not supported by this launcher (it supports Prefect 3.8.x, 3.9.x); "
        "runs start without it"), result.stderr
