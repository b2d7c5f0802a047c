"""The operations scenario's helper: deployments, queued runs, and the pool sampler.

    ops.py [--pool NAME] COMMAND   in pool NAME instead of "ops" (the faults scenario's "faults")

    ops.py reset                   delete pool "ops" if an earlier attempt left it (with its queues;
                                   runs an aborted attempt left RUNNING then hold none of its slots)
    ops.py deploy                  the deployments nap/ops and hello/ops in pool "ops"
    ops.py queue N SECONDS TAG     create N runs of nap/ops (idempotency keys TAG-i)
    ops.py sample FILE             every 0.5 s append {"t", "limit", "running"} for pool "ops"
                                   to FILE (JSON lines) until killed

Used by prepare.yml (before migrate.yml converges the hosts) and by tests/, and by the
faults scenario.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from prefect_api import api  # noqa: E402

POOL = "ops"
PULL_STEPS = [
    {"prefect.deployments.steps.run_shell_script": {
        "id": "checkout",
        "script": "prefect-checkout --repo flows --ref main --run-id {{ $PREFECT__FLOW_RUN_ID }}"}},
    {"prefect.deployments.steps.set_working_directory": {"directory": "{{ checkout.stdout }}"}},
]
DEPLOYMENTS = {"nap": "flows/nap.py:nap", "hello": "flows/hello.py:hello"}


def reset(pool: str = POOL) -> None:
    import urllib.error

    try:
        api(f"/work_pools/{pool}", method="DELETE")
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise


def deploy(pool: str = POOL) -> dict[str, str]:
    ids = {}
    for flow_name, entrypoint in DEPLOYMENTS.items():
        flow_id = api("/flows/", {"name": flow_name})["id"]
        ids[flow_name] = api("/deployments/", {
            "name": pool, "flow_id": flow_id, "work_pool_name": pool, "entrypoint": entrypoint,
            "pull_steps": PULL_STEPS, "enforce_parameter_schema": False,
            "job_variables": {"env": {"PREFECT_RUNNER_AUTO_INSTALL_DEPENDENCIES": "false"}},
        })["id"]
    return ids


def queue(count: int, seconds: float, tag: str, pool: str = POOL) -> list[str]:
    deployment = api(f"/deployments/name/nap/{pool}")["id"]
    return [api(f"/deployments/{deployment}/create_flow_run",
                {"parameters": {"seconds": seconds}, "idempotency_key": f"{tag}-{i}"})["id"]
            for i in range(count)]


def sample(out: Path, pool: str = POOL) -> None:
    with out.open("a") as f:
        while True:
            try:
                limit = api(f"/work_pools/{pool}")["concurrency_limit"]
                running = api("/flow_runs/count", {"work_pools": {"name": {"any_": [pool]}},
                                                   "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}}})
                f.write(json.dumps({"t": time.time(), "limit": limit, "running": running}) + "\n")
                f.flush()
            except Exception as exc:  # the server may be busy for a moment; keep sampling
                f.write(json.dumps({"t": time.time(), "error": str(exc)[:200]}) + "\n")
            time.sleep(0.5)


def main(argv: list[str]) -> int:
    pool = POOL
    if argv[:1] == ["--pool"] and len(argv) >= 2:
        pool, argv = argv[1], argv[2:]
    if argv[:1] == ["reset"]:
        reset(pool)
    elif argv[:1] == ["deploy"]:
        print(json.dumps(deploy(pool)))
    elif argv[:1] == ["queue"] and len(argv) == 4:
        print(json.dumps(queue(int(argv[1]), float(argv[2]), argv[3], pool)))
    elif argv[:1] == ["sample"] and len(argv) == 2:
        sample(Path(argv[1]), pool)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
