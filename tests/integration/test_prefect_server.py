"""The pinned Prefect set really serves: the server the tests and the demo rely on starts."""

import importlib.metadata

import pytest

pytestmark = pytest.mark.integration


def test_pinned_server_starts_and_is_healthy(prefect_server):
    assert prefect_server.get("/health") is True


def test_server_is_the_pinned_version(prefect_server):
    assert prefect_server.get("/admin/version") == importlib.metadata.version("prefect") == "3.8.8"


def test_server_database_works(prefect_server):
    # A read that goes through the SQLite database, not just the health route.
    import json
    import urllib.request

    req = urllib.request.Request(
        prefect_server.url + "/work_pools/filter", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert isinstance(json.loads(resp.read()), list)
