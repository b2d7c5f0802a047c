"""Workers on a converged host: running, ONLINE in the Prefect API, healthy, secret kept."""

import os
import time

import prefect_versions
import pytest
from prefect_api import api, wait_for_log, wait_for_state
from role_defaults import role_default

KEY = "pnu_moleculeSecretKey0123456789"
# prefect_worker_client_max_retries as the role's defaults give it (the scenario leaves it alone)
ROLE_DEFAULT_RETRIES = role_default("prefect_worker_client_max_retries")
POOL = "molecule-pool"


# The cell of the version matrix this scenario runs (scripts/test): prefect_worker runs the
# default one, compat the other (its molecule.yml sets these).
CELL_PREFECT = os.environ.get("PREFECT_FLEET_SERVER_PREFECT") or prefect_versions.default()
CELL_DEBIAN = {"bookworm": "12", "trixie": "13"}[os.environ.get("PREFECT_FLEET_RELEASE", "trixie")]


def test_the_host_server_and_venv_are_the_cells_releases(host):
    assert host.file("/etc/debian_version").content_string.split(".")[0] == CELL_DEBIAN
    assert api("/admin/version") == CELL_PREFECT
    venv = host.check_output("/srv/prefect/envs/flows/current/bin/python -c %s",
                             "import importlib.metadata as m; print(m.version('prefect'))")
    assert venv == CELL_PREFECT


@pytest.mark.parametrize("instance", ["a", "b"])
def test_instance_is_active_and_enabled(host, journal, instance):
    unit = host.service(f"prefect-worker@{instance}.service")
    assert unit.is_running and unit.is_enabled, journal(f"prefect-worker@{instance}.service")


@pytest.mark.parametrize("instance,port", [("a", 8081), ("b", 8082)])
def test_health_endpoint_answers_on_its_own_port(host, instance, port):
    result = host.run("curl -fsS -o /dev/null -w '%%{http_code}' http://127.0.0.1:%s/health", str(port))
    assert result.stdout == "200", result.stderr


def test_workers_are_online_in_the_api(host):
    name = host.backend.name  # the inventory name: the role names workers <inventory host>-<instance>
    deadline = time.monotonic() + 60
    while True:
        workers = {w["name"]: w["status"] for w in api(f"/work_pools/{POOL}/workers/filter", {})}
        if workers.get(f"{name}-a") == "ONLINE" and workers.get(f"{name}-b") == "ONLINE":
            break
        assert time.monotonic() < deadline, workers
        time.sleep(2)


def test_env_file_is_private_and_the_key_is_nowhere_else(host):
    for instance in ("a", "b"):
        env = host.file(f"/etc/prefect/worker-{instance}.env")
        assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
        assert KEY in env.content_string
    exposed = host.run(
        "ps -eo args; systemctl show prefect-worker@a.service prefect-worker@b.service; "
        "systemctl cat prefect-worker@a.service prefect-worker@b.service; journalctl --no-pager"
    ).stdout
    assert KEY not in exposed
    assert host.run("runuser -u prefect -- cat /etc/prefect/worker-a.env").rc != 0


def test_worker_settings_reach_the_process(host):
    pid = host.check_output("systemctl show -p MainPID --value prefect-worker@b.service")
    # Root in a container may not read another user's /proc/<pid>/environ; its owner may.
    environ = host.check_output("runuser -u prefect -- cat /proc/%s/environ | tr '\\0' '\\n'", pid)
    assert "PREFECT_WORKER_QUERY_SECONDS=1" in environ.splitlines()
    assert "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES=false" in environ.splitlines()
    assert "TMPDIR=/srv/prefect/tmp" in environ.splitlines()
    assert host.check_output("ps -o user= -p %s", pid) == "prefect"


