"""prefect-launcher gives a run's Prefect API clients one TLS context per CA file.

Prefect's client builds a new SSLContext (parsing the whole CA bundle) for every client it
opens; in a launched run the launcher's share_api_tls_contexts() makes the clients share
one per CA file, made before the fork for the default bundle. Each case runs in a fresh
interpreter of the project venv (pinned Prefect) with the launcher loaded as a module, and
counts the contexts the real ssl.create_default_context makes while clients are opened.
The clients point at https URLs; nothing connects.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "roles/prefect_worker/files/prefect-launcher"

SCRIPT = r"""
import importlib.machinery, importlib.util, json, os, ssl, sys
made = []
real = ssl.create_default_context
def counting(*args, **kwargs):
    context = real(*args, **kwargs)
    made.append(context)
    return context
ssl.create_default_context = counting

loader = importlib.machinery.SourceFileLoader("prefect_launcher", sys.argv[1])
spec = importlib.util.spec_from_loader("prefect_launcher", loader)
launcher = importlib.util.module_from_spec(spec)
loader.exec_module(launcher)
from prefect.client.orchestration import PrefectClient, SyncPrefectClient

at_import = len(made)  # httpx transports Prefect makes at import (in the launcher: before the fork)
if sys.argv[2] == "launcher":
    launcher.share_api_tls_contexts()
before = len(made)
if os.environ.get("RUN_CA"):  # the run's own CA file, not the launcher's
    import prefect.context
    os.environ["PREFECT_API_SSL_CERT_FILE"] = os.environ["RUN_CA"]
    prefect.context.refresh_global_settings_context()

def contexts():
    seen = []
    for client in (PrefectClient("https://127.0.0.1:1/api"), PrefectClient("https://127.0.0.1:1/api"),
                   SyncPrefectClient("https://127.0.0.1:1/api")):
        pool = client._client._transport._pool
        seen.append(pool._ssl_context)
    return seen

first = contexts()
rewrite = os.environ.get("REWRITE_CA")
if rewrite:
    with open(os.environ["PREFECT_API_SSL_CERT_FILE"], "a") as f:
        f.write(open(rewrite).read())
second = contexts()
used = first + second
print(json.dumps({
    "made_by_share": before - at_import,
    "made_for_clients": len(made) - before,
    "distinct_in_first": len({id(c) for c in first}),
    "distinct": len({id(c) for c in used}),
    "verify": sorted({c.verify_mode.name for c in used}),
    "check_hostname": sorted({c.check_hostname for c in used}),
    "ca_counts": sorted({len(c.get_ca_certs()) for c in used}),
    "ssl_name_again": launcher.share_api_tls_contexts() is not None if sys.argv[2] == "launcher" else None,
}))
"""


def run(mode: str, **env: str) -> dict:
    # Prefect's API CA file defaults to SSL_CERT_FILE: the cases set it themselves.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SSL_CERT_"))}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(LAUNCHER), mode], env={**clean, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_prefect_alone_makes_a_context_per_client():
    """What the launcher improves on, checked against the installed Prefect: six clients,
    six contexts, each a full read of certifi's bundle."""
    prefect = run("prefect")
    assert prefect["made_for_clients"] == 6 and prefect["distinct"] == 6, prefect


def test_launched_run_clients_share_the_default_bundle_context_made_before_the_fork():
    launched = run("launcher")
    assert launched["made_by_share"] == 1, launched  # certifi's bundle, read by the launcher
    assert launched["made_for_clients"] == 0 and launched["distinct"] == 1, launched
    assert launched["verify"] == ["CERT_REQUIRED"] and launched["check_hostname"] == [True]
    prefect = run("prefect")
    assert launched["ca_counts"] == prefect["ca_counts"] and launched["ca_counts"][0] > 50, (launched, prefect)
    assert launched["ssl_name_again"] is True  # a second call keeps the same view


def test_a_ca_file_of_the_run_gets_one_context_and_a_new_one_when_it_changes(tmp_path: Path):
    import certifi

    bundle = Path(certifi.where()).read_text()
    certs = bundle.split("-----END CERTIFICATE-----\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----END CERTIFICATE-----\n".join(certs[:3]) + "-----END CERTIFICATE-----\n")
    launched = run("launcher", RUN_CA=str(ca))
    assert launched["made_by_share"] == 1, launched  # the launcher knew only certifi's
    assert launched["made_for_clients"] == 1 and launched["distinct"] == 1, launched
    assert launched["ca_counts"] == [3], launched
    # The file changes between the two rounds of clients: the second round reads it again.
    extra = tmp_path / "extra.pem"
    extra.write_text(certs[3] + "-----END CERTIFICATE-----\n")
    changed = run("launcher", RUN_CA=str(ca), REWRITE_CA=str(extra))
    assert changed["made_for_clients"] == 2 and changed["distinct_in_first"] == 1, changed
    assert changed["distinct"] == 2 and changed["ca_counts"] == [3, 4], changed


def test_insecure_skip_verify_still_gets_a_context_of_its_own_per_client():
    """Prefect turns verification off on the context it asked for: never a shared one."""
    insecure = run("launcher", PREFECT_API_TLS_INSECURE_SKIP_VERIFY="true")
    assert insecure["made_for_clients"] == 6 and insecure["distinct"] == 6, insecure
    assert insecure["verify"] == ["CERT_NONE"], insecure
    # ... and the shared default context was not touched by it.
    launched = run("launcher")
    assert launched["verify"] == ["CERT_REQUIRED"], launched


def test_the_launchers_own_ca_setting_is_read_before_the_fork():
    """Prefect's PREFECT_API_SSL_CERT_FILE defaults to SSL_CERT_FILE (hosts behind a
    TLS-intercepting proxy set it to the system bundle). Set for the launcher as for its
    runs, it is read once before the fork and the runs read no CA file."""
    system = "/etc/ssl/certs/ca-certificates.crt"
    launched = run("launcher", SSL_CERT_FILE=system)
    assert launched["made_by_share"] == 2, launched  # certifi's bundle and the system one
    assert launched["made_for_clients"] == 0 and launched["distinct"] == 1, launched
    assert launched["verify"] == ["CERT_REQUIRED"], launched
    assert launched["ca_counts"][0] == len(__import__("ssl").create_default_context(cafile=system).get_ca_certs())
