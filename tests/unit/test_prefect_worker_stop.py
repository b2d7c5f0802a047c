"""prefect-worker-stop (the units' ExecStop) signals every flow run and what each run started,
under /bin/sh as systemd runs it: a run that leads its own process group (a worker's run
without a `command`) and a run that shares its parent's group (a worker's run with a
`command`, every served run). Real processes, each recording the SIGTERM it gets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STOP = REPO / "roles/prefect_worker/files/prefect-worker-stop"

# A process that records "NAME" on SIGTERM and exits; with a third argument it first starts a
# child of its own named that (in its process group).
PROC = """
import signal, subprocess, sys, time
name, log = sys.argv[1], sys.argv[2]
def term(*_):
    with open(log, "a") as f:
        f.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
if len(sys.argv) > 3:
    subprocess.Popen([sys.executable, "-c", sys.argv[4], sys.argv[3], log])
with open(log + ".ready", "a") as f:
    f.write(name + "\\n")
while True:
    time.sleep(1)
"""

# The unit's main process (a served flow, or a worker): two runs, each with a child.
MAIN = """
import subprocess, sys, time
proc, log = sys.argv[1], sys.argv[2]
subprocess.Popen([sys.executable, "-c", proc, "leader", log, "leader-child", proc], start_new_session=True)
subprocess.Popen([sys.executable, "-c", proc, "member", log, "member-child", proc])
while True:
    time.sleep(1)
"""


def test_every_run_and_its_children_get_sigterm_and_the_main_process_none(tmp_path):
    log = tmp_path / "signals"
    main = subprocess.Popen([sys.executable, "-c", MAIN, PROC, str(log)])
    try:
        ready = Path(str(log) + ".ready")
        deadline = time.monotonic() + 30
        while not (ready.exists() and len(ready.read_text().split()) == 4):
            assert time.monotonic() < deadline, "the fake runs did not start"
            time.sleep(0.1)
        result = subprocess.run(["/bin/sh", str(STOP), str(main.pid), "5"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no shell complaint (dash rejects `kill -TERM -- -PID`)
        assert result.stdout.startswith(f"prefect-worker-stop: sent SIGTERM to 2 flow run(s) of {main.pid}")
        deadline = time.monotonic() + 10
        while len(log.read_text().split()) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(log.read_text().split()) == ["leader", "leader-child", "member", "member-child"]
        assert main.poll() is None  # the unit's main process is systemd's to stop
    finally:
        main.kill()
        main.wait()
        subprocess.run(["pkill", "-KILL", "-f", str(log)], check=False)
