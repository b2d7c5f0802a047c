"""prefect-venv: spec checks, generation identity, status and rollback (no installs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMAND = REPO / "roles/prefect_venv/files/prefect-venv"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(COMMAND), *args], capture_output=True, text=True)


def write_spec(tmp_path: Path, **overrides) -> Path:
    spec = {
        "name": "flows", "env_dir": str(tmp_path / "envs/flows"), "locks_dir": str(tmp_path / "locks"),
        "python": sys.executable, "installer": "uv", "uv": "/nonexistent/uv",
        "requirements": ["six  # a comment", "", "# only a comment"], "constraints": [], "imports": [],
    }
    spec.update(overrides)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    (tmp_path / "locks").mkdir(exist_ok=True)
    return path


def fake_generation(env_dir: Path, generation: str, built_at: str) -> None:
    gen = env_dir / generation
    gen.mkdir(parents=True)
    (gen / "prefect-fleet.json").write_text(json.dumps({"generation": generation, "built_at": built_at}))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"installer": "conda"}, "installer must be uv or pip"),
        ({"name": "../x"}, "bad environment name"),
        ({"requirements": ["# nothing"]}, "no requirements"),
        ({"python": "python3"}, "absolute path or a version"),
    ],
    ids=["installer conda", "name ../x", "no requirements", "python not a path or version"],
)
@pytest.mark.reliability("bad input", subject="prefect-venv",
                         title="prefect-venv build exits 2 with one line naming the problem.")
def test_bad_specs_exit_2_with_one_line(tmp_path, overrides, message):
    result = run("build", "--spec", str(write_spec(tmp_path, **overrides)), "--check")
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_check_reports_a_build_and_writes_nothing(tmp_path):
    result = run("build", "--spec", str(write_spec(tmp_path)), "--check")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["changed"] is True and out["action"] == "build"
    assert len(out["generation"]) == 16
    assert not (tmp_path / "envs").exists()


def test_generation_ignores_comments_but_not_inputs(tmp_path):
    def generation(**overrides):
        return json.loads(run("build", "--spec", str(write_spec(tmp_path, **overrides)), "--check").stdout)["generation"]

    base = generation()
    assert generation(requirements=["six"]) == base, "comments and blank lines do not count"
    assert generation(requirements=["six==1.16.0"]) != base
    assert generation(constraints=["six==1.16.0"]) != base
    assert generation(imports=["six"]) != base
    assert generation(installer="pip") == base, "the installer does not change what is installed"


def test_built_generation_that_is_current_is_unchanged(tmp_path):
    spec = write_spec(tmp_path)
    generation = json.loads(run("build", "--spec", str(spec), "--check").stdout)["generation"]
    env_dir = tmp_path / "envs/flows"
    fake_generation(env_dir, generation, "2026-01-01T00:00:00+00:00")
    os.symlink(generation, env_dir / "current")
    out = json.loads(run("build", "--spec", str(spec)).stdout)
    assert out["changed"] is False


def test_status_and_rollback(tmp_path):
    env_dir = tmp_path / "envs/flows"
    fake_generation(env_dir, "a" * 16, "2026-01-01T00:00:00+00:00")
    fake_generation(env_dir, "b" * 16, "2026-01-02T00:00:00+00:00")
    (env_dir / ("c" * 16)).mkdir()  # incomplete: no manifest
    os.symlink("b" * 16, env_dir / "current")
    status = json.loads(run("status", "--env-dir", str(env_dir)).stdout)
    assert status["current"] == "b" * 16
    assert [g["complete"] for g in status["generations"]].count(False) == 1
    check = json.loads(run("rollback", "--env-dir", str(env_dir), "--check").stdout)
    assert check["generation"] == "a" * 16 and os.readlink(env_dir / "current") == "b" * 16
    done = json.loads(run("rollback", "--env-dir", str(env_dir)).stdout)
    assert done["changed"] and os.readlink(env_dir / "current") == "a" * 16
    assert json.loads((env_dir / "env.json").read_text())["history"][-1]["event"] == "rollback"
    refused = run("rollback", "--env-dir", str(env_dir), "--to", "c" * 16)
    assert refused.returncode == 2 and "not a complete generation" in refused.stderr
    nothing = run("rollback", "--env-dir", str(env_dir))
    assert nothing.returncode == 2 and "no earlier complete generation" in nothing.stderr
