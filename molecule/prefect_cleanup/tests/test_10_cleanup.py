"""The cleanup job on a converged host."""

import json

import pytest


def test_cron_job_is_scheduled(host):
    cron = host.file("/etc/cron.d/prefect-cleanup")
    assert (cron.user, cron.mode) == ("root", 0o644)
    line = [l for l in cron.content_string.splitlines() if "prefect-cleanup" in l and not l.startswith("#")]
    assert line and line[0].startswith("*/20 * * * * root flock -n /srv/prefect/locks/cleanup.lock")
    assert host.service("cron").is_running and host.service("cron").is_enabled


def test_configuration(host):
    config = json.loads(host.file("/etc/prefect/cleanup.json").content_string)
    assert config["root"] == "/srv/prefect" and config["ttl"] == 86400


def test_the_job_removes_old_unused_runs_and_keeps_busy_ones(host):
    host.run_test(
        "mkdir -p /srv/prefect/runs/old-run/flows /srv/prefect/runs/busy-run/flows "
        "&& chown -R prefect:prefect /srv/prefect/runs "
        "&& touch -d '3 days ago' /srv/prefect/runs/old-run /srv/prefect/runs/busy-run"
    )
    host.run_test(
        "systemd-run --unit=busy-run-holder --quiet --uid=prefect "
        "-p WorkingDirectory=/srv/prefect/runs/busy-run/flows /bin/sleep 120"
    )
    host.run_test("for i in $(seq 50); do pgrep -u prefect -x sleep && exit 0; sleep 0.1; done; exit 1")
    try:
        dry = host.run("prefect-cleanup --dry-run")
        assert dry.rc == 0, dry.stderr
        assert host.file("/srv/prefect/runs/old-run").exists
        # The command exactly as cron runs it:
        job = [l for l in host.file("/etc/cron.d/prefect-cleanup").content_string.splitlines()
               if "prefect-cleanup" in l and not l.startswith("#")][0]
        command = job.split(" root ", 1)[1]
        assert host.run(command).rc == 0
    finally:
        host.run("systemctl stop busy-run-holder")
    assert not host.file("/srv/prefect/runs/old-run").exists
    assert host.file("/srv/prefect/runs/busy-run").exists
    last = json.loads(host.file("/srv/prefect/log/cleanup.log").content_string.splitlines()[-1])
    assert "/srv/prefect/runs/old-run" in [r["path"] for r in last["removed"]]
    assert any(s["path"] == "/srv/prefect/runs/busy-run" for s in last["skipped"])


@pytest.mark.reliability(
    "bad input", subject="prefect_cleanup",
    title="The role fails before any change with a message naming the variable; the host is unchanged.")
@pytest.mark.parametrize(
    "extra,variable",
    [("prefect_cleanup_ttl: 0", "prefect_cleanup_ttl"),
     ("prefect_cleanup_schedule: 'hourly'", "prefect_cleanup_schedule"),
     ("prefect_cleanup_root: /", "prefect_cleanup_root"),
     ("prefect_cleanup_root: /etc", "prefect_cleanup_root"),
     ("prefect_cleanup_root: /srv/prefect/../../etc", "prefect_cleanup_root")],
    ids=["ttl 0", "schedule not five cron fields", "root is /", "root is /etc", "root with .."],
)
def test_bad_input(host, run_playbook, host_state, extra, variable):
    before = host_state()
    result = run_playbook(f"""
- name: Apply prefect_cleanup with bad input
  hosts: all
  gather_facts: false
  vars:
    {extra}
  roles:
    - role: prefect_fleet.fleet.prefect_cleanup
""")
    assert result.rc != 0 and variable in result.output, result.output
    assert host_state() == before


def test_absent(host, run_playbook):
    result = run_playbook("""
- name: Remove prefect_cleanup
  hosts: all
  gather_facts: false
  roles:
    - role: prefect_fleet.fleet.prefect_cleanup
      prefect_cleanup_state: absent
""")
    assert result.rc == 0, result.output
    for path in ("/etc/cron.d/prefect-cleanup", "/etc/prefect/cleanup.json", "/usr/local/bin/prefect-cleanup"):
        assert not host.file(path).exists, path
