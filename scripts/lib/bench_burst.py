"""scripts/bench --only burst: many flow runs triggered at once, the naive layout beside the kit.

It uses the local fleet of scripts/demo (started or reused with `scripts/demo --hosts 3
--runs 0`): the demo's server, its git daemon serving examples/flows, and the hosts
prefect-fleet-1..3 converged by playbooks/site.yml. The same `hello` flow runs three ways,
each from a pool of its own with one worker per host, started with systemd-run like the
latency benchmark's defaults worker, polling every second. Every worker takes at most 8 runs
at once (`--limit 8`, what a demo host runs: two workers of limit 4), so the burst measures
what runs do to each other on a host, not how many processes 2 cores and a SQLite server
can start at once. The demo's own workers and served flows are stopped while it runs (and
started again after), and only the workers of the method whose burst runs are up (started
afresh before each burst, not timed): idle workers poll the same server every second, on
the same 2 cores, and every poll writes to the server's database:

  naive     what a Process pool does when every run prepares its own code and environment
            in one place: the pool's working directory is one shared directory, and the pull
            steps are Prefect's `git_clone` (into that directory) and
            `pip_install_requirements` (requirements.txt, into one shared virtualenv that
            already holds every requirement: pip only checks them, its best case)
  kit       the kit: `command` = the prebuilt venv's python, prefect-checkout pull steps (a
            worktree per run in a directory of its own), nothing installed at run time
  launcher  the same, with `command` through the venv's warm launcher (prefect-launch)

A burst creates N runs while the pool is paused, then opens the pool: every run is due at
once. Two sizes: 32 runs on one host, 96 runs across three. Each size runs its methods
interleaved, `reps` bursts each. Per burst: how many runs COMPLETED and how many did not
(a run not ended within burst_timeout() counts as not completed), and the wall time from
opening the pool to the last run's end (from the API's state times).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
import urllib.error
import uuid
from datetime import datetime
from pathlib import Path

from bench_report import machine_line
from prefect_rest import PrefectRest as Api
from role_defaults import role_default

PREFIX = "prefect-fleet"
METHODS = ("naive", "kit", "launcher")
SIZES = ((1, 32), (3, 96))  # (hosts, runs)
NAIVE_ROOT = "/srv/bench-naive"
KIT_PYTHON = "/srv/prefect/envs/flows/current/bin/python"
COMMANDS = {
    "kit": f"{KIT_PYTHON} -m prefect.engine",
    "launcher": f"/usr/local/bin/prefect-launch --socket /srv/prefect/launchers/flows.sock {KIT_PYTHON} -m prefect.engine",
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
BURST_TIMEOUT = 600  # seconds from opening the pool; a run not ended by then did not complete...
LIMIT = 8  # runs at once per worker, for every layout


def pool_name(method: str) -> str:
    return f"bench-burst-{method}"


def unit_name(method: str) -> str:
    return f"bench-burst-{method}-worker"


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def host_sh(host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", "exec", host, "/bin/sh", "-c", script], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"bench: on {host}: {script}\n{result.stdout}{result.stderr}")
    return result


def naive_env(host: str) -> None:
    """One shared virtualenv and one shared working directory on the host, as a naive setup
    has them. The venv reaches the kit venv's packages through a .pth file, so that pip finds
    every requirement installed (no download, no build) and the comparison is not about the
    package index."""
    host_sh(host, f"""set -e
