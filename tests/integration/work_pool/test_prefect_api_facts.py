"""Facts about the pinned Prefect (3.8.8) that the work pool modules rely on, checked here
rather than trusted from documentation."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
PREFECT = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "prefect"


def test_server_offers_the_process_workers_default_template(api):
    from prefect.workers.process import ProcessWorker

    served = api.default_template("process")
    installed = ProcessWorker.get_default_base_job_template()
    assert served["job_configuration"] == installed["job_configuration"]
    assert set(served["variables"]["properties"]) == set(installed["variables"]["properties"])
    assert served["job_configuration"]["command"] == "{{ command }}"
    assert served["job_configuration"]["env"] == "{{ env }}"


def test_process_worker_runs_a_configured_command_as_the_engine():
    """With a `command`, the worker starts it as is; the engine reads the run id from the env."""
    import inspect

    import prefect.engine
    import prefect.workers.process as process

    run_source = inspect.getsource(process.ProcessWorker.run)
    assert "if configuration._command_configured:" in run_source
    assert "EngineCommandStarter(" in run_source
    engine_main = inspect.getsource(prefect.engine).split('if __name__ == "__main__":', 1)[1]
    assert 'os.environ.get("PREFECT__FLOW_RUN_ID")' in engine_main


def test_server_accepts_any_pool_type_so_the_module_must_check(api, unique):
    name = unique("anytype")
    created = api.call("POST", "/work_pools/", {"name": name, "type": "no-such-worker"})
    try:
        assert created["type"] == "no-such-worker"
    finally:
        api.call("DELETE", "/work_pools/" + name)


def test_patch_stores_zero_and_clears_with_null(api, unique):
    name = unique("limits")
    api.call("POST", "/work_pools/", {"name": name, "type": "process", "concurrency_limit": 2})
    api.call("PATCH", "/work_pools/" + name, {"concurrency_limit": 0})
    assert api.pool(name)["concurrency_limit"] == 0
    api.call("PATCH", "/work_pools/" + name, {"concurrency_limit": None})
    assert api.pool(name)["concurrency_limit"] is None
    api.call("PATCH", "/work_pools/" + name, {"description": "x"})  # fields left out stay as they are
    assert api.pool(name)["concurrency_limit"] is None
    api.call("DELETE", "/work_pools/" + name)


def test_cli_update_sets_a_zero_limit(prefect_server, api, unique, tmp_path):
    """design.md says `work-pool update --concurrency-limit 0` is ignored; on 3.8.8 it is not.
    (What `update` cannot do is clear a limit: that takes `clear-concurrency-limit`.)"""
    name = unique("cli")
    api.call("POST", "/work_pools/", {"name": name, "type": "process", "concurrency_limit": 3})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=prefect_server.url, PREFECT_HOME=str(tmp_path))
    subprocess.run([str(PREFECT), "work-pool", "update", name, "--concurrency-limit", "0"],
                   check=True, capture_output=True, env=env, timeout=120)
    assert api.pool(name)["concurrency_limit"] == 0
    api.call("DELETE", "/work_pools/" + name)
