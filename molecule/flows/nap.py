"""A flow that takes a while: the operations scenario's runs span drains and upgrades.

It logs the venv generation it runs on (the real path of sys.prefix) before its nap, and
after it reads its own file from its checkout: a run whose working directory was removed
under it (the faults scenario runs a cleanup during a burst) fails instead of completing.
"""

from __future__ import annotations

import os
import sys
import time

from prefect import flow, get_run_logger


@flow
def nap(seconds: float = 5.0) -> str:
    logger = get_run_logger()
    venv = os.path.realpath(sys.prefix)
    logger.info("venv: %s", venv)
    logger.info("working directory: %s", os.getcwd())
    time.sleep(seconds)
    with open(os.path.join("flows", "nap.py")) as own_source:  # relative: fails if the cwd is gone
        own_source.read()
    logger.info("woke after %ss", seconds)
    return venv
