"""scripts/demo without a fleet: argument handling, help, and `down` when nothing exists.

Every test points the demo at a state directory and a container name prefix of its own
(PREFECT_FLEET_DEMO_DIR, PREFECT_FLEET_DEMO_PREFIX), so a real demo on this machine is
never touched.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*args, env=None):
    return subprocess.run(["scripts/demo", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


@pytest.fixture
def demo_env(tmp_path):
    """An environment whose demo lives in tmp_path and names no existing container."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_FLEET_")}
    env["PREFECT_FLEET_DEMO_DIR"] = str(tmp_path / "demo")
    env["PREFECT_FLEET_DEMO_PREFIX"] = f"prefect-fleet-unit-{uuid.uuid4().hex[:8]}"
    return env


def test_help_shows_both_commands_and_the_options():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    usage = result.stdout
    assert "scripts/demo [--hosts N] [--runs M]" in usage
    assert "scripts/demo down" in usage
    assert "--hosts N" in usage and "default 2" in usage
    assert "--runs M" in usage and "default 16" in usage


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hosts", "0"], "must be between 1 and 20, not 0"),
        (["--hosts", "21"], "must be between 1 and 20, not 21"),
        (["--hosts", "two"], "'two' is not a whole number"),
        (["--runs", "-1"], "must be between 0 and 500, not -1"),
        (["--runs"], "expected one argument"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["sideways"], "invalid choice: 'sideways'"),
        (["down", "--hosts", "3"], "down takes no --hosts or --runs"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(demo_env, args, message):
    result = run(*args, env=demo_env)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("usage: scripts/demo")
    assert not Path(demo_env["PREFECT_FLEET_DEMO_DIR"]).exists()


def test_down_with_nothing_there_says_so(demo_env):
    result = run("down", env=demo_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing to remove" in result.stdout
    assert not Path(demo_env["PREFECT_FLEET_DEMO_DIR"]).exists()


def test_down_removes_the_state_but_signals_no_process_that_is_not_its_own(demo_env):
    """Stale pidfiles (the git daemon's, the server's) naming a process that is not the
    demo's: down removes the files and the directory and leaves that process alone."""
    state = Path(demo_env["PREFECT_FLEET_DEMO_DIR"])
    (state / "server").mkdir(parents=True)
    (state / "logs").mkdir()
    (state / "logs" / "converge.log").write_text("old log\n")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (state / "git-daemon.pid").write_text(f"{bystander.pid}\n")
        (state / "server" / "server.pid").write_text(str(bystander.pid))
        result = run("down", env=demo_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert bystander.poll() is None, "down signalled a process that is not the demo's"
        assert not state.exists()
        assert "removing" in result.stdout
    finally:
        bystander.kill()
        bystander.wait()


def test_the_test_server_keeps_another_state_directory_apart(tmp_path):
    """scripts/demo's server: test-server --state DIR looks only there."""
    result = subprocess.run(["scripts/lib/test-server", "url", "--state", str(tmp_path / "server")],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "no healthy server" in result.stderr
    assert not (tmp_path / "server").exists()
