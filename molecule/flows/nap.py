"""A flow that takes a while: the multi-host scenarios' runs span drains, upgrades and stops.

It logs the host and the venv generation it runs on (the real path of sys.prefix) before its
nap, and after it reads its own file from its checkout: a run whose working directory was
removed under it (the faults scenario runs a cleanup during a burst) fails instead of
completing. With `child_marker`, it first starts a child process that writes the signal it
gets to that file: a stop must reach what a run started, not only the run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from prefect import flow, get_run_logger

CHILD = """
import signal, sys, time
def record(signum, frame):
    with open(sys.argv[1], "w") as f:
        f.write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, record)
with open(sys.argv[1], "w") as f:
    f.write("started")
while True:
    time.sleep(1)
"""


@flow
def nap(seconds: float = 5.0, child_marker: str = "") -> str:
    logger = get_run_logger()
    venv = os.path.realpath(sys.prefix)
    logger.info("host: %s", socket.gethostname())
    logger.info("venv: %s", venv)
    logger.info("working directory: %s", os.getcwd())
    if child_marker:
        child = subprocess.Popen([sys.executable, "-c", CHILD, child_marker])
        while not os.path.exists(child_marker):
            time.sleep(0.05)
        logger.info("child: %s", child.pid)
    time.sleep(seconds)
    with open(os.path.join("flows", "nap.py")) as own_source:  # relative: fails if the cwd is gone
        own_source.read()
    logger.info("woke after %ss", seconds)
    return venv
