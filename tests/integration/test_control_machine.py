"""scripts/bootstrap and scripts/build-image are idempotent on a set-up machine."""

import os
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_second_bootstrap_changes_nothing():
    stamp = REPO / ".venv/.prefect-fleet-stamp"
    subprocess.run([REPO / "scripts/bootstrap"], check=True, capture_output=True)
    before = (stamp.stat().st_mtime_ns, Path("/var/lib/dpkg/status").stat().st_mtime_ns)
    started = time.monotonic()
    result = subprocess.run([REPO / "scripts/bootstrap"], capture_output=True, text=True)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "system packages present" in result.stderr
    assert "python environment .venv up to date" in result.stderr
    assert (stamp.stat().st_mtime_ns, Path("/var/lib/dpkg/status").stat().st_mtime_ns) == before
    assert elapsed < 30, f"a no-op bootstrap took {elapsed:.1f}s"


def test_build_image_skips_an_image_of_the_same_recipe():
    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "scripts/lib/containers.conf")}
    subprocess.run([REPO / "scripts/build-image"], check=True, capture_output=True, env=env)
    result = subprocess.run([REPO / "scripts/build-image"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stderr
