"""The warm launcher on a converged host: a hardened unit, a private socket, and runs
forked from it (tests/integration/test_launcher.py covers its behaviour in depth)."""

import time

from prefect_api import api, wait_for_log, wait_for_state
from test_10_workers import DOCUMENTED_EXPOSURE, POOL, PULL_STEPS

UNIT = "prefect-launcher@flows.service"
SOCKET = "/srv/prefect/launchers/flows.sock"
COMMAND = f"/usr/local/bin/prefect-launch --socket {SOCKET} /srv/prefect/envs/flows/current/bin/python -m prefect.engine"


def main_pid(host) -> str:
    return host.check_output("systemctl show -p MainPID --value %s", UNIT)


def threads(host) -> int:
    return len(host.check_output("ls /proc/%s/task", main_pid(host)).split())


def forked(host) -> list[str]:
    """The launcher's children (monitors) and their children (runs)."""
    monitors = host.run("ps -o pid= --ppid %s", main_pid(host)).stdout.split()
    runs = host.run("ps -o pid= --ppid %s", ",".join(monitors)).stdout.split() if monitors else []
    return monitors + runs


def test_launcher_is_active_enabled_and_ready(host, journal):
    unit = host.service(UNIT)
    assert unit.is_running and unit.is_enabled, journal(UNIT)
    assert "preloaded six" in journal(UNIT)
    # One thread: nothing started a thread before the launcher forks.
    assert threads(host) == 1, host.check_output("systemctl status --no-pager %s", UNIT)


def test_socket_and_its_directory_are_the_kit_users_only(host):
    sock = host.file(SOCKET)
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("prefect", "prefect", 0o600)
    directory = host.file("/srv/prefect/launchers")
    assert (directory.user, directory.mode) == ("prefect", 0o700)
    assert host.file("/usr/local/bin/prefect-launch").mode == 0o755


def test_launcher_unit_is_hardened_like_the_workers(host):
    out = host.check_output("systemd-analyze security %s", UNIT)
    exposure = float(out.rsplit(f"Overall exposure level for {UNIT}:", 1)[1].split()[0])
    assert exposure <= DOCUMENTED_EXPOSURE, out
    props = host.service(UNIT).systemd_properties
    assert props["User"] == "prefect" and props["KillMode"] == "mixed"
    assert props["RestartPreventExitStatus"].startswith("78")
    assert "PREFECT_API_KEY" not in host.check_output("cat /etc/prefect/launcher-flows.env")


def test_a_run_whose_command_is_prefect_launch_is_forked_by_the_launcher(host, journal):
    flow = api("/flows/", {"name": "molecule-launched"})
    deployment = api("/deployments/", {
        "name": "molecule-launched", "flow_id": flow["id"], "work_pool_name": POOL,
        "entrypoint": "sleepy.py:sleepy", "pull_steps": PULL_STEPS,
        "job_variables": {"command": COMMAND}})
    run = api(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"seconds": 8}})
    wait_for_state(run["id"], ("RUNNING",), timeout=120)
    # The run (a monitor and its child, the run) is the launcher's, not the worker's.
    deadline = time.monotonic() + 20
    while len(forked(host)) < 2:
        assert time.monotonic() < deadline, host.check_output("systemctl status --no-pager %s", UNIT)
        time.sleep(0.5)
    state = wait_for_state(run["id"], timeout=120)
    assert state == "COMPLETED", journal("prefect-worker@a.service") + journal("prefect-worker@b.service")
    wait_for_log(run["id"], "Finished in state Completed")
    logs = journal("prefect-worker@a.service") + journal("prefect-worker@b.service")
    assert "prefect-launch:" not in logs, logs  # no fallback message: the launcher took it
