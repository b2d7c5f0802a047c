"""prefect-launcher sets up a run's logging as Prefect does, without rendering every setting.

Each case runs twice, each time in a fresh interpreter of the project venv (pinned
Prefect) with the launcher loaded as a module: once its setup_run_logging(), once Prefect's
own setup_logging(incremental=False) (a second setup in one process would see the first
one's handlers). Both must produce the same configuration, and the launcher's must not call
Settings.to_environment_variables unless the template names a value that is not a plain
string setting.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "roles/prefect_worker/files/prefect-launcher"

SCRIPT = r"""
import importlib.machinery, importlib.util, json, sys
loader = importlib.machinery.SourceFileLoader("prefect_launcher", sys.argv[1])
spec = importlib.util.spec_from_loader("prefect_launcher", loader)
launcher = importlib.util.module_from_spec(spec)
loader.exec_module(launcher)

import prefect.logging.configuration as configuration
from prefect.settings import Settings

calls = []
render = Settings.to_environment_variables
def counting(self, *args, **kwargs):
    calls.append(1)
    return render(self, *args, **kwargs)
Settings.to_environment_variables = counting

original = configuration.get_current_settings
if sys.argv[2] == "launcher":
    config = launcher.setup_run_logging()
else:
    config = configuration.setup_logging(incremental=False)
print(json.dumps({"config": json.dumps(config, sort_keys=True, default=str), "renders": len(calls),
                  "restored": configuration.get_current_settings is original,
                  "flow_runs_level": config["loggers"]["prefect.flow_runs"]["level"]}))
"""

CUSTOM = """\
version: 1
disable_existing_loggers: False
formatters:
  plain:
    format: "%(message)s ${EXTRA}"
handlers:
  console:
    class: logging.StreamHandler
    formatter: plain
    level: "${PREFECT_LOGGING_LEVEL}"
loggers:
  prefect:
    level: "${PREFECT_LOGGING_LEVEL}"
    handlers: [console]
  prefect.flow_runs:
    level: NOTSET
root:
  level: WARNING
  handlers: [console]
"""


def run_case(tmp_path: Path, env: dict[str, str]) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    out = {}
    for who in ("launcher", "prefect"):
        result = subprocess.run([sys.executable, "-c", SCRIPT, str(LAUNCHER), who], capture_output=True, text=True,
                                cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PREFECT_HOME": str(home), **env})
        assert result.returncode == 0, result.stderr[-3000:]
        out[who] = json.loads(result.stdout.strip().splitlines()[-1])
    ours, theirs = out["launcher"], out["prefect"]
    assert theirs["renders"] >= 1  # the count sees Prefect's own rendering
    return {"same": ours["config"] == theirs["config"], "renders": ours["renders"], "restored": ours["restored"],
            "flow_runs_level": ours["flow_runs_level"]}


def test_default_logging_yml_is_filled_from_the_settings_it_names(tmp_path):
    out = run_case(tmp_path, {"PREFECT_LOGGING_LEVEL": "DEBUG",
                              "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "WARNING"})
    assert out == {"same": True, "renders": 0, "restored": True, "flow_runs_level": "WARNING"}


@pytest.mark.parametrize("extra, renders", [
    ("${PREFECT_API_URL}", 0),  # a plain string setting: taken alone
    ("${PREFECT_LOGGING_COLORS}", 1),  # a boolean: Prefect's own rendering
    ("${PREFECT_LOGGING_TO_API_BATCH_INTERVAL}", 1),  # a number: the same
])
def test_a_custom_logging_yml_gets_what_prefect_would_give_it(tmp_path, extra, renders):
    custom = tmp_path / "logging.yml"
    custom.write_text(CUSTOM.replace("${EXTRA}", extra))
    out = run_case(tmp_path, {"PREFECT_LOGGING_SETTINGS_PATH": str(custom), "PREFECT_LOGGING_LEVEL": "INFO",
                              "PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert out == {"same": True, "renders": renders, "restored": True, "flow_runs_level": "NOTSET"}
