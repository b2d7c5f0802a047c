"""Flows the warm-launcher tests deploy (tests/integration/test_launcher.py)."""

import os
import sys
import time

from prefect import flow, get_run_logger


def ancestry() -> list[int]:
    """This process's pid, its parent's and its grandparent's."""
    pids = [os.getpid()]
    for _ in range(2):
        with open(f"/proc/{pids[-1]}/stat") as f:
            pids.append(int(f.read().rsplit(")", 1)[1].split()[1]))
    return pids


@flow(name="launched-hello")
def hello(mark: str = "") -> str:
    pids = ancestry()
    get_run_logger().info("launched-hello mark=%s pid=%d parent=%d grandparent=%d cwd=%s python=%s env=%s prefix=%s path0=%s",
                          mark, pids[0], pids[1], pids[2], os.getcwd(), sys.executable,
                          os.environ.get("LAUNCHER_TEST_MARK", ""), sys.prefix, sys.path[0])
    return mark


@flow(name="launched-sleeper")
def sleeper(seconds: float = 60, pidfile: str = "") -> None:
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(str(os.getpid()))
    get_run_logger().info("launched-sleeper pid=%d sleeping %ss", os.getpid(), seconds)
    time.sleep(seconds)


@flow(name="launched-fails")
def fails() -> None:
    raise ValueError("launched-fails raised on purpose")


@flow(name="launched-exits")
def exits(code: int = 3) -> None:
    get_run_logger().info("launched-exits leaving with os._exit(%d)", code)
    os._exit(code)


@flow(name="launched-tls")
def tls() -> None:
    """How this run's Prefect API clients verify the server: the distinct TLS contexts
    among three new clients, and what they check."""
    from prefect.client.orchestration import get_client

    contexts = [get_client(sync_client=sync)._client._transport._pool._ssl_context for sync in (False, True, False)]
    get_run_logger().info("launched-tls grandparent=%d api=%s cafile=%s contexts=%d verify=%s check_hostname=%s",
                          ancestry()[2], os.environ.get("PREFECT_API_URL", "").split(":", 1)[0],
                          os.path.basename(os.environ.get("PREFECT_API_SSL_CERT_FILE", "")), len({id(c) for c in contexts}),
                          contexts[0].verify_mode.name, contexts[0].check_hostname)