def test_prefect_reads_the_client_retry_budget_from_the_worker_environment(host):
    # The installed Prefect, given exactly the worker's environment, must resolve the
    # setting the role writes (a misspelt or renamed setting would be ignored silently).
    pid = host.check_output("systemctl show -p MainPID --value prefect-worker@b.service")
    script = (
        "import os\n"
        f"raw = open('/proc/{pid}/environ').read()\n"
        "os.environ.clear()\n"
        "os.environ.update(kv.split('=', 1) for kv in raw.split('\\0') if kv)\n"
        "from prefect.settings import get_current_settings\n"
        "print(get_current_settings().client.max_retries)\n"
    )
    out = host.check_output("runuser -u prefect -- /srv/prefect/envs/flows/current/bin/python -c %s", script)
    assert ROLE_DEFAULT_RETRIES != "5", "the role's default must differ from Prefect's for this test to tell"
    assert out == ROLE_DEFAULT_RETRIES


PULL_STEPS = [
    {"prefect.deployments.steps.run_shell_script": {
        "id": "checkout",
        "script": "prefect-checkout --repo flows --ref main --run-id {{ $PREFECT__FLOW_RUN_ID }}"}},
    {"prefect.deployments.steps.set_working_directory": {"directory": "{{ checkout.stdout }}"}},
]


def deploy(name: str, entrypoint: str) -> dict:
    flow = api("/flows/", {"name": name})
    return api("/deployments/", {"name": name, "flow_id": flow["id"], "work_pool_name": POOL,
                                 "entrypoint": entrypoint, "pull_steps": PULL_STEPS})


def test_a_deployment_run_completes_in_its_own_worktree(host):
    deployment = deploy("molecule-hello", "flow.py:hello")
    run = api(f"/deployments/{deployment['id']}/create_flow_run", {})
    state = wait_for_state(run["id"], ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"))
    run_dir = f"/srv/prefect/runs/{run['id']}/flows"
    messages = wait_for_log(run["id"], f"cwd={run_dir}")
    assert state == "COMPLETED", messages
    assert any(f"cwd={run_dir}" in m for m in messages), messages
    origin = host.check_output("git -C /srv/origin/flows.git rev-parse main")
    assert host.check_output("git -c safe.directory=* -C %s rev-parse HEAD", run_dir) == origin


# systemd-analyze security's exposure for prefect-worker@<name>.service, measured on
# Debian 12 (systemd 252) and Debian 13 (257), documented in roles/prefect_worker/README.md. The test
# fails if the unit gets less hardened.
DOCUMENTED_EXPOSURE = 1.5


def test_unit_hardening_exposure_does_not_regress(host):
    out = host.check_output("systemd-analyze security prefect-worker@a.service")
    exposure = float(out.rsplit("Overall exposure level for prefect-worker@a.service:", 1)[1].split()[0])
    assert exposure <= DOCUMENTED_EXPOSURE, out


def test_hardening_properties(host):
    props = host.service("prefect-worker@a.service").systemd_properties
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["User"] == "prefect"
    assert props["UMask"] == "0027"
    assert host.check_output("systemctl show -p CapabilityBoundingSet --value prefect-worker@a.service") == ""
    assert props["KillMode"] == "mixed"
    assert "/srv/prefect/envs" not in props["ReadWritePaths"], "flows must not write the venvs"


def test_restarting_workers_marks_their_running_runs_crashed(host, journal):
    """What the README documents: a stop does not leave a run RUNNING for good; the
    ExecStop helper makes the run record itself CRASHED before the worker kills it."""
    deployment = deploy("molecule-sleepy", "sleepy.py:sleepy")
    run = api(f"/deployments/{deployment['id']}/create_flow_run", {})
    wait_for_state(run["id"], ("RUNNING",), timeout=120)
    time.sleep(3)  # let the engine install its signal handlers and start the flow body
    result = host.run("systemctl restart prefect-worker@a.service prefect-worker@b.service")
    assert result.rc == 0, journal("prefect-worker@a.service") + journal("prefect-worker@b.service")
    state = wait_for_state(run["id"], ("CRASHED", "FAILED", "COMPLETED", "CANCELLED"), timeout=60)
    assert state == "CRASHED", state
    logs = journal("prefect-worker@a.service") + journal("prefect-worker@b.service")
    assert "prefect-worker-stop: sent SIGTERM to 1 flow run(s)" in logs, logs
