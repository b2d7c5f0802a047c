"""Each pinned Prefect set really serves: the servers the tests and the demo rely on start."""

import json
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def test_pinned_server_starts_and_is_healthy(versioned_prefect_server):
    assert versioned_prefect_server.get("/health") is True


def test_server_is_the_pinned_version(prefect_install, versioned_prefect_server):
    assert versioned_prefect_server.get("/admin/version") == prefect_install.version


def test_server_database_works(versioned_prefect_server):
    # A read that goes through the SQLite database, not just the health route.
    req = urllib.request.Request(
        versioned_prefect_server.url + "/work_pools/filter", data=b"{}", method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert isinstance(json.loads(resp.read()), list)
