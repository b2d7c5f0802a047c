"""scripts/bench --only latency: trigger -> Running and trigger -> first flow log line on a
provisioned host, Prefect's defaults beside the kit's settings and a served flow, in one run.

It uses the local fleet of scripts/demo, made or reshaped to one host (`scripts/demo --hosts 1
--runs 0`): the demo's server, its git daemon serving examples/flows, and the host
prefect-fleet-1, converged by playbooks/site.yml. One host, so that every run of the demo's
pool lands on the host measured; and a cold start converges one host, not two. Four ways to
run the same `hello` flow, interleaved:

  defaults  a process worker as Prefect starts it (`prefect worker start --pool P`, query
            every 10 s), a pool with Prefect's default base job template (no command), and
            the pull step `prefect deploy` writes for a git repository (`git_clone`: a
            depth-1 clone of the repository into the run's temporary directory)
  kit       the kit's workers (the demo's query every 1 s), `command` pointing at the prebuilt
            venv's python, prefect-checkout pull steps (examples/flows/prefect.yaml)
  launcher  the same, with `command` through the venv's warm launcher (prefect-launch)
  served    the kit's served flow prefect-serve@hello (`prefect flow serve`, poll every 1 s)
  kit-3.8.8 the kit on the other supported Prefect release: the kit's pull steps and worker
            settings, a worker and the `command` from an environment of Prefect 3.8.8 beside
            `flows` (built on the host by the kit's own prefect-venv from the spec of `flows`,
            with the kit's lock of 3.8.8), against the same server

Each run is triggered through the API, then awaited before the next one starts. Before
each trigger the benchmark waits a random part (uniform) of that method's poll interval,
so the triggers fall at evenly spread points of the worker's poll cycle: back to back, they
fall wherever the runs before them leave the cycle, and the defaults' median (10 s polls)
came out anywhere from 3.5 s to 10.5 s between runs of the benchmark. Times
come from the API: the run's `created` (trigger), its `start_time` (Running) and the
timestamp of its first "working directory:" log line (flow code running); and, to take
the poll wait out, from its PENDING state (the worker has picked it up) to that log line.
"""

from __future__ import annotations

import json
import random
import shlex
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

import prefect_versions
from bench_report import machine_line
from prefect_rest import PrefectRest as Api
from role_defaults import role_default

