"""The kit's pull steps, end to end on this machine, against the pinned Prefect.

A real Prefect server (the `prefect_server` fixture), a real `prefect worker start --type
process` subprocess polling every second, and a real git origin served by `git daemon`
on 127.0.0.1 holding the example flow repository (examples/flows). Its deployments are
made by `prefect deploy --all` from a prefect.yaml built from the example's own: same
pull steps, with only the pool changed and a `command` added (this venv's python; on the
hosts the pool's base job template gives it). `prefect-checkout` resolves on the
worker's PATH (roles/prefect_git_mirror/files) and keeps its mirror, run directories
and locks in a temporary host tree, configured through PREFECT_CHECKOUT_* variables in
the worker's environment, which the worker passes on to each flow-run process.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from checkout_helpers import GitDaemon, Host, Origin, base_env, git, head
from processes import stop_group

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "flows"
CHECKOUT_BIN = REPO / "roles" / "prefect_git_mirror" / "files"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

# The kit's pull steps, exactly as design.md, the role READMEs and examples/flows show them.
KIT_PULL = [
    {"prefect.deployments.steps.run_shell_script": {
        "id": "checkout",
        "script": "prefect-checkout --repo flows --ref main --run-id {{ $PREFECT__FLOW_RUN_ID }}",
    }},
    {"prefect.deployments.steps.set_working_directory": {"directory": "{{ checkout.stdout }}"}},
]
FLOW_RUN_ID_SCRIPT = "prefect-checkout --repo flows --ref main --run-id {{ flow_run.id }}"


class Api:
    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        # Like Prefect's own client, retry 429/503: the SQLite-backed server answers 503
        # when its database is busy (seen on a loaded CI machine).
        for attempt in range(6):
            req = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=15) as resp:
                    raw = resp.read()
                return json.loads(raw) if raw else None
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 503) or attempt == 5:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def run(self, run_id: str) -> dict:
        return self.call("GET", f"/flow_runs/{run_id}")

    def trigger(self, deployment_id: str) -> str:
        return self.call("POST", f"/deployments/{deployment_id}/create_flow_run", {})["id"]

    def logs(self, run_id: str) -> list[str]:
        rows = self.call("POST", "/logs/filter", {
            "logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200})
        return [row["message"] for row in rows]


@dataclass
class Fleet:
    """One worker host on this machine, its pool and the example's deployments."""

    api: Api
    host: Host
    origin: Origin
    pool: str
    deployments: dict[str, dict]  # deployment name -> the deployment as the server stores it
    worker_log: Path

    def worker_tail(self, chars: int = 6000) -> str:
        return self.worker_log.read_text(errors="replace")[-chars:]

    def wait(self, run_ids: list[str], timeout: float = 90) -> dict[str, dict]:
        """Wait until every run is in a final state; return them by id."""
        deadline = time.monotonic() + timeout
        runs: dict[str, dict] = {}
        while time.monotonic() < deadline:
            runs = {run_id: self.api.run(run_id) for run_id in run_ids}
            if all(run["state_type"] in FINAL for run in runs.values()):
                return runs
            time.sleep(0.5)
        states = {run_id: run["state_type"] for run_id, run in runs.items()}
        pytest.fail(f"runs not final after {timeout}s: {states}\nworker log:\n{self.worker_tail()}")

    def logged(self, run_id: str, pattern: str, timeout: float = 20) -> re.Match:
        """The first match of pattern in the run's logs (which can reach the API just after
        the run's final state: the flow-run process flushes them as it exits)."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.api.logs(run_id)
            for message in messages:
                if found := re.search(pattern, message):
                    return found
            if time.monotonic() > deadline:
                pytest.fail(f"no log of run {run_id} matches {pattern!r}:\n" + "\n".join(messages))
            time.sleep(0.5)


def deploy_file(pool: str, python: Path) -> dict:
    """The example's prefect.yaml for this machine, plus a deployment using {{ flow_run.id }}."""
    config = yaml.safe_load((EXAMPLE / "prefect.yaml").read_text())
    assert config["pull"] == KIT_PULL, "examples/flows/prefect.yaml must use the kit's pull steps"
    deployments = []
    for spec in config["deployments"]:
        spec = copy.deepcopy(spec)  # the example shares one work_pool mapping (a YAML alias)
        variables = spec["work_pool"]["job_variables"]
        # The command is the pool's (the kit's base job template): the example sets none.
        assert variables == {"env": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}}
        spec["work_pool"]["name"] = pool
        variables["command"] = f"{python} -m prefect.engine"
        deployments.append(spec)
    hello = next(spec for spec in deployments if spec["name"] == "hello")
    bad = copy.deepcopy(hello)
    bad["name"] = "hello-flow-run-id"
    bad["pull"] = copy.deepcopy(KIT_PULL)
    bad["pull"][0]["prefect.deployments.steps.run_shell_script"]["script"] = FLOW_RUN_ID_SCRIPT
    deployments.append(bad)
    config["deployments"] = deployments
    return config


