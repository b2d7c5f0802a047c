"""Fixtures of the prefect_work_pool tests: Ansible runners and a recording proxy.

The modules and the role are run the way Ansible runs them (`ansible localhost -m`
from the collection prefect_fleet.fleet, `ansible-playbook playbooks/work_pools.yml`)
against the real Prefect server of the `prefect_server` fixture. A small HTTP proxy
on 127.0.0.1 sits in between and records every request, so a test can assert that a
run made no write request at all; it can also answer with injected errors (503s for
the retry test, 401 for the rejected-key test).
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import urlsplit

import pytest
from work_pool_helpers import COLLECTIONS, PLAYBOOK, VENV_BIN, Api, Recorder, Run, _run, run_steps


@pytest.fixture(scope="session")
def _proxy(prefect_server):
    up = urlsplit(prefect_server.url)
    recorder = Recorder(upstream="http://%s:%d" % (up.hostname, up.port)).start()
    yield recorder
    recorder.stop()


@pytest.fixture
def proxy(_proxy) -> Recorder:
    """The recording proxy, with an empty log for this test."""
    _proxy.clear()
    _proxy.answer_all = None
    yield _proxy
    _proxy.answer_all = None
    _proxy.clear()


@pytest.fixture
def rejecting_server() -> Recorder:
    """A server on 127.0.0.1 that answers every request with 401 Unauthorized."""
    recorder = Recorder(upstream="http://127.0.0.1:9", answer_all=401).start()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="session")
def api(prefect_server) -> Api:
    return Api(prefect_server.url)


@pytest.fixture
def unique():
    """A fresh name for each pool, queue or limit a test makes (the server is shared)."""
    def make(prefix: str = "pool") -> str:
        return "%s-%s" % (prefix, uuid.uuid4().hex[:8])
    return make


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory) -> dict[str, str]:
    """Environment for ansible runs: JSON output, the checkout as the collection, no API settings."""
    home = tmp_path_factory.mktemp("ansible")
    cfg = home / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"collections_path = {COLLECTIONS}\n"
        "stdout_callback = ansible.posix.json\n"
        "callback_result_format = yaml\n"
        "bin_ansible_callbacks = true\n"
        "interpreter_python = auto_silent\n"
        "retry_files_enabled = false\n"
        "nocolor = true\n"
        f"local_tmp = {home / 'tmp'}\n"
        "[connection]\n"
        "pipelining = true\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_CONFIG=str(cfg),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    return env


@pytest.fixture
def module(ansible_env):
    """run(module_name, args, check=False, diff=False, env=None) -> Run, via `ansible localhost -m`."""
    def run(name: str, args: dict, *, check: bool = False, diff: bool = False,
            env: dict[str, str] | None = None, text: bool = False) -> Run:
        cmd = ["ansible", "localhost", "-m", f"prefect_fleet.fleet.{name}", "-a", json.dumps(args)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        run_env = dict(ansible_env, **(env or {}))
        if text:
            run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
        return _run(cmd, run_env)
    return run


@pytest.fixture
def playbook(ansible_env, tmp_path):
    """run(variables, *args) -> Run, via `ansible-playbook playbooks/work_pools.yml -e @vars`
    (variables: a dict, or YAML text as an inventory would hold it)."""
    def run(variables: dict | str, *args: str, env: dict[str, str] | None = None, text: bool = False) -> Run:
        vars_file = tmp_path / ("vars-%s.yml" % uuid.uuid4().hex[:6])
        vars_file.write_text(variables if isinstance(variables, str) else json.dumps(variables))
        run_env = dict(ansible_env, **(env or {}))
        if text:
            run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
        return _run(["ansible-playbook", str(PLAYBOOK), "-e", "@%s" % vars_file, *args], run_env)
    return run


@pytest.fixture
def steps(ansible_env, proxy, tmp_path):
    """steps(*tasks) -> [Step]: the tasks (work_pool_helpers.task) in one playbook run."""
    return lambda *tasks: run_steps(ansible_env, proxy, tmp_path, *tasks)
