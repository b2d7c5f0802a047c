"""What `prefect flow serve` records about where a served flow's code is, on each supported
Prefect: the kit's served-flow units depend on it (roles/prefect_worker/README.md)."""

import os
import subprocess
import textwrap

import pytest

pytestmark = pytest.mark.integration

SERVE = textwrap.dedent("""
    from prefect.deployments.runner import RunnerDeployment
    deployment = RunnerDeployment.from_entrypoint("flow.py:hello", name="served")
    deployment.apply()
""")


def apply_from(directory, server, python):
    (directory / "flow.py").write_text("from prefect import flow\n\n\n@flow\ndef hello():\n    return 1\n")
    env = {**os.environ, "PREFECT_API_URL": server.url, "PREFECT_HOME": str(directory / ".prefect")}
    result = subprocess.run([str(python), "-c", SERVE], cwd=directory, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return server.get("/deployments/name/hello/served")["path"]


def test_serving_again_from_elsewhere_keeps_the_first_path(prefect_install, versioned_prefect_server, tmp_path):
    """The first serve records its working directory as the deployment's path; serving
    the same deployment again from another directory updates the deployment but not its
    path (RunnerDeployment._update leaves the private _path out). So a served flow must
    keep one working directory, the same on every host that serves it: runs load their
    code from that path."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert apply_from(first, versioned_prefect_server, prefect_install.python) == str(first)
    assert apply_from(second, versioned_prefect_server, prefect_install.python) == str(first)