def stop(proc: subprocess.Popen) -> None:
    stop_group(proc, signal.SIGINT, timeout=20)


@pytest.fixture(scope="module")
def fleet(prefect_install, versioned_prefect_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Server, worker, deploying client and flow runs all of one supported Prefect release."""
    prefect_server, venv_bin = versioned_prefect_server, prefect_install.bin
    tmp = tmp_path_factory.mktemp("pull-steps")
    api = Api(prefect_server.url)

    # The flow repository: examples/flows committed to an origin served over git://.
    daemon = GitDaemon(tmp / "served")
    daemon.start()
    try:
        origin = Origin.create(daemon.base / "flows.git", tmp / "work-flows", url=daemon.url("flows"))
        files = {str(p.relative_to(EXAMPLE)): p.read_text() for p in sorted(EXAMPLE.rglob("*"))
                 if p.is_file() and "__pycache__" not in p.parts}
        origin.commit("main", files, message="the example flow repository")
        host = Host(tmp / "host", {"flows": origin.url})

        pool = f"pull-steps-{uuid.uuid4().hex[:8]}"
        api.call("POST", "/work_pools/", {"name": pool, "type": "process"})

        # Deployments, the way users make them: prefect deploy with a prefect.yaml, run
        # from a copy of the repository (entrypoints are relative to it).
        source = tmp / "deploy-src"
        shutil.copytree(origin.work, source, ignore=shutil.ignore_patterns(".git"))
        prefect_file = tmp / "prefect.yaml"
        prefect_file.write_text(yaml.safe_dump(deploy_file(pool, prefect_install.python), sort_keys=False))
        client_env = {k: v for k, v in base_env().items() if not k.startswith("PREFECT")}
        client_env.update(PREFECT_API_URL=prefect_server.url, PREFECT_HOME=str(tmp / "client-home"))
        deployed = subprocess.run(
            [str(venv_bin / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
            cwd=source, env=client_env, capture_output=True, text=True, timeout=120,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        deployments = {}
        for flow_name, name in (("hello", "hello"), ("report", "report"), ("hello", "hello-flow-run-id")):
            deployments[name] = api.call("GET", f"/deployments/name/{flow_name}/{name}")

        # The worker host: prefect-checkout on PATH, its directories in the host tree,
        # every checkout fetching first (max age 0) so pushes are seen at once.
        worker_log = tmp / "worker.log"
        worker_env = {k: v for k, v in base_env().items() if not k.startswith("PREFECT")}
        worker_env.update(
            PATH=f"{CHECKOUT_BIN}:{venv_bin}:{worker_env.get('PATH', '/usr/bin:/bin')}",
            PREFECT_API_URL=prefect_server.url,
            PREFECT_HOME=str(tmp / "worker-home"),
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_CHECKOUT_CONFIG=str(host.config),
            PREFECT_CHECKOUT_MIRRORS_DIR=str(host.mirrors),
            PREFECT_CHECKOUT_RUNS_DIR=str(host.runs),
            PREFECT_CHECKOUT_LOCKS_DIR=str(host.locks),
            PREFECT_CHECKOUT_MAX_AGE="0",
        )
        with worker_log.open("w") as out:
            worker = subprocess.Popen(
                [str(venv_bin / "prefect"), "worker", "start", "--pool", pool, "--type", "process",
                 "--name", f"{pool}-worker"],
                cwd=tmp, env=worker_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            yield Fleet(api, host, origin, pool, deployments, worker_log)
        finally:
            stop(worker)
            api.call("DELETE", f"/work_pools/{pool}")  # the server is shared with other tests
    finally:
        daemon.stop()


TEMPLATING = """
import json, os, sys
from prefect.utilities.templating import apply_values
inputs = {"script": "prefect-checkout --run-id {{ flow_run.id }} --run-id {{ $PREFECT__FLOW_RUN_ID }}"}
os.environ.pop("PREFECT__FLOW_RUN_ID", None)
deploy_unset = apply_values(inputs, {}, remove_notset=False)
os.environ["PREFECT__FLOW_RUN_ID"] = sys.argv[1]
print(json.dumps({"deploy_unset": deploy_unset, "deploy_set": apply_values(inputs, {}, remove_notset=False),
                  "run": apply_values(apply_values(inputs, {}), os.environ)}))
"""


def test_pull_step_placeholders_as_the_pinned_prefect_templates_them(prefect_install):
    """The templating the two placeholders go through, in each supported release's code.

    Run time: run_step (prefect/deployments/steps/core.py) applies
    apply_values(inputs, upstream_outputs) and then apply_values(inputs, os.environ).
    upstream_outputs holds only the earlier steps' outputs (the engine calls
    run_steps(deployment.pull_steps) with nothing to start from), so a standard
    placeholder no step produced, like {{ flow_run.id }}, is NotSet and, with text
    around it, replaced by "" (remove_notset); {{ $NAME }} is read from os.environ.

    Deploy time: prefect deploy (prefect/cli/deploy/_core.py) templates pull steps with
    apply_values(pull_steps, step_outputs, remove_notset=False): a missing value leaves
    the placeholder as written, but an env placeholder is read from the deploying
    process's environment whatever the values, so deploying with PREFECT__FLOW_RUN_ID
    set (from inside a flow run) would bake that one id into the deployment.
    """
    run_id = str(uuid.uuid4())
    env = {k: v for k, v in base_env().items() if not k.startswith("PREFECT")}
    result = json.loads(subprocess.run([str(prefect_install.python), "-c", TEMPLATING, run_id], env=env,
                                       capture_output=True, text=True, check=True, timeout=120).stdout)
    inputs = {"script": "prefect-checkout --run-id {{ flow_run.id }} --run-id {{ $PREFECT__FLOW_RUN_ID }}"}
    assert result["deploy_unset"] == inputs  # deploy time: kept
    assert result["deploy_set"] == {  # deploy time, env var set: baked in
        "script": f"prefect-checkout --run-id {{{{ flow_run.id }}}} --run-id {run_id}"}
    assert result["run"] == {  # run time
        "script": f"prefect-checkout --run-id  --run-id {run_id}"}


def test_kit_pull_steps_give_the_run_its_own_checkout(fleet: Fleet):
    """The kit's shape: the run completes in RUNS/<flow-run-id>/flows at main's commit."""
    # prefect deploy stored the pull steps as written: nothing was templated at deploy time.
    assert fleet.deployments["hello"]["pull_steps"] == KIT_PULL
    assert fleet.deployments["report"]["pull_steps"] == KIT_PULL
    assert fleet.deployments["hello"]["job_variables"]["env"] == {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}

    run_id = fleet.api.trigger(fleet.deployments["hello"]["id"])
    run = fleet.wait([run_id])[run_id]
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{fleet.worker_tail()}"

    expected = (fleet.host.runs / run_id / "flows").resolve()
    cwd = Path(fleet.logged(run_id, r"^working directory: (.+)$").group(1))
    assert cwd == expected
    assert fleet.logged(run_id, r"^flow run id: (\S+)$").group(1) == run_id
    # The worktree is at the commit main resolved to: the origin's tip, as the mirror has it.
    assert head(cwd) == fleet.origin.tip("main")
    assert git("--git-dir", fleet.host.mirror("flows"), "rev-parse", "refs/heads/main") == fleet.origin.tip("main")
    assert (cwd / "flows" / "hello.py").read_text() == (EXAMPLE / "flows" / "hello.py").read_text()


def test_flow_run_id_placeholder_is_emptied_and_the_checkout_fails(fleet: Fleet):
    """A pull step written with {{ flow_run.id }} instead of {{ $PREFECT__FLOW_RUN_ID }}.

    On Prefect 3.8.8 and 3.9.1 `prefect deploy` stores it as written, and at run time the
    flow-run process templates the step with only the earlier steps' outputs, where
    there is no `flow_run`: the placeholder is silently replaced by an empty string
    (prefect/utilities/templating/__init__.py, apply_values, remove_notset). The script
    becomes `prefect-checkout ... --run-id ` and prefect-checkout rejects the missing
    value (usage error, exit 2), so run_shell_script raises, the flow is never loaded,
    the engine exits non-zero and the worker reports the run CRASHED. No run directory
    is made. If a Prefect upgrade starts to know {{ flow_run.id }} in pull steps, this
    test fails and design.md and the READMEs must be updated.

    Also seen on 3.8.8 and 3.9.1: for a CRASHED run the process worker itself loads the flow to
    run its on_crashed hooks (prefect/workers/process.py: resolve_flow=
    load_flow_from_flow_run), which runs the deployment's pull steps again inside the
    worker process (asserted below through the worker's warning). The worker has no
    PREFECT__FLOW_RUN_ID in its environment, so with the kit's shape that second
    checkout gets an empty run id too and fails the same way (inferred from the code,
    not run here): on_crashed hooks of kit deployments do not run, and the worker only
    logs a warning and goes on.
    """
    deployment = fleet.deployments["hello-flow-run-id"]
    assert deployment["pull_steps"][0]["prefect.deployments.steps.run_shell_script"]["script"] == FLOW_RUN_ID_SCRIPT

    run_id = fleet.api.trigger(deployment["id"])
    run = fleet.wait([run_id])[run_id]
    assert run["state_type"] == "CRASHED", f"{run['state']}\n{fleet.worker_tail()}"
    error = fleet.logged(run_id, r"`run_shell_script` failed with error code (\d+):(.*)")
    assert error.group(1) == "2"
    assert "argument --run-id: expected one argument" in error.group(2)
    assert not (fleet.host.runs / run_id).exists()
    fleet.logged(run_id, r"^Runner failed to retrieve flow to execute on_crashed hooks")
    assert not any(m.startswith("working directory:") for m in fleet.api.logs(run_id))


def test_concurrent_runs_each_get_their_own_directory(fleet: Fleet):
    """4 runs at once, after a push to main: all complete, each in its own directory,
    all at the new commit (each checkout resolves main when its run starts)."""
    new = fleet.origin.commit("main", {"NOTES.md": f"pushed after deploying {time.time_ns()}\n"})
    run_ids = [fleet.api.trigger(fleet.deployments["hello"]["id"]) for _ in range(4)]
    runs = fleet.wait(run_ids, timeout=100)
    assert {run_id: run["state_type"] for run_id, run in runs.items()} == dict.fromkeys(run_ids, "COMPLETED"), \
        fleet.worker_tail()
    directories = {run_id: Path(fleet.logged(run_id, r"^working directory: (.+)$").group(1)) for run_id in run_ids}
    assert len(set(directories.values())) == 4
    for run_id, directory in directories.items():
        assert directory == (fleet.host.runs / run_id / "flows").resolve()
        assert head(directory) == new
        assert (directory / "NOTES.md").exists()