install -d -o prefect -g prefect {NAIVE_ROOT} {NAIVE_ROOT}/work
if [ ! -x {NAIVE_ROOT}/venv/bin/python ]; then runuser -u prefect -- python3 -m venv {NAIVE_ROOT}/venv; fi
site=$({NAIVE_ROOT}/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
kit=$({KIT_PYTHON} -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$kit" > "$site/prefect-fleet-bench.pth"
chown prefect:prefect "$site/prefect-fleet-bench.pth"
""")


def burst_timeout() -> float:
    """BURST_TIMEOUT, or longer while the kit's client may still be retrying a call the server refused:
    a run whose worker waits out a busy server is late, not failed, and the wall time shows how late.
    Prefect's client waits 2, 4, 8 ... s between tries, each up to 20% longer (jitter)."""
    retries = int(role_default("prefect_worker_client_max_retries"))
    return max(BURST_TIMEOUT, 1.2 * sum(2 ** k for k in range(1, retries + 1)) + 60)


def start_worker(host: str, method: str, api_url: str) -> None:
    python = f"{NAIVE_ROOT}/venv/bin/python" if method == "naive" else KIT_PYTHON
    env = {"HOME": "/srv/prefect/home", "PREFECT_API_URL": api_url, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_HOME": f"/srv/prefect/home/.prefect-{unit_name(method)}"}
    if method == "naive":
        env["PIP_NO_INDEX"] = "1"  # pip must find everything installed; never the network
    else:
        # The kit's worker settings (prefect_worker's env file) that matter here.
        env.update({"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false",
                    "PREFECT_CLIENT_MAX_RETRIES": role_default("prefect_worker_client_max_retries"),
                    "TMPDIR": "/srv/prefect/tmp"})
    flags = " ".join(f"-E {k}={v}" for k, v in env.items())
    unit = unit_name(method)
    host_sh(host, f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; "
                  f"systemd-run --unit={unit} --quiet --uid=prefect --gid=prefect "
                  f"-p WorkingDirectory=/srv/prefect/home {flags} "
                  f"{python} -m prefect worker start --pool {pool_name(method)} --name {host}-{unit} --limit {LIMIT}")


def stop_workers(hosts: list[str], methods: list[str] = METHODS) -> None:
    units = " ".join(unit_name(m) for m in methods)
    for host in hosts:
        host_sh(host, f"systemctl stop {units} 2>/dev/null; systemctl reset-failed {units} 2>/dev/null; true",
                check=False)


DEMO_UNITS = "'prefect-worker@*' 'prefect-serve@*'"


def quiet_demo(hosts: list[str]) -> dict[str, list[str]]:
    """Stop the demo's own workers and served flows on the hosts, and return them: they poll the
    server every second too, and on 2 cores that load would be part of every burst's figure."""
    active = {}
    for host in hosts:
        listed = host_sh(host, f"systemctl list-units --state=active --plain --no-legend {DEMO_UNITS}").stdout
        active[host] = [line.split()[0] for line in listed.splitlines() if line.strip()]
        if active[host]:
            host_sh(host, "systemctl stop " + " ".join(active[host]))
    return active


def restore_demo(active: dict[str, list[str]]) -> None:
    for host, units in active.items():
        if units:
            host_sh(host, "systemctl start " + " ".join(units), check=False)


def wait_polled(api: Api, hosts: list[str], method: str, since: float, timeout: float = 90) -> None:
    """Until method's worker on every host has reported to the API since `since` (a worker's first
    heartbeat comes as it starts, before its first poll). Its ONLINE status alone would not tell:
    the API keeps a stopped worker ONLINE for a few heartbeat intervals."""
    deadline = time.monotonic() + timeout
    want = {f"{h}-{unit_name(method)}" for h in hosts}
    while True:
        workers = api(f"/work_pools/{pool_name(method)}/workers/filter", {})
        fresh = {w["name"] for w in workers
                 if w["status"] == "ONLINE" and w.get("last_heartbeat_time") and ts(w["last_heartbeat_time"]) >= since}
        if want <= fresh:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: workers of {pool_name(method)} did not report since they started: "
                             f"{sorted(want - fresh)}")
        time.sleep(1)


def use_workers(api: Api, all_hosts: list[str], hosts: list[str], method: str) -> None:
    """Only method's workers run while its bursts run, one on each of hosts: an idle worker polls
    every second, and each poll writes to the server's SQLite database (the pool's last poll), so
    the other methods' idle workers would compete with the burst for the one writer. Not timed."""
    stop_workers(all_hosts, [m for m in METHODS if m != method])
    since = time.time() - 1  # the containers share this machine's clock
    for host in hosts:
        start_worker(host, method, api.url)
    wait_polled(api, hosts, method, since)


def prepare(repo: Path, log) -> tuple[Api, dict[str, str], list[str]]:
    hosts = [f"{PREFIX}-{i}" for i in range(1, max(h for h, _ in SIZES) + 1)]
    log(f"burst: starting or reusing the demo fleet with {len(hosts)} hosts (scripts/demo --hosts {len(hosts)} "
        "--runs 0) ...")
    demo = subprocess.run([str(repo / "scripts/demo"), "--hosts", str(len(hosts)), "--runs", "0"],
                          capture_output=True, text=True)
    if demo.returncode != 0:
        raise SystemExit(f"bench: scripts/demo failed:\n{demo.stdout[-3000:]}{demo.stderr[-3000:]}")
    state = repo / ".cache/demo"
    # The demo's SQLite server answers 503 while a burst keeps its database busy: retry for
    # about 4 minutes (PrefectRest backs off 0.5 s, 1 s, 2 s, ...), as the kit's workers do.
    api = Api((state / "server/url").read_text().strip(), attempts=10)
    origin = next(line.split(":", 1)[1].strip().strip('"') for line in (state / "vars.yml").read_text().splitlines()
                  if line.startswith("local_fleet_git_url:"))
    env = {"PREFECT_API_URL": api.url, "PATH": str(repo / ".venv/bin") + ":/usr/bin:/bin",
           "PREFECT_HOME": str(state / "bench-prefect-home")}
    for method in METHODS:
        # Prefect's default base job template for a process pool; each deployment names
        # what differs (its command, or the shared working directory).
        subprocess.run([str(repo / ".venv/bin/prefect"), "work-pool", "create", pool_name(method), "--type",
                        "process"], capture_output=True, text=True, env=env)
        api(f"/work_pools/{pool_name(method)}")  # raises if it does not exist
    flow = api("/flows/", {"name": "hello"})
    kit = api("/deployments/name/hello/hello")
    deployments = {"naive": api("/deployments/", {
        "name": "bench-burst-naive", "flow_id": flow["id"], "work_pool_name": pool_name("naive"),
        "entrypoint": kit["entrypoint"], "job_variables": {"working_dir": f"{NAIVE_ROOT}/work"},
        "pull_steps": [
            {"prefect.deployments.steps.git_clone": {"id": "clone", "repository": origin, "branch": "main"}},
            {"prefect.deployments.steps.pip_install_requirements": {
                "directory": "{{ clone.directory }}", "requirements_file": "requirements.txt"}},
        ]})["id"]}
    for method, command in COMMANDS.items():
        deployments[method] = api("/deployments/", {
            "name": f"bench-burst-{method}", "flow_id": flow["id"], "work_pool_name": pool_name(method),
            "entrypoint": kit["entrypoint"], "pull_steps": kit["pull_steps"],
            "job_variables": {**kit["job_variables"], "command": command},
        })["id"]
    for host in hosts:
        naive_env(host)
    # Runs an interrupted earlier benchmark left waiting in these pools would start with the
    # first burst: cancel them.
    left = api("/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}},
                                     "work_pools": {"name": {"any_": [pool_name(m) for m in METHODS]}}})
    for run in left:
        api(f"/flow_runs/{run['id']}/set_state", {"state": {"type": "CANCELLED",
            "message": "bench: left by an interrupted benchmark"}, "force": True})
    log(f"burst: pools {', '.join(pool_name(m) for m in METHODS)} and their deployments ready on {api.url}")
    return api, deployments, hosts


def short(message: str) -> str:
    """A state's message for the report: run ids and the server's address left out, so the
    API call that failed (e.g. `/flow_runs/<id>/labels`) survives the cut."""
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", message)
    return re.sub(r"https?://[^/\s']+/api", "", message)[:160]


def burst(api: Api, method: str, deployment_id: str, runs: int, log) -> dict:
    pool = pool_name(method)
    tag = uuid.uuid4().hex
    try:
        api(f"/work_pools/{pool}", {"is_paused": True}, method="PATCH")
    except (urllib.error.URLError, OSError) as exc:  # the server refused for minutes: no burst
        log(f"burst: {method}: the pool could not be paused ({exc}); no run created")
        return {"completed": 0, "not_completed": runs, "wall": float("nan"),
                "failures": [("NOT CREATED", short(f"the server did not answer the pool's pause: {exc}"))]}
    created: list[dict] = []
    refused = ""  # why the server did not create some of the runs, after PrefectRest's retries
    try:
        # One at a time: on SQLite, concurrent creations (each reads, then writes) fail each
        # other with "database is locked" (503), and the pool is paused until all exist.
        for i in range(runs):
            try:
                created.append(api(f"/deployments/{deployment_id}/create_flow_run",
                                   {"idempotency_key": f"burst-{tag}-{i}"}))
            except (urllib.error.URLError, OSError) as exc:  # HTTPError (503 to the end) included
                refused = f"the server did not create the run: {exc}"
    finally:
        opened = time.time()
        try:
            api(f"/work_pools/{pool}", {"is_paused": False}, method="PATCH")
        except (urllib.error.URLError, OSError) as exc:
            log(f"burst: {method}: the pool could not be opened ({exc}); its runs count as not completed")
    if refused:
        log(f"burst: {method}: {runs - len(created)} of {runs} runs not created ({refused})")
    ids = [r["id"] for r in created]
    timeout = burst_timeout()
    deadline = time.monotonic() + timeout
    found: list[dict] = []
    while ids:
        try:
            found = api("/flow_runs/filter", {"flow_runs": {"id": {"any_": ids}}, "limit": len(ids)})
        except (urllib.error.URLError, OSError) as exc:  # a server busy with the burst: ask again
            log(f"burst: {method}: the API did not answer ({exc}); asking again")
        if len(found) == len(ids) and all(r["state"]["type"] in FINAL for r in found):
            break
        if time.monotonic() > deadline:
            # What has not ended by then counts as not completed: the report shows it.
            log(f"burst: {method}: {sum(r['state']['type'] not in FINAL for r in found)} of {runs} runs not "
                f"ended after {timeout:.0f}s")
            break
        time.sleep(2)
    states = [r["state"]["type"] for r in found]
    if any(state not in FINAL for state in states):
        # Left behind: cancel them, so the next burst starts from an idle fleet.
        for r in found:
            if r["state"]["type"] not in FINAL:
                try:
                    api(f"/flow_runs/{r['id']}/set_state", {"state": {"type": "CANCELLED",
                        "message": "bench: not ended within the burst's time"}, "force": True})
                except (urllib.error.URLError, OSError):
                    pass
    # A run's end: the time of its final state (a run that crashed before it ran has no end_time).
    ends = [ts(r["state"]["timestamp"]) for r in found if r["state"]["type"] in FINAL]
    failures = sorted({(r["state"]["type"], short(r["state"].get("message") or "") if r["state"]["type"] in FINAL
                        else f"not ended {timeout:.0f} s after the pool opened (cancelled by the bench)") for r in found
                       if r["state"]["type"] != "COMPLETED"})
    if refused:
        failures.insert(0, ("NOT CREATED", short(refused)))
    return {"completed": states.count("COMPLETED"), "not_completed": runs - states.count("COMPLETED"),
            "wall": (max(ends) - opened) if ends and len(ends) == runs else float("nan"),
            "failures": failures[:3]}


def wait_idle(hosts: list[str], timeout: float = 120) -> None:
    """Between bursts: no flow-run process left on the hosts (a crashed run's may linger)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # [p]: the pattern must not match the shell that runs pgrep, whose command line holds it.
        busy = [h for h in hosts if host_sh(h, "pgrep -f '[p]refect[.]engine' >/dev/null", check=False).returncode == 0]
        if not busy:
            return
        time.sleep(1)


def bench(repo: Path, reps: int, log, percentile) -> dict:
    api, deployments, all_hosts = prepare(repo, log)
    results: list[dict] = []
    demo_units = quiet_demo(all_hosts)
    try:
        for n_hosts, runs in SIZES:
            hosts = all_hosts[:n_hosts]
            log(f"burst: {n_hosts} host(s), one worker each (limit {LIMIT}) of the method whose burst runs ...")
            warmed: set[str] = set()
            per: dict[str, list[dict]] = {m: [] for m in METHODS}
            for i in range(reps):
                order = METHODS[i % len(METHODS):] + METHODS[:i % len(METHODS)]
                for method in order:
                    wait_idle(hosts)
                    use_workers(api, all_hosts, hosts, method)
                    if method not in warmed:
                        # Not timed: the first run of each method makes the shared clone and the
                        # mirrors are fresh.
                        warm = burst(api, method, deployments[method], n_hosts, log)
                        if warm["completed"] != n_hosts:
                            log(f"burst: warm-up of {method} on {n_hosts} host(s): {warm}")
                        warmed.add(method)
                        wait_idle(hosts)
                    per[method].append(burst(api, method, deployments[method], runs, log))
                    last = per[method][-1]
                    took = f"in {last['wall']:.1f}s" if last["wall"] == last["wall"] else "(not all ended)"
                    log(f"burst {runs} runs on {n_hosts} host(s), {method}: {last['completed']}/{runs} completed "
                        f"{took}")
            for method in METHODS:
                walls = [b["wall"] for b in per[method] if b["wall"] == b["wall"]]
                results.append({
                    "hosts": n_hosts, "runs": runs, "method": method, "bursts": len(per[method]),
                    "completed": sum(b["completed"] for b in per[method]),
                    "not_completed": sum(b["not_completed"] for b in per[method]),
                    "worst_burst_not_completed": max(b["not_completed"] for b in per[method]),
                    "wall_median": statistics.median(walls) if walls else float("nan"),
                    "wall_p90": percentile(walls, 0.9) if walls else float("nan"),
                    "wall_min": min(walls) if walls else float("nan"),
                    "failures": sorted({f for b in per[method] for f in b["failures"]})[:3],
                })
    finally:
        stop_workers(all_hosts)
        restore_demo(demo_units)
    kit_failed = sum(r["not_completed"] for r in results if r["method"] != "naive")
    return {"reps": reps, "rows": results, "kit_not_completed": kit_failed, "timeout": burst_timeout()}


WHAT = {
    "naive": "one shared working directory; `git_clone` + `pip_install_requirements` per run",
    "kit": "prebuilt venv's python; `prefect-checkout` worktree per run",
    "launcher": "the kit, forked by the venv's warm launcher",
}


def seconds(value: float) -> str:
    """A wall time; none (NaN) when no burst of the row had all of its runs end."""
    return "—" if value != value else f"{value:.1f}"


def print_table(r: dict) -> None:
    print(f"\n{'size':<18}{'method':<10}{'completed':>11}{'not completed':>15}{'wall median s':>15}{'p90':>8}{'min':>8}")
    for row in r["rows"]:
        print(f"{row['runs']} runs/{row['hosts']} host(s) ".ljust(18) + f"{row['method']:<10}{row['completed']:>11}"
              f"{row['not_completed']:>15}{seconds(row['wall_median']):>15}{seconds(row['wall_p90']):>8}"
              f"{seconds(row['wall_min']):>8}")
    print(f"\nthe kit's runs that did not complete: {r['kit_not_completed']} (target 0: "
          f"{'met' if r['kit_not_completed'] == 0 else 'NOT met'})")


def markdown(r: dict, facts: dict, quick: bool) -> str:
    lines = [
        "## burst: many runs triggered at once",
        "",
        f"`scripts/bench --only burst{' --quick' if quick else ''}`: the `hello` flow of examples/flows on the demo "
        "fleet (`prefect-fleet-1..3`, converged by `playbooks/site.yml`), each method from a pool of its own with "
        f"one worker per host (Prefect's process worker, at most {LIMIT} runs at once, polling every second). "
        "The demo's own workers and served flows are stopped meanwhile, and only the workers of the method whose "
        "burst runs are up (started afresh before each burst, not timed). "
        "A burst creates the runs while the pool is paused, then opens it. "
        f"{r['reps']} bursts of each method and size, interleaved. Wall time: from opening the pool to the end "
        f"of the burst's last run (— when some run had not ended {r.get('timeout', BURST_TIMEOUT):.0f} s after "
        "the pool opened: such a run counts as not completed).",
        "",
        "| runs / hosts | method | what a run does | completed | not completed | worst burst | wall median s "
        "| p90 | min |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['runs']} / {row['hosts']} | {row['method']} | {WHAT[row['method']]} | "
                     f"{row['completed']} | {row['not_completed']} | {row['worst_burst_not_completed']} | "
                     f"{seconds(row['wall_median'])} | {seconds(row['wall_p90'])} | {seconds(row['wall_min'])} |")
    lines += [
        "",
        f"- The kit's runs that did not complete, in every burst: **{r['kit_not_completed']}** — target 0: "
        f"{'met' if r['kit_not_completed'] == 0 else 'NOT met'}.",
    ]
    for row in r["rows"]:
        for state, message in row["failures"]:
            what = ("runs were not created" if state == "NOT CREATED" else
                    f"a run ended {state}" if state in FINAL else f"a run was still {state}")
            lines.append(f"- {row['method']}, {row['runs']} runs: {what}: `{message}`")
    if any(state == "NOT CREATED" for row in r["rows"] for state, _ in row["failures"]):
        lines.append("- *Not created*: the demo's Prefect server keeps its database in SQLite, which takes one "
                     "writer at a time; under a burst it answers 503 (database locked), and a run the server "
                     "still refused after about 4 minutes of retries was never created. That limit is the "
                     "test server's, not the layout's: a fleet this size wants Prefect on PostgreSQL.")
    lines += [
        "- naive is its best case here: the shared virtualenv already holds every requirement, so "
        "`pip_install_requirements` only checks them (a cold one downloads and builds), and Prefect's "
        "`git_clone` (3.8.8 and 3.9.1) serializes runs that share a directory with a file lock (the later "
        "ones pull instead of clone), so they wait for each other instead of failing. Every naive run still "
        "loads its flow from the one shared checkout, which the next run's pull may move under it.",
        "",
        machine_line(facts),
    ]
    return "\n".join(lines)


def panel(r: dict) -> dict:
    """The chart's panel: wall time of a burst, medians, per size and method."""
    return {"title": "burst: wall time from opening the pool to the last run's end (median s)",
            "labels": [f"{row['method']} {row['runs']}/{row['hosts']}" for row in r["rows"]], "stacked": False,
            "series": {"wall": [row["wall_median"] for row in r["rows"]]}}
