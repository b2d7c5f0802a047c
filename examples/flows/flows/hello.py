"""The smallest flow that shows where a provisioned host runs it.

Its run logs the working directory (RUNS_DIR/<flow-run-id>/flows, the checkout that
`prefect-checkout` made for this run alone) and the flow run id.
"""

from __future__ import annotations

import os

from prefect import flow, get_run_logger
from prefect.runtime import flow_run


@flow
def hello(name: str = "fleet") -> str:
    logger = get_run_logger()
    cwd = os.getcwd()
    logger.info("working directory: %s", cwd)
    logger.info("flow run id: %s", flow_run.id)
    logger.info("hello, %s", name)
    return cwd


if __name__ == "__main__":
    hello()
