"""The kit's promise on a fleet of three hosts: 48 runs at once, each COMPLETED in a
worktree of its own at the origin's commit, from the prebuilt venv, with nothing
installed and no directory shared; then cleanup.yml removes their directories.

The tests run in file order: deploy, burst, checks on the burst, cleanup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from prefect_api import FINAL_STATES, api, api_url, wait_for_log, wait_for_state

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
ORIGIN = REPO / ".cache/fleet/origin/flows.git"
HOSTS = ("fleet-1", "fleet-2", "fleet-3")
BURST = 48
AUDIT = "/srv/prefect/tmp/.fleet-process-audit"
BURST_STATE: dict = {}


@pytest.fixture(scope="module")
def hosts():
    import testinfra

    return {name: testinfra.get_host(f"podman://{name}") for name in HOSTS}


def origin_commit() -> str:
    return subprocess.run(["git", "-C", str(ORIGIN), "rev-parse", "main"], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_every_worker_is_online(hosts):
    deadline = time.monotonic() + 90
    expected = {f"{h}-{i}" for h in HOSTS for i in ("a", "b")}
    while True:
        workers = {w["name"]: w["status"] for w in api("/work_pools/fleet/workers/filter", {})}
        if all(workers.get(name) == "ONLINE" for name in expected):
            break
        assert time.monotonic() < deadline, workers
        time.sleep(2)


def table(output: str) -> list[list[str]]:
    """The rows of verify.yml's table: [host, check, ok/FAIL, detail]."""
    rows = [[cell.strip() for cell in line.split("|", 3)] for line in output.splitlines() if line.count("|") >= 3]
    return [row for row in rows if len(row) == 4 and row[2] in ("ok", "FAIL")]


def fails(output: str) -> list[str]:
    return sorted({" | ".join(row) for row in table(output) if row[2] == "FAIL"})


def test_verify_passes_on_the_healthy_fleet(run_playbook):
    result = run_playbook(REPO / "playbooks/verify.yml")
    assert result.rc == 0 and not fails(result.output), result.output
    # Per host: 2 workers online, 4 health endpoints (2 workers, 2 served flows), 1 launcher,
    # 1 mirror, 1 env, disk free.
    assert f"All {len(HOSTS) * 10} checks passed." in result.output, result.output
    served = {row[0].split()[-1] for row in table(result.output) if row[1] == "served hello health" and row[2] == "ok"}
    assert served == set(HOSTS), result.output


def test_verify_names_what_is_off(hosts, run_playbook):
    hosts["fleet-2"].run("systemctl stop prefect-worker@b.service prefect-launcher@flows.service")
    try:
        result = run_playbook(REPO / "playbooks/verify.yml")
    finally:
        hosts["fleet-2"].run("systemctl start prefect-worker@b.service prefect-launcher@flows.service")
    assert result.rc != 0, result.output
    failed = fails(result.output)
    assert failed and all("fleet-2" in row and ("worker b" in row or "launcher flows" in row) for row in failed), result.output
    assert any("worker b health" in row for row in failed), result.output
    assert any("launcher flows ready" in row and "socket missing" in row for row in failed), result.output
    # Back to health before the burst: the role's own wait would do this on a converge.
    deadline = time.monotonic() + 90
    while hosts["fleet-2"].run("curl -fsS http://127.0.0.1:8082/health").rc != 0:
        assert time.monotonic() < deadline, "worker b did not come back"
        time.sleep(2)


