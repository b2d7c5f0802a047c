"""A served flow (prefect-serve@hello): running from its own checkout, healthy, and its
deployment's runs complete on the host without a work pool."""

from prefect_api import api, wait_for_log, wait_for_state
from test_10_workers import DOCUMENTED_EXPOSURE, KEY


def test_served_flow_unit_is_active_and_enabled(host, journal):
    unit = host.service("prefect-serve@hello.service")
    assert unit.is_running and unit.is_enabled, journal("prefect-serve@hello.service")


def test_served_flow_health_endpoint_answers(host):
    result = host.run("curl -fsS -o /dev/null -w '%{http_code}' http://127.0.0.1:8083/health")
    assert result.stdout == "200", result.stderr


def served_dir(host) -> str:
    pid = host.check_output("systemctl show -p MainPID --value prefect-serve@hello.service")
    return host.check_output("runuser -u prefect -- readlink /proc/%s/cwd", pid)


def test_served_flow_runs_from_a_checkout_of_its_ref(host):
    cwd = served_dir(host)
    # The same path on every host and at every start: the deployment records it.
    assert cwd == "/srv/prefect/runs/serve-hello/flows", cwd
    origin = host.check_output("git -C /srv/origin/flows.git rev-parse main")
    assert host.check_output("git -c safe.directory=* -C %s rev-parse HEAD", cwd) == origin


def test_served_flow_env_file_is_private(host):
    env = host.file("/etc/prefect/serve-hello.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert KEY in env.content_string
    exposed = host.run("ps -eo args; systemctl show prefect-serve@hello.service; "
                       "systemctl cat prefect-serve@hello.service").stdout
    assert KEY not in exposed


def test_served_deployment_run_completes(host):
    deployment = api("/deployments/name/hello/served-hello")
    assert deployment["work_pool_name"] is None, deployment
    run = api(f"/deployments/{deployment['id']}/create_flow_run", {})
    state = wait_for_state(run["id"], ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"), timeout=120)
    cwd = served_dir(host)
    messages = wait_for_log(run["id"], f"cwd={cwd}")
    assert state == "COMPLETED", messages
    assert any(f"cwd={cwd}" in m for m in messages), messages


def test_served_flow_unit_is_hardened_like_the_workers(host):
    out = host.check_output("systemd-analyze security prefect-serve@hello.service")
    exposure = float(out.rsplit("Overall exposure level for prefect-serve@hello.service:", 1)[1].split()[0])
    assert exposure <= DOCUMENTED_EXPOSURE, out
