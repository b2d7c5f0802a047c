"""Two converges at once against the same host, one of them at -vvv."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from faults_lib import (API_KEY, ENV_DIR, SITE, STATE, as_prefect, fsck, generation, host, not_completed, queue,
                        read_guarded_file_tasks, wait_final, wait_for_log)

NEW_KEY = "pnu_faultsRotatedSecretKey9876543210"
CHANGES = {"faults_api_key": NEW_KEY, "faults_env_imports": ["prefect.engine", "json"]}


def deploy_key_lines() -> list[str]:
    """The base64 lines of the private deploy key: none may appear anywhere."""
    text = (STATE / "deploy_key").read_text().splitlines()
    return [line for line in text if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def converges(run_playbook):
    """site.yml twice at once, with a new API key and a new venv generation; the second at -vvv."""
    h = host()
    old = generation(h)
    extra = ("-e", json.dumps(CHANGES))
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(run_playbook, SITE, args=extra)
        second = pool.submit(run_playbook, SITE, args=(*extra, "-vvv"))
        results = [first.result(), second.result()]
    return h, old, results


@pytest.mark.reliability("fault", subject="site.yml")
def test_two_converges_at_once(converges, run_playbook):
    """Two site.yml runs at once that rotate the API key and build a new venv generation: each finishes (or one fails clearly on a lock), nothing is corrupt, and a third run reports changed=0."""
    h, old, results = converges
    assert any(r.rc == 0 for r in results), "\n\n".join(r.output[-3000:] for r in results)
    for r in results:
        if r.rc != 0:
            failure = r.output.split("FAILED!", 1)[-1][:2000]
            assert "lock" in failure.lower() and "Traceback" not in failure, failure
    third = run_playbook(SITE, args=("-e", json.dumps(CHANGES)))
    assert third.rc == 0, third.output
    assert all(counts["changed"] == 0 for counts in third.recap.values()), third.output
    # With nothing to change, the roles' one reading of the host spares every file task its
    # module runs (what makes a re-converge fast): each was skipped, none ran.
    guarded = read_guarded_file_tasks()
    seen = {task: statuses for task, statuses in third.task_statuses.items() if task in guarded}
    assert len(seen) >= 15 and all(statuses == {"skipping"} for statuses in seen.values()), seen
    new = generation(h)
    assert new != old
    assert h.run(f"ls -A {ENV_DIR} | grep '^\\.' | grep -v '^\\.current$'").stdout.strip() in ("", ".ballast"), \
        h.run(f"ls -la {ENV_DIR}").stdout
    assert h.run(f"{ENV_DIR}/current/bin/python -c 'import prefect.engine'").rc == 0
    checked = fsck(h)
    assert checked.rc == 0, checked.stdout + checked.stderr
    env = h.check_output("cat /etc/prefect/worker-a.env")
    assert env.count(NEW_KEY) == 1 and API_KEY not in env
    [run] = queue(1, 1)
    found = wait_final([run], timeout=180)
    assert not not_completed(found), not_completed(found)
    assert f"venv: {ENV_DIR}/{new}" in wait_for_log(run, "venv: ")
    assert h.run(as_prefect("prefect-checkout --repo private --ref main --run-id fault-private")).rc == 0


@pytest.mark.reliability("security", subject="ansible-playbook -vvv")
def test_no_secret_in_verbose_output(converges):
    """Neither API key (old or new) nor a line of the deploy key appears in the output of ansible-playbook -vvv, or of the run beside it."""
    _, _, results = converges
    assert "ESTABLISH" in results[1].output, "not -vvv output"
    for secret in (API_KEY, NEW_KEY, *deploy_key_lines()):
        for r in results:
            assert secret not in r.output, f"a secret ({secret[:12]}...) is in the playbook output"