def test_deploy_the_example_flows_with_prefect_deploy():
    """`prefect deploy --all` from the example repository, as its README says."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "flows"
        shutil.copytree(REPO / "examples/flows", work)
        env = {**os.environ, "PREFECT_API_URL": api_url(), "PREFECT_HOME": str(Path(tmp) / "home")}
        prefect = Path(sys.executable).parent / "prefect"
        result = subprocess.run([str(prefect), "deploy", "--all", "--no-prompt"], cwd=work, env=env,
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("hello/hello", "report/report"):
        deployment = api(f"/deployments/name/{name}")
        assert deployment["work_pool_name"] == "fleet"
        assert "command" not in deployment["job_variables"], deployment["job_variables"]  # the pool's applies
    # The pool's (prefect_work_pool, launcher: true): the venv's engine through its warm launcher.
    command = api("/work_pools/fleet")["base_job_template"]["variables"]["properties"]["command"]["default"]
    assert command == ("/usr/local/bin/prefect-launch --socket /srv/prefect/launchers/flows.sock "
                       "/srv/prefect/envs/flows/current/bin/python -m prefect.engine"), command


def test_a_deployment_served_from_every_host_completes_wherever_it_runs():
    """prefect flow serve records its working directory in the deployment; each host
    serves from the same path, so a run loads its code on whichever host picks it up."""
    deployment = api("/deployments/name/hello/served")
    assert deployment["work_pool_name"] is None
    tag = uuid.uuid4().hex
    runs = [api(f"/deployments/{deployment['id']}/create_flow_run", {"idempotency_key": f"served-{tag}-{i}"})
            for i in range(6)]
    states = {r["id"]: wait_for_state(r["id"], timeout=300) for r in runs}
    assert set(states.values()) == {"COMPLETED"}, states
    for run in runs:
        messages = wait_for_log(run["id"], "working directory: /srv/prefect/runs/serve-hello/flows")
        assert "working directory: /srv/prefect/runs/serve-hello/flows" in messages, messages


def test_burst_of_48_runs_completes(hosts):
    generations = {n: h.check_output("readlink -f /srv/prefect/envs/flows/current") for n, h in hosts.items()}
    # A process audit on every host for the whole burst: what ran, sampled every 0.2 s.
    for h in hosts.values():
        h.run("rm -f %s; systemd-run --unit=fleet-audit --quiet /bin/sh -c "
              "'while :; do ps -eo args >> %s; sleep 0.2; done'", AUDIT, AUDIT)
    ids = {name: api(f"/deployments/name/{name}")["id"] for name in ("hello/hello", "report/report")}
    plan = ["hello/hello" if i % 3 else "report/report" for i in range(BURST)]
    tag = uuid.uuid4().hex
    # All 48 are released at once: created while the pool is paused, then the pool opens.
    # An idempotency key per run makes a retried creation return the same run. They are
    # created one after the other: on SQLite, concurrent creations (each reads, then
    # writes) fail each other with "database is locked" (HTTP 503), and how fast they are
    # created does not matter while the pool is paused.
    api("/work_pools/fleet", {"is_paused": True}, method="PATCH")
    try:
        runs = [api(f"/deployments/{ids[name]}/create_flow_run", {"idempotency_key": f"burst-{tag}-{i}"})
                for i, name in enumerate(plan)]
    finally:
        api("/work_pools/fleet", {"is_paused": False}, method="PATCH")
    assert len({r["id"] for r in runs}) == BURST
    deadline = time.monotonic() + 600
    states: dict[str, str] = {}
    found: list[dict] = []
    while True:
        found = api("/flow_runs/filter", {"flow_runs": {"id": {"any_": [r["id"] for r in runs]}}, "limit": BURST})
        states = {r["id"]: r["state"]["type"] for r in found}
        if len(states) == BURST and all(s in FINAL_STATES for s in states.values()):
            break
        assert time.monotonic() < deadline, sorted(states.values())
        time.sleep(2)
    for h in hosts.values():
        h.run("systemctl stop fleet-audit")
    BURST_STATE.update(runs=runs, plan=plan, generations=generations)
    # A run that did not complete is shown with its state's message: for a CRASHED run
    # the worker writes there the error that stopped it (e.g. the API call that failed).
    assert sorted(set(states.values())) == ["COMPLETED"], {
        r["id"]: (r["state"]["type"], r["state"].get("message")) for r in found if r["state"]["type"] != "COMPLETED"}


def burst():
    if not BURST_STATE:
        pytest.fail("the burst did not run")
    return BURST_STATE


def test_each_run_ran_in_its_own_worktree_at_the_origin_commit(hosts):
    commit = origin_commit()
    seen: dict[str, str] = {}
    by_host: dict[str, int] = {}
    for run in burst()["runs"]:
        run_dir = f"/srv/prefect/runs/{run['id']}/flows"
        messages = wait_for_log(run["id"], f"working directory: {run_dir}")
        cwds = [m.split(": ", 1)[1] for m in messages if m.startswith("working directory: ")]
        assert cwds == [run_dir], messages
        assert run_dir not in seen, f"{run['id']} shared {run_dir} with {seen.get(run_dir)}"
        seen[run_dir] = run["id"]
        owners = [n for n, h in hosts.items() if h.file(run_dir).is_directory]
        assert len(owners) == 1, f"{run_dir} on {owners}"
        host_name = owners[0]
        by_host[host_name] = by_host.get(host_name, 0) + 1
        head = hosts[host_name].check_output("git -c safe.directory=* -C %s rev-parse HEAD", run_dir)
        assert head == commit, (run["id"], head)
    assert len(seen) == BURST
    assert len(by_host) == len(HOSTS), f"the burst did not spread over the fleet: {by_host}"


def test_report_runs_used_pandas_from_the_prebuilt_venv():
    reports = [r for r, name in zip(burst()["runs"], burst()["plan"]) if name == "report/report"]
    for run in reports:
        messages = wait_for_log(run["id"], "pandas 3.0.6")
        assert any(m.startswith("pandas 3.0.6,") for m in messages), messages


def test_nothing_was_installed_during_the_burst(hosts):
    for name, h in hosts.items():
        assert h.check_output("readlink -f /srv/prefect/envs/flows/current") == burst()["generations"][name]
        audit = h.check_output("cat %s", AUDIT)
        assert audit.count("\n") > 50, f"the audit on {name} saw too little: {audit[:500]}"
        assert "prefect.engine" in audit, f"the audit on {name} never saw a flow run"
        installers = [line for line in audit.splitlines()
                      if any(word in line.split() for word in ("pip", "pip3", "uv"))
                      or " -m pip" in line or "/bin/pip" in line or "/bin/uv" in line]
        assert installers == [], installers[:10]


def test_the_burst_was_forked_by_each_hosts_warm_launcher(hosts):
    """The pool's command is prefect-launch (examples/flows sets none of its own): the audit
    saw its clients and never a plain `python -m prefect.engine` process, no run fell back
    (the client would say so on stderr, which the worker logs), no launcher restarted."""
    for name, h in hosts.items():
        audit = h.check_output("cat %s", AUDIT).splitlines()
        assert any(line.startswith("/usr/bin/python3 -IS /usr/local/bin/prefect-launch --socket") for line in audit), name
        plain = [line for line in audit if line.startswith("/srv/prefect/envs/flows/current/bin/python -m prefect.engine")]
        assert plain == [], plain[:5]
        assert h.service("prefect-launcher@flows.service").is_running, name
        assert h.check_output("systemctl show -p NRestarts --value prefect-launcher@flows.service") == "0", name
        logs = h.run("journalctl --no-pager -u prefect-worker@a.service -u prefect-worker@b.service").stdout
        assert "prefect-launch:" not in logs, [line for line in logs.splitlines() if "prefect-launch:" in line][:5]


def test_cleanup_playbook_removes_the_burst_run_directories(hosts, run_playbook):
    # Run ids are UUIDs: safe to put on a command line as they are.
    listing = "ls -d " + " ".join(f"/srv/prefect/runs/{r['id']}" for r in burst()["runs"]) + " 2>/dev/null"
    before = sum(len(h.run(listing).stdout.split()) for h in hosts.values())
    assert before == BURST, before
    time.sleep(2)  # older than the TTL below
    result = run_playbook(REPO / "playbooks/cleanup.yml", extra_vars={"prefect_cleanup_now_ttl": 1})
    assert result.rc == 0, result.output
    left = {n: h.run(listing).stdout.split() for n, h in hosts.items()}
    assert all(not v for v in left.values()), left
    burst_dirs = {f"/srv/prefect/runs/{r['id']}/flows" for r in burst()["runs"]}
    for name, h in hosts.items():
        # The cleanup pruned the worktrees' metadata: left are the bare mirror itself and
        # the served flows' checkouts, which their running units use.
        listed = h.check_output("git -c safe.directory=* -C /srv/prefect/mirrors/flows.git worktree list --porcelain")
        worktrees = {line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("worktree ")}
        assert worktrees == {"/srv/prefect/mirrors/flows.git", "/srv/prefect/runs/serve-hello/flows",
                             "/srv/prefect/runs/serve-nap/flows"}, (name, listed)
        assert not worktrees & burst_dirs


def test_uninstall_takes_the_kit_off_one_host_and_keeps_its_data(hosts, run_playbook):
    h = hosts["fleet-3"]
    result = run_playbook(REPO / "playbooks/uninstall.yml", limit="fleet-3")
    assert result.rc == 0 and result.recap["fleet-3"]["failed"] == 0, result.output
    assert h.run("systemctl list-unit-files --no-legend 'prefect-*'").stdout.strip() == ""
    assert h.run("pgrep -u prefect").stdout.strip() == "", "a process of the kit's user still runs"
    for gone in ("/etc/prefect", "/etc/cron.d/prefect-cleanup", "/usr/local/bin/prefect-checkout",
                 "/usr/local/bin/prefect-cleanup", "/usr/local/lib/prefect-fleet"):
        assert not h.file(gone).exists, gone
    # The data stays unless purged: venvs, mirrors, the user that owns them.
    assert h.file("/srv/prefect/envs/flows/current/bin/python").exists
    assert h.file("/srv/prefect/mirrors/flows.git/HEAD").exists
    assert h.user("prefect").exists
    # The other hosts and the work pool are untouched.
    assert hosts["fleet-1"].service("prefect-worker@a.service").is_running
    assert api("/work_pools/fleet")["name"] == "fleet"
    again = run_playbook(REPO / "playbooks/uninstall.yml", limit="fleet-3")
    assert again.rc == 0 and again.recap["fleet-3"]["changed"] == 0, again.output


def test_uninstall_with_purge_removes_the_data_too(hosts, run_playbook):
    h = hosts["fleet-3"]
    result = run_playbook(REPO / "playbooks/uninstall.yml", extra_vars={"prefect_fleet_purge": True},
                          limit="fleet-3")
    assert result.rc == 0, result.output
    assert not h.file("/srv/prefect").exists
    assert not h.user("prefect").exists
    assert hosts["fleet-1"].service("prefect-worker@a.service").is_running