HOST = "prefect-fleet-1"
DEFAULTS_POOL = "bench-defaults"
DEFAULTS_UNIT = "bench-defaults-worker"
# The other supported release (prefect_versions): the kit's figure on it, beside the default's.
OTHER_PREFECT = next(v for v in prefect_versions.supported() if v != prefect_versions.default())
OTHER = f"kit-{OTHER_PREFECT}"
METHODS = ("defaults", "kit", "launcher", "served", OTHER)
POLL_SECONDS = {"defaults": 10.0, "kit": 1.0, "launcher": 1.0, "served": 1.0, OTHER: 1.0}  # how often each looks
OTHER_ENV = f"/srv/prefect/envs/bench-{OTHER_PREFECT}"
OTHER_POOL = f"bench-kit-{OTHER_PREFECT}"
OTHER_UNIT = f"bench-kit-{OTHER_PREFECT.replace('.', '-')}-worker"
TARGET_RATIO = 0.5  # kit median <= 0.5 x defaults median
TARGET_SECONDS = 3.5  # kit median trigger -> Running
LAUNCHER_SECONDS = 1.0  # launcher median trigger -> first flow log line
LAUNCHER_RATIO = 0.5  # launcher / kit, trigger -> first flow log line (medians)
PYTHON = "/srv/prefect/envs/flows/current/bin/python"
COMMANDS = {
    "kit": f"{PYTHON} -m prefect.engine",
    "launcher": f"/usr/local/bin/prefect-launch --socket /srv/prefect/launchers/flows.sock {PYTHON} -m prefect.engine",
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def host_sh(script: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", "exec", HOST, "/bin/sh", "-c", script], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"bench: on {HOST}: {script}\n{result.stdout}{result.stderr}")
    return result


def prepare(repo: Path, log) -> tuple[Api, dict[str, str]]:
    log("latency: starting or reusing the demo fleet of one host (scripts/demo --hosts 1 --runs 0) ...")
    demo = subprocess.run([str(repo / "scripts/demo"), "--hosts", "1", "--runs", "0"], capture_output=True, text=True)
    if demo.returncode != 0:
        raise SystemExit(f"bench: scripts/demo failed:\n{demo.stdout[-3000:]}{demo.stderr[-3000:]}")
    state = repo / ".cache/demo"
    api = Api((state / "server/url").read_text().strip())
    origin = next(line.split(":", 1)[1].strip().strip('"') for line in (state / "vars.yml").read_text().splitlines()
                  if line.startswith("local_fleet_git_url:"))

    # Prefect's defaults: a pool made by the CLI (default base job template, no command)
    # and a worker started the way Prefect's docs start one.
    env = {"PREFECT_API_URL": api.url, "PATH": str(repo / ".venv/bin") + ":/usr/bin:/bin",
           "PREFECT_HOME": str(state / "bench-prefect-home")}
    subprocess.run([str(repo / ".venv/bin/prefect"), "work-pool", "create", DEFAULTS_POOL, "--type", "process"],
                   capture_output=True, text=True, env=env)
    api(f"/work_pools/{DEFAULTS_POOL}")  # raises if it does not exist
    host_sh(f"systemctl stop {DEFAULTS_UNIT} 2>/dev/null; systemctl reset-failed {DEFAULTS_UNIT} 2>/dev/null; "
            f"systemd-run --unit={DEFAULTS_UNIT} --quiet --uid=prefect --gid=prefect "
            f"-p WorkingDirectory=/srv/prefect/home -E HOME=/srv/prefect/home -E PREFECT_API_URL={api.url} "
            f"/srv/prefect/envs/flows/current/bin/prefect worker start --pool {DEFAULTS_POOL} "
            f"--name {HOST}-bench-defaults", check=True)

    flow = api("/flows/", {"name": "hello"})
    default_deployment = api("/deployments/", {
        "name": "bench-defaults", "flow_id": flow["id"], "work_pool_name": DEFAULTS_POOL,
        "entrypoint": "flows/hello.py:hello",
        # What `prefect deploy` writes for a deployment from a git repository.
        "pull_steps": [{"prefect.deployments.steps.git_clone": {"repository": origin, "branch": "main"}}],
    })
    # The kit's deployment of hello (examples/flows), pinned to each command: the same pull
    # steps and pool, so the launcher is the only difference between the two.
    kit = api("/deployments/name/hello/hello")
    deployments = {"defaults": default_deployment["id"], "served": api("/deployments/name/hello/served")["id"]}
    for method, command in COMMANDS.items():
        deployments[method] = api("/deployments/", {
            "name": f"bench-{method}", "flow_id": flow["id"], "work_pool_name": kit["work_pool_name"],
            "entrypoint": kit["entrypoint"], "pull_steps": kit["pull_steps"],
            "job_variables": {**kit["job_variables"], "command": command},
        })["id"]
    deployments[OTHER] = other_release(repo, api, kit, flow["id"], log)
    # The defaults worker polls every 10 s: wait until it and the other release's are ONLINE, not timed.
    for pool, name, unit in ((DEFAULTS_POOL, f"{HOST}-bench-defaults", DEFAULTS_UNIT),
                             (OTHER_POOL, f"{HOST}-{OTHER_UNIT}", OTHER_UNIT)):
        deadline = time.monotonic() + 90
        while True:
            workers = {w["name"]: w["status"] for w in api(f"/work_pools/{pool}/workers/filter", {})}
            if workers.get(name) == "ONLINE":
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: the worker {name} did not come online: "
                                 f"{host_sh(f'journalctl -n 30 -u {unit}', False).stdout}")
            time.sleep(2)
    return api, deployments


def other_release(repo: Path, api: Api, kit: dict, flow_id: str, log) -> str:
    """The kit on the other supported Prefect release: an environment of it beside `flows`,
    built by the kit's prefect-venv from the spec the role wrote for `flows` with only the
    release and its lock changed; a worker from it with the kit's worker settings, on a pool
    with the kit pool's base job template; the kit's deployment with `command` pointing at it.
    Returns that deployment's id."""
    log(f"latency: building the Prefect {OTHER_PREFECT} environment {OTHER_ENV} (not timed) ...")
    spec = json.loads(host_sh("cat /srv/prefect/envs/flows/spec.json").stdout)
    spec.update({"name": Path(OTHER_ENV).name, "env_dir": OTHER_ENV, "prefect_version": OTHER_PREFECT,
                 "constraints": prefect_versions.constraints(OTHER_PREFECT).read_text().splitlines()})
    host_sh(f"install -d -o prefect -g prefect -m 0750 {OTHER_ENV} && "
            f"printf '%s' {shlex.quote(json.dumps(spec))} > {OTHER_ENV}/spec.json && "
            f"runuser -u prefect -- /usr/local/bin/prefect-venv build --spec {OTHER_ENV}/spec.json >/dev/null")
    python = f"{OTHER_ENV}/current/bin/python"
    version = host_sh(f"{python} -c 'import importlib.metadata as m; print(m.version(\"prefect\"))'").stdout.strip()
    if version != OTHER_PREFECT:
        raise SystemExit(f"bench: {OTHER_ENV} has Prefect {version}, not {OTHER_PREFECT}")

    pool = api(f"/work_pools/{kit['work_pool_name']}")
    if not api("/work_pools/filter", {"work_pools": {"name": {"any_": [OTHER_POOL]}}}):
        api("/work_pools/", {"name": OTHER_POOL, "type": pool["type"], "base_job_template": pool["base_job_template"]})
    # prefect_worker's env file: the settings that matter for a run's start.
    env = {"HOME": "/srv/prefect/home", "PREFECT_HOME": "/srv/prefect/home/.prefect", "PREFECT_API_URL": api.url,
           "TMPDIR": "/srv/prefect/tmp", "PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false",
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS":
           role_default("prefect_worker_prefetch_seconds"),
           "PREFECT_CLIENT_MAX_RETRIES": role_default("prefect_worker_client_max_retries")}
    flags = " ".join(f"-E {k}={v}" for k, v in env.items())
    host_sh(f"systemctl stop {OTHER_UNIT} 2>/dev/null; systemctl reset-failed {OTHER_UNIT} 2>/dev/null; "
            f"systemd-run --unit={OTHER_UNIT} --quiet --uid=prefect --gid=prefect "
            f"-p WorkingDirectory=/srv/prefect/home {flags} "
            f"{python} -m prefect worker start --pool {OTHER_POOL} --name {HOST}-{OTHER_UNIT}")
    return api("/deployments/", {
        "name": f"bench-{OTHER}", "flow_id": flow_id, "work_pool_name": OTHER_POOL,
        "entrypoint": kit["entrypoint"], "pull_steps": kit["pull_steps"],
        "job_variables": {**kit["job_variables"], "command": f"{python} -m prefect.engine"},
    })["id"]


def one_run(api: Api, deployment_id: str, timeout: float = 120) -> dict[str, float]:
    run = api(f"/deployments/{deployment_id}/create_flow_run", {})
    deadline = time.monotonic() + timeout
    while True:
        current = api(f"/flow_runs/{run['id']}")
        if current["state"]["type"] in FINAL:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: run {run['id']} still {current['state']['type']} after {timeout:.0f} s")
        time.sleep(0.25)
    if current["state"]["type"] != "COMPLETED":
        raise SystemExit(f"bench: run {run['id']} ended {current['state']['type']}: {current['state'].get('message')}")
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        logs = api("/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "sort": "TIMESTAMP_ASC", "limit": 50})
        first = next((e for e in logs if e["message"].startswith("working directory:")), None)
        if first is None:
            time.sleep(0.5)
    if first is None:
        raise SystemExit(f"bench: run {run['id']} logged no 'working directory:' line")
    created = ts(current["created"])
    states = api(f"/flow_run_states/?flow_run_id={run['id']}")
    pending = min((ts(s["timestamp"]) for s in states if s["type"] == "PENDING"), default=created)
    return {"running": ts(current["start_time"]) - created, "first_log": ts(first["timestamp"]) - created,
            "pickup": ts(first["timestamp"]) - pending}


def bench(repo: Path, reps: int, log, percentile, untimed=None) -> dict:
    """untimed: called once the fleet is ready, before the first timed run (scripts/bench waits
    there for the earlier benchmarks' directories to be removed)."""
    api, deployments = prepare(repo, log)
    if untimed is not None:
        untimed()
    times: dict[str, dict[str, list[float]]] = {m: {"running": [], "first_log": [], "pickup": []} for m in METHODS}
    try:
        for i in range(reps):
            order = METHODS[i % len(METHODS):] + METHODS[:i % len(METHODS)]
            for method in order:
                time.sleep(random.uniform(0, POLL_SECONDS[method]))
                result = one_run(api, deployments[method])
                for key, value in result.items():
                    times[method][key].append(value)
            log(f"latency repetition {i + 1}/{reps}: " + ", ".join(
                f"{m} {times[m]['running'][-1]:.2f}s/{times[m]['first_log'][-1]:.2f}s" for m in METHODS))
    finally:
        host_sh(f"systemctl stop {DEFAULTS_UNIT} {OTHER_UNIT}; rm -rf {OTHER_ENV}", check=False)
    rows = []
    for m in METHODS:
        r, f = times[m]["running"], times[m]["first_log"]
        rows.append({"method": m, "running_median": statistics.median(r), "running_p90": percentile(r, 0.9),
                     "running_min": min(r), "first_log_median": statistics.median(f),
                     "first_log_p90": percentile(f, 0.9), "first_log_min": min(f),
                     "pickup_median": statistics.median(times[m]["pickup"])})
    by = {row["method"]: row for row in rows}
    return {"reps": reps, "rows": rows,
            "ratio_kit_defaults": by["kit"]["running_median"] / by["defaults"]["running_median"],
            "kit_running_median": by["kit"]["running_median"],
            "launcher_first_log_median": by["launcher"]["first_log_median"],
            "kit_first_log_median": by["kit"]["first_log_median"],
            "ratio_launcher_kit": by["launcher"]["first_log_median"] / by["kit"]["first_log_median"],
            "ratio_other_kit": by[OTHER]["running_median"] / by["kit"]["running_median"],
            "server_prefect": api("/admin/version"), "default_prefect": prefect_versions.default(),
            "other_prefect": OTHER_PREFECT}


WHAT = {
    "defaults": "Prefect's defaults: worker query 10 s, no `command`, `git_clone` pull step",
    "kit": "the kit: query 1 s (the demo's), `command` = prebuilt venv's python, `prefect-checkout` pull steps",
    "launcher": "the kit, `command` through the venv's warm launcher (`prefect-launch`)",
    "served": "the kit's served flow (`prefect-serve@hello`, poll 1 s)",
    OTHER: f"the kit as `kit`, worker and `command` from an environment of Prefect {OTHER_PREFECT}",
}


def by_method(r: dict) -> dict[str, dict]:
    return {row["method"]: row for row in r["rows"]}


def print_table(r: dict, verdict) -> None:
    print(f"\n{'method':<12}{'Running median':>16}{'p90':>8}{'min':>8}{'first log median':>18}{'p90':>8}{'min':>8}"
          f"{'pickup->log median':>20}")
    for row in r["rows"]:
        print(f"{row['method']:<12}{row['running_median']:>16.2f}{row['running_p90']:>8.2f}{row['running_min']:>8.2f}"
              f"{row['first_log_median']:>18.2f}{row['first_log_p90']:>8.2f}{row['first_log_min']:>8.2f}"
              f"{row['pickup_median']:>20.2f}")
    print(f"\nkit / defaults trigger->Running median: {r['ratio_kit_defaults']:.2f} "
          f"(target <= {TARGET_RATIO}: {verdict(r['ratio_kit_defaults'] <= TARGET_RATIO)}); "
          f"kit median {r['kit_running_median']:.2f} s (target <= {TARGET_SECONDS} s: "
          f"{verdict(r['kit_running_median'] <= TARGET_SECONDS)})")
    print(f"{OTHER} / kit trigger->Running median: {r['ratio_other_kit']:.2f}")
    print(f"launcher trigger->first log median {r['launcher_first_log_median']:.3f} s (target <= {LAUNCHER_SECONDS} s: "
          f"{verdict(r['launcher_first_log_median'] <= LAUNCHER_SECONDS)}); launcher / kit {r['ratio_launcher_kit']:.3f} "
          f"(target <= {LAUNCHER_RATIO}: {verdict(r['ratio_launcher_kit'] <= LAUNCHER_RATIO)})")


def markdown(r: dict, facts: dict, quick: bool, verdict) -> str:
    lines = [
        "## latency: trigger to Running and to the first flow log line",
        "",
        f"`scripts/bench --only latency{' --quick' if quick else ''}`: the same trivial flow (`hello` of "
        f"examples/flows) on the demo fleet of one host (`{HOST}`, converged by `playbooks/site.yml`; `scripts/demo "
        "--hosts 1`, so every run of the demo's pool lands there), "
        f"{r['reps']} interleaved runs of each method, one run at a time, each triggered after a random part of "
        "its method's poll interval (so at an evenly spread point of the poll cycle). Seconds from the run's "
        "creation in the API to its Running state, and to its first log line from flow code. The server runs "
        f"Prefect {r['server_prefect']}; every method but `{OTHER}` runs the flow on Prefect {r['default_prefect']} "
        "(the demo's environment `flows`).",
        "",
        "| method | what runs the flow | Running median s | p90 | min | first log median s | p90 | min "
        "| pickup to first log median s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        lines.append(f"| {row['method']} | {WHAT[row['method']]} | {row['running_median']:.2f} | "
                     f"{row['running_p90']:.2f} | {row['running_min']:.2f} | {row['first_log_median']:.2f} | "
                     f"{row['first_log_p90']:.2f} | {row['first_log_min']:.2f} | {row['pickup_median']:.2f} |")
    lines += [
        "",
        f"- kit / defaults, trigger to Running (median): **{r['ratio_kit_defaults']:.2f}** — target ≤ {TARGET_RATIO}: "
        f"{verdict(r['ratio_kit_defaults'] <= TARGET_RATIO)}.",
        f"- kit, trigger to Running (median): **{r['kit_running_median']:.2f} s** — target ≤ {TARGET_SECONDS} s: "
        f"{verdict(r['kit_running_median'] <= TARGET_SECONDS)}.",
        f"- launcher, trigger to first flow log line (median): **{r['launcher_first_log_median']:.3f} s** — target ≤ "
        f"{LAUNCHER_SECONDS} s: {verdict(r['launcher_first_log_median'] <= LAUNCHER_SECONDS)}.",
        f"- launcher / kit, trigger to first flow log line (median): **{r['ratio_launcher_kit']:.3f}** — target ≤ "
        f"{LAUNCHER_RATIO}: {verdict(r['ratio_launcher_kit'] <= LAUNCHER_RATIO)}.",
        f"- {OTHER} / kit, trigger to Running (median): **{r['ratio_other_kit']:.2f}** "
        f"({by_method(r)[OTHER]['running_median']:.2f} s on Prefect {r['other_prefect']}, "
        f"{by_method(r)['kit']['running_median']:.2f} s on {r['default_prefect']}), the same worker settings, pull "
        "steps and server: what the worker's and the run's Prefect release alone change in a run's start.",
        "- A worker's poll interval adds on average half of itself (5 s with Prefect's 10 s, 0.5 s with the demo's "
        "1 s; the role's default is 2 s, which halves the API's polling load for a slower start); most of the rest "
        "is the flow-run process starting Python and importing Prefect.",
        f"- The launcher takes {r['kit_first_log_median'] - r['launcher_first_log_median']:.2f} s off the kit's median "
        "(Python and Prefect's imports). *Pickup to first log* starts at the run's PENDING state, when a worker has "
        "claimed it: the poll wait is out of it. With the launcher it is mostly the worker's own submission of the run, "
        "the pull steps (`prefect-checkout` through a shell step) and the engine's API calls (reading the run, "
        "proposing RUNNING), each a round trip to the server; the fork itself takes a few milliseconds.",
        "- The seconds follow the speed of a core (the machine line's python loop): compare runs of other days by "
        "their ratios, which this run measures side by side.",
        "",
        machine_line(facts),
    ]
    return "\n".join(lines)


def panel(r: dict) -> dict:
    """The chart's panel: trigger to Running and to the first flow log line, medians side by side."""
    return {"title": "latency: trigger to Running and to the first flow log line (median s)",
            "labels": [row["method"] for row in r["rows"]], "stacked": False,
            "series": {"Running": [row["running_median"] for row in r["rows"]],
                       "first log line": [row["first_log_median"] for row in r["rows"]]}}
