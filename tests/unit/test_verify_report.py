"""verify.yml's judgement (the filter prefect_fleet.fleet.verify_rows and verify_table): each
registered result, healthy or not, becomes the row a user reads at 3 a.m. The playbook itself
runs against real hosts in molecule/fleet."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collection_helpers import collection_module  # noqa: E402

verify = collection_module("plugins.filter.verify")

DF_OK = {"rc": 0, "stdout_lines": ["Filesystem 1024-blocks Used Available Capacity Mounted on",
                                   "overlay 10485760 2097152 8388608 20% /srv/prefect"]}


def healthy(**overrides):
    results = {
        "clock": {"stdout": "1000000"},
        "api": {"results": [{"item": "fleet", "status": 200, "json": [
            {"name": "w1-a", "status": "ONLINE", "last_heartbeat_time": "2026-12-04T22:00:00Z"},
            {"name": "w2-a", "status": "ONLINE"}]}]},
        "health": {"results": [{"item": {"kind": "worker", "name": "a"}, "status": 200,
                                "url": "http://127.0.0.1:8081/health"}]},
        "launcher_units": {"results": [{"item": {"env": "flows"}, "stdout": "active\n"}]},
        "launcher_sockets": {"results": [{"item": {"env": "flows"}, "stat": {"exists": True, "issock": True}}]},
        "mirrors": {"results": [{"item": {"name": "flows"}, "stat": {"exists": True, "mtime": 999950.7}}]},
        "imports": {"results": [{"item": {"name": "flows"}, "rc": 0, "stdout": "3.9.1\n"}]},
        "df": DF_OK,
    }
    results.update(overrides)
    return results


def rows(results, **kw):
    args = dict(host="w1", instances=[{"name": "a", "pool": "fleet"}], api_url="http://127.0.0.1:4200/api",
                mirror_max_age=130, root="/srv/prefect", min_free_percent="15", min_free_mb=1024)
    args.update(kw)
    return {row["check"]: (row["ok"], row["detail"]) for row in verify.verify_rows(results, **args)}


def test_a_healthy_host_passes_every_check_with_its_detail():
    assert rows(healthy()) == {
        "worker a online": (True, "w1-a ONLINE in pool fleet, last heartbeat 2026-12-04T22:00:00Z"),
        "worker a health": (True, "http://127.0.0.1:8081/health -> HTTP 200"),
        "launcher flows ready": (True, "prefect-launcher@flows active, socket present"),
        "mirror flows fresh": (True, "fetched 50s ago (max 130s)"),
        "env flows prefect": (True, "prefect 3.9.1"),
        "disk free": (True, "8192 MiB (80.0%) free on /srv/prefect (min 1024 MiB, 15%)"),
    }


def test_each_failure_names_what_is_off():
    long_error = "connection refused " * 10
    found = rows(healthy(
        api={"results": [{"item": "fleet", "status": 200, "json": [{"name": "w1-a", "status": "OFFLINE"}]}]},
        health={"results": [{"item": {"kind": "served", "name": "hello"}, "status": -1, "url": "http://x/health",
                             "msg": long_error}]},
        launcher_units={"results": [{"item": {"env": "flows"}, "stdout": "inactive"}]},
        launcher_sockets={"results": [{"item": {"env": "flows"}, "stat": {"exists": False}}]},
        mirrors={"results": [{"item": {"name": "flows"}, "stat": {"exists": True, "mtime": 999000}}]},
        imports={"results": [{"item": {"name": "flows"}, "rc": 1, "stderr": "Traceback\nModuleNotFoundError: prefect"}]},
        df={"rc": 0, "stdout_lines": ["h", "overlay 10485760 10000000 485760 95% /srv"]},
    ))
    assert found["worker a online"] == (False, "w1-a OFFLINE in pool fleet, last heartbeat never")
    ok, detail = found["served hello health"]
    assert not ok and detail.startswith("http://x/health -> connection refused") and detail.endswith("...")
    assert len(detail) <= len("http://x/health -> ") + 100
    assert found["launcher flows ready"] == (False, "prefect-launcher@flows inactive, socket missing: runs start without the launcher")
    assert found["mirror flows fresh"] == (False, "fetched 1000s ago (max 130s)")
    assert found["env flows prefect"] == (False, "ModuleNotFoundError: prefect")
    assert found["disk free"] == (False, "474 MiB (4.6%) free on /srv (min 1024 MiB, 15%)")


def test_what_the_api_and_the_host_could_not_answer():
    assert rows(healthy(), api_url="")["worker a online"] == (
        False, "no API URL: set prefect_worker_api_url or PREFECT_API_URL")
    assert rows(healthy(api={"results": [{"item": "fleet", "status": 404}]}))["worker a online"] == (
        False, "pool fleet: no such work pool")
    assert rows(healthy(api={"results": [{"item": "fleet", "status": 503, "msg": "Service Unavailable"}]}))[
        "worker a online"] == (False, "pool fleet: API answered HTTP 503 Service Unavailable")
    assert rows(healthy(api={"results": [{"item": "fleet", "status": 200, "json": []}]}))["worker a online"] == (
        False, "w1-a is not registered in pool fleet")
    assert rows(healthy(mirrors={"results": [{"item": {"name": "flows"}, "stat": {"exists": False}}]}))[
        "mirror flows fresh"] == (False, "never fetched: flows.git or its prefect-checkout-fetched stamp is missing")
    assert rows(healthy(clock={"stdout": "", "msg": "date: not found"}))["mirror flows fresh"] == (
        False, "cannot read the host clock: date: not found")
    assert rows(healthy(), mirror_max_age=0)["mirror flows fresh"] == (True, "fetched 50s ago (no age limit)")
    assert rows(healthy(imports={"results": [{"item": {"name": "flows"}, "rc": 1, "stderr": ""}]}))[
        "env flows prefect"] == (False, "failed")
    assert rows(healthy(df={"rc": 1, "stderr": "df: /srv/prefect: No such file or directory\n"}))["disk free"] == (
        False, "df /srv/prefect: df: /srv/prefect: No such file or directory")


def test_the_report_aligns_the_fleet_and_counts_failures_and_silent_hosts():
    table = verify.verify_table(["w1", "worker-two"], [
        [{"check": "disk free", "ok": True, "detail": "8192 MiB"}, {"check": "worker a online", "ok": False, "detail": "x"}],
        [],
    ])
    assert table["failed"] == 2
    assert table["lines"] == [
        "host       | check           | ok/FAIL | detail",
        "-----------+-----------------+---------+-------",
        "w1         | disk free       | ok      | 8192 MiB",
        "w1         | worker a online | FAIL    | x",
        "worker-two | reachable       | FAIL    | the host failed or was unreachable before its checks ran",
    ]
