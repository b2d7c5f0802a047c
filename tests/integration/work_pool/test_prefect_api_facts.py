"""Facts about each supported Prefect (3.9.1 and 3.8.8) that the work pool modules rely on,
checked against that release's own server and code rather than trusted from documentation."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from work_pool_helpers import Api

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def versioned_api(versioned_prefect_server) -> Api:
    return Api(versioned_prefect_server.url)


def test_server_offers_the_process_workers_default_template(prefect_install, versioned_api):
    installed = json.loads(prefect_install.run_python(
        "import json; from prefect.workers.process import ProcessWorker; "
        "print(json.dumps(ProcessWorker.get_default_base_job_template()))"))
    served = versioned_api.default_template("process")
    assert served["job_configuration"] == installed["job_configuration"]
    assert set(served["variables"]["properties"]) == set(installed["variables"]["properties"])
    assert served["job_configuration"]["command"] == "{{ command }}"
    assert served["job_configuration"]["env"] == "{{ env }}"


def test_process_worker_runs_a_configured_command_as_the_engine(prefect_install):
    """With a `command`, the worker starts it as is; the engine reads the run id from the env."""
    sources = json.loads(prefect_install.run_python(
        "import inspect, json, prefect.engine, prefect.workers.process as process; "
        "print(json.dumps([inspect.getsource(process.ProcessWorker.run), inspect.getsource(prefect.engine)]))"))
    run_source, engine_source = sources
    assert "if configuration._command_configured:" in run_source
    assert "EngineCommandStarter(" in run_source
    engine_main = engine_source.split('if __name__ == "__main__":', 1)[1]
    assert 'os.environ.get("PREFECT__FLOW_RUN_ID")' in engine_main


def test_server_accepts_any_pool_type_so_the_module_must_check(versioned_api, unique):
    name = unique("anytype")
    created = versioned_api.call("POST", "/work_pools/", {"name": name, "type": "no-such-worker"})
    try:
        assert created["type"] == "no-such-worker"
    finally:
        versioned_api.call("DELETE", "/work_pools/" + name)


def test_patch_stores_zero_and_clears_with_null(versioned_api, unique):
    api, name = versioned_api, unique("limits")
    api.call("POST", "/work_pools/", {"name": name, "type": "process", "concurrency_limit": 2})
    api.call("PATCH", "/work_pools/" + name, {"concurrency_limit": 0})
    assert api.pool(name)["concurrency_limit"] == 0
    api.call("PATCH", "/work_pools/" + name, {"concurrency_limit": None})
    assert api.pool(name)["concurrency_limit"] is None
    api.call("PATCH", "/work_pools/" + name, {"description": "x"})  # fields left out stay as they are
    assert api.pool(name)["concurrency_limit"] is None
    api.call("DELETE", "/work_pools/" + name)


def test_cli_update_sets_a_zero_limit(prefect_install, versioned_prefect_server, versioned_api, unique, tmp_path):
    """design.md once said `work-pool update --concurrency-limit 0` is ignored; it is not.
    (What `update` cannot do is clear a limit: that takes `clear-concurrency-limit`.)"""
    name = unique("cli")
    versioned_api.call("POST", "/work_pools/", {"name": name, "type": "process", "concurrency_limit": 3})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=versioned_prefect_server.url, PREFECT_HOME=str(tmp_path))
    subprocess.run([str(prefect_install.prefect), "work-pool", "update", name, "--concurrency-limit", "0"],
                   check=True, capture_output=True, env=env, timeout=120)
    assert versioned_api.pool(name)["concurrency_limit"] == 0
    versioned_api.call("DELETE", "/work_pools/" + name)
