"""Bad inputs give one clear error and change nothing, from the modules and from the role."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from work_pool_helpers import Recorder, free_port, run_steps, task

pytestmark = pytest.mark.integration

SECRET = "pnu_this-key-is-wrong-0123456789"


def one_clear_failure(run) -> str:
    """The run failed in exactly one place, with a one-line message and no traceback."""
    assert run.rc != 0, run.stdout[-2000:]
    failures = run.failures
    assert len(failures) == 1, [f.get("msg") for f in failures]
    msg = failures[0]["msg"]
    assert "\n" not in msg.strip(), msg
    assert "Traceback" not in run.stdout + run.stderr
    assert "MODULE FAILURE" not in msg
    return msg


def closed_port_url() -> str:
    return "http://127.0.0.1:%d/api" % free_port()  # nothing listens there once the probe socket is closed


MODULE_CASES = {
    "unknown pool type": (
        "prefect_work_pool", {"type": "nonsense"},
        r"^Unknown work pool type 'nonsense': the Prefect API at http://127\.0\.0\.1:\d+/api knows .*\bprocess\b"),
    "negative pool limit": (
        "prefect_work_pool", {"concurrency_limit": -1},
        r"^work pool bad-\w+: concurrency_limit must be 0 or more \(0 lets nothing run; null means no limit\), got -1\.$"),
    "negative queue limit": (
        "prefect_work_queue", {"pool": "etl", "concurrency_limit": -2},
        r"^work pool etl, queue bad-\w+: concurrency_limit must be 0 or more \(0 lets nothing run; .*\), got -2\.$"),
    "negative global limit": (
        "prefect_global_concurrency_limit", {"limit": -1},
        r"^global concurrency limit bad-\w+: limit must be 0 or more \(0 lets nothing take a slot\), got -1\.$"),
    "template without variables": (
        "prefect_work_pool", {"base_job_template": {"job_configuration": {"command": "python -m prefect.engine"}}},
        r"must contain both a job_configuration key and a variables key; missing or empty: variables\.$"),
    "unknown job variable": (
        "prefect_work_pool", {"job_variables": {"comand": "python"}},
        r"job_variables of work pool '[^']+' sets comand, which the process base job template does not declare"),
    "type of an existing pool": (
        "prefect_work_pool", {"name": "{existing}", "type": "docker"},
        r"already exists with type 'process', not 'docker'; the type of a pool cannot change"),
    "api url without scheme": (
        "prefect_work_pool", {"api_url": "127.0.0.1:4200/api"},
        r"^The Prefect API URL '127\.0\.0\.1:4200/api' has no http:// or https:// scheme"),
    "wrong api key": (
        "prefect_work_pool", {"api_url": "{rejecting}", "api_key": SECRET},
        r"^The Prefect API at http://127\.0\.0\.1:\d+/api rejected the API key \(HTTP 401 Unauthorized\)"),
    "unreachable server": (
        "prefect_work_pool", {"api_url": "{closed}", "retries": 1},
        r"^Cannot reach the Prefect API at http://127\.0\.0\.1:\d+/api: .*refused.* \(tried 2 times\)\.$"),
}


@pytest.fixture(scope="module")
def module_runs(ansible_env, _proxy, api, tmp_path_factory):
    """Every bad module call as one task of one playbook; (steps by case, snapshots before and after)."""
    rejecting = Recorder(upstream="http://127.0.0.1:9", answer_all=401).start()
    existing = "existing-" + uuid.uuid4().hex[:8]
    api.call("POST", "/work_pools/", {"name": existing, "type": "process"})
    values = {"{existing}": existing, "{rejecting}": rejecting.url, "{closed}": closed_port_url()}
    tasks = []
    for name, extra, _ in MODULE_CASES.values():
        args = {"api_url": _proxy.url, "name": "bad-" + uuid.uuid4().hex[:8]}
        args.update({k: values.get(v, v) if isinstance(v, str) else v for k, v in extra.items()})
        tasks.append(task(name, **args))
    before = api.snapshot()
    try:
        done = run_steps(ansible_env, _proxy, tmp_path_factory.mktemp("bad"), *tasks)
    finally:
        rejecting.stop()
    yield dict(zip(MODULE_CASES, done)), before, api.snapshot(), rejecting.requests
    _proxy.clear()


@pytest.mark.reliability("bad input", subject="prefect_work_pool modules",
                         title="The module fails with one line, no traceback and no secret; nothing is written to the API.")
@pytest.mark.parametrize("case", list(MODULE_CASES))
def test_module_bad_input(case, module_runs):
    runs, before, after, rejected = module_runs
    step = runs[case]
    assert step.result.get("failed"), step.result
    msg = step.result["msg"]
    assert "\n" not in msg.strip() and "Traceback" not in msg and "MODULE FAILURE" not in msg, msg
    assert re.search(MODULE_CASES[case][2], msg), msg
    assert SECRET not in json.dumps(step.result)
    assert step.writes == []
    assert after == before
    if case == "wrong api key":
        assert rejected and {r.authorization for r in rejected} == {"Bearer " + SECRET}


def role_vars(proxy_url: str, *pools: dict) -> dict:
    return {"prefect_work_pool_api_url": proxy_url, "prefect_work_pool_pools": list(pools)}


ROLE_CASES = {
    # All problems of the inventory in one message, before the API is asked anything.
    "limits and template": (
        lambda url, ok: role_vars(
            url, ok,
            {"name": "neg", "concurrency_limit": -1, "queues": [{"name": "q", "priority": 0}]},
            {"name": "tmpl", "base_job_template": {"job_configuration": {"command": "x"}}},
            {"name": "warm", "launcher": True, "venv": "/opt/venv"},
        ),
        r"work pool neg: concurrency_limit must be 0 or more \(0 lets nothing run; null means no limit\), got -1; "
        r"work pool neg, queue q: priority must be 1 or more .*; "
        r"work pool tmpl: base_job_template must contain both a job_configuration key and a variables key; "
        r"missing or empty: variables; "
        r"work pool warm: launcher needs venv to be an environment's current link, <envs>/<env>/current, got /opt/venv\.$",
    ),
    # What only the server knows, still before any change, in one message.
    "unknown pool type and job variable": (
        lambda url, ok: role_vars(url, ok, {"name": "odd", "type": "nonsense"},
                                  {"name": "typo", "job_variables": {"comand": "python"}}),
        r"^work pool odd: unknown type nonsense \(the server offers .*\bprocess\b.*\); "
        r"work pool typo: job_variables sets comand, which its process base job template does not declare "
        r"\(it has command, env, .*\)\.$",
    ),
    "api url without scheme": (
        lambda url, ok: dict(role_vars(url, ok), prefect_work_pool_api_url=url.split("://", 1)[1]),
        r"^The Prefect API URL \"127\.0\.0\.1:\d+/api\" has no http:// or https:// scheme and host",
    ),
    "wrong api key": (
        lambda url, ok: dict(role_vars("{rejecting}", ok), prefect_work_pool_api_key=SECRET),
        r"^The Prefect API at http://127\.0\.0\.1:\d+/api rejected the API key \(HTTP 401 Unauthorized\)",
    ),
}


@pytest.mark.reliability("bad input", subject="prefect_work_pool role",
                         title="One task fails with every problem of the inventory in one line, before any change; "
                               "nothing is written to the API.")
@pytest.mark.parametrize("case", list(ROLE_CASES))
def test_role_bad_input(case, playbook, proxy, api, unique, request: pytest.FixtureRequest):
    make, pattern = ROLE_CASES[case]
    ok = {"name": unique("fine"), "concurrency_limit": 1}  # valid, listed first: must not be made either
    variables = make(proxy.url, ok)
    if variables["prefect_work_pool_api_url"] == "{rejecting}":
        variables["prefect_work_pool_api_url"] = request.getfixturevalue("rejecting_server").url
    before = api.snapshot()

    run = playbook(variables)

    msg = one_clear_failure(run)
    assert re.search(pattern, msg), msg
    assert SECRET not in run.stdout + run.stderr
    assert proxy.writes() == []
    assert api.snapshot() == before
    assert ok["name"] not in api.pools()
