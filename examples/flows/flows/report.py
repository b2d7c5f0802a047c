"""A flow that needs a third-party package: pandas, from the host's prebuilt venv.

Nothing is installed when it runs: the deployment's `command` is the venv's python,
built beforehand by the prefect_venv role from requirements.txt.
"""

from __future__ import annotations

import os

import pandas as pd
from prefect import flow, get_run_logger


@flow
def report(hosts: int = 3) -> dict[str, float]:
    logger = get_run_logger()
    logger.info("working directory: %s", os.getcwd())
    runs = pd.DataFrame(
        {
            "host": [f"worker-{i % hosts + 1}" for i in range(12)],
            "seconds": [2.9, 3.1, 2.7, 3.4, 2.8, 3.0, 3.3, 2.6, 3.2, 2.9, 3.1, 2.8],
        }
    )
    summary = runs.groupby("host")["seconds"].agg(["count", "mean", "max"]).round(2)
    logger.info("pandas %s, %d runs on %d hosts\n%s", pd.__version__, len(runs), summary.shape[0], summary.to_string())
    return {"runs": float(len(runs)), "mean_seconds": round(float(runs["seconds"].mean()), 3)}


if __name__ == "__main__":
    report()
