"""scripts/bench's report and chart, without running a benchmark."""

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def load_bench():
    loader = importlib.machinery.SourceFileLoader("bench", str(REPO / "scripts/bench"))
    spec = importlib.util.spec_from_loader("bench", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_a_first_section_goes_before_the_others_and_is_replaced_in_place(tmp_path):
    bench = load_bench()
    report = tmp_path / "benchmarks.md"
    bench.write_section(report, "env", "env table")
    bench.write_section(report, "chart", "chart 1", first=True)
    bench.write_section(report, "latency", "latency table")
    bench.write_section(report, "chart", "chart 2", first=True)
    text = report.read_text()
    assert text.startswith("# Benchmarks\n")
    assert "chart 1" not in text
    assert text.index("chart 2") < text.index("env table") < text.index("latency table")


def test_the_chart_draws_one_panel_per_benchmark(tmp_path):
    png = tmp_path / "benchmarks.png"
    chart = {"caption": "test", "panels": [
        {"title": "side by side", "labels": ["a", "b"], "stacked": False, "series": {"x": [0.5, 2.0], "y": [1, 3]}},
        {"title": "stacked", "labels": ["a", "b", "c"], "stacked": True,
         "series": {"build": [20.0, 2.0, 0.0], "import": [1.5, 3.5, 1.5]}, "totals": [21.4, 5.6, 1.5]},
    ]}
    result = subprocess.run([sys.executable, str(REPO / "scripts/lib/bench_chart.py"), str(png)],
                            input=json.dumps(chart), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def load_lib(name):
    sys.path.insert(0, str(REPO / "scripts/lib"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def burst_row(method, not_completed, failures=()):
    return {"hosts": 1, "runs": 32, "method": method, "bursts": 3, "completed": 96 - not_completed,
            "not_completed": not_completed, "worst_burst_not_completed": not_completed, "wall_median": 40.0,
            "wall_p90": 45.0, "wall_min": 38.0, "failures": list(failures)}


def test_the_burst_report_says_when_a_kit_run_did_not_complete():
    bench_burst = load_lib("bench_burst")
    failed = {"reps": 3, "kit_not_completed": 1, "rows": [
        burst_row("naive", 5, [("CRASHED", "Flow run infrastructure exited with non-zero status code 1.")]),
        burst_row("kit", 1, [("FAILED", "git lock")]), burst_row("launcher", 0)]}
    text = bench_burst.markdown(failed, {"cores": "2"}, quick=False)
    assert "target 0: NOT met" in text
    assert "- naive, 32 runs: a run ended CRASHED: `Flow run infrastructure exited" in text
    assert "- kit, 32 runs: a run ended FAILED: `git lock`" in text
    clean = {**failed, "kit_not_completed": 0, "rows": [burst_row("naive", 0), burst_row("kit", 0)]}
    assert "target 0: met" in bench_burst.markdown(clean, {"cores": "2"}, quick=False)


def test_a_crashed_runs_message_keeps_the_api_call_that_failed():
    bench_burst = load_lib("bench_burst")
    message = ("Failed to submit flow run to infrastructure: PrefectHTTPStatusError: Server error '503 Service "
               "Unavailable' for url 'http://10.88.0.1:14280/api/flow_runs/01a16755-835d-41a9-b81d-9e236e42eb70/"
               "labels' - Response: {'exception_message': 'Service Unavailable'}")
    assert "'/flow_runs/<id>/labels'" in bench_burst.short(message)
    assert len(bench_burst.short(message)) <= 160


def test_the_provision_report_gives_the_per_host_slope_and_the_3_host_target():
    bench_provision = load_lib("bench_provision")
    rows = [{"hosts": 1, "scratch": 100.0, "reconverge": 20.0, "changed_scratch": 80, "changed_again": 0},
            {"hosts": 3, "scratch": 150.0, "reconverge": 61.0, "changed_scratch": 240, "changed_again": 0},
            {"hosts": 6, "scratch": 250.0, "reconverge": 45.0, "changed_scratch": 480, "changed_again": 1}]
    result = bench_provision.summarize(rows, module_seconds=0.37, items_per_host=125)
    assert (result["marginal_scratch"], result["marginal_reconverge"]) == (30.0, 5.0)
    text = bench_provision.markdown(result, {"cores": "2"})
    assert "125 task results per host" in text and "takes **0.37 s** here" in text
    assert "The 2 cores are shared" in text
    # A run that did not measure the module cost says nothing about it, rather than "nan".
    unmeasured = bench_provision.markdown(bench_provision.summarize(rows), {"cores": "2"})
    assert "Why a re-converge costs" not in unmeasured and "nan" not in unmeasured
    assert "adds **30.0 s** from scratch and **5.0 s** to a re-converge" in text
    assert "Re-converge of 3 hosts: **61.0 s** — target ≤ 60 s: NOT met." in text
    assert "changed=0 on the hosts: NO" in text
    assert [p for p in bench_provision.panel(result)["series"]["re-converge"]] == [20.0, 61.0, 45.0]


def test_a_burst_whose_runs_did_not_all_end_has_no_wall_time_and_says_why():
    bench_burst = load_lib("bench_burst")
    row = {**burst_row("launcher", 1, [("PENDING", "not ended 1286 s after the pool opened (cancelled by the bench)")]),
           "bursts": 1, "wall_median": float("nan"), "wall_p90": float("nan"), "wall_min": float("nan")}
    text = bench_burst.markdown({"reps": 1, "kit_not_completed": 1, "timeout": 1286.4, "rows": [row]},
                                {"cores": "2"}, quick=True)
    assert "nan" not in text
    assert "| 1 | 1 | — | — | — |" in text
    assert "not ended 1286 s after the pool opened: such a run counts as not completed" in text
    assert "- launcher, 32 runs: a run was still PENDING: `not ended 1286 s after the pool opened" in text


def test_the_burst_waits_longer_than_the_kit_workers_retry_a_busy_server():
    bench_burst = load_lib("bench_burst")
    retries = int(load_lib("role_defaults").role_default("prefect_worker_client_max_retries"))
    longest_retry_window = 1.2 * sum(2 ** k for k in range(1, retries + 1))  # Prefect: 2, 4, ... s, +20% jitter
    assert bench_burst.burst_timeout() > longest_retry_window


def env_result():
    def stats(median):
        return {"median": median, "p90": median, "min": median}

    rows = [{"method": m, "build": stats(b), "import": stats(i), "total": stats(b + i), "disk_kib": 1 << 18}
            for m, b, i in (("pip", 30.0, 2.0), ("uv", 1.5, 4.0), ("prebuilt", 0.0, 1.8))]
    return {"reps": 7, "prefect": "3.8.8", "constraints": "constraints/prefect-3.8.8.txt", "wheels": 109,
            "versions": {"python": "3.11.2", "pip": "23.0.1", "uv": "0.12.23"}, "rows": rows,
            "ratio_uv_pip": 5.5 / 32, "ratio_prebuilt_uv": 1.8 / 5.5, "ratio_prebuilt_pip": 1.8 / 32}


def test_the_env_report_says_when_the_environments_were_built_on_a_tmpfs():
    bench_env = load_lib("bench_env")
    on_tmpfs = bench_env.markdown(env_result(), {"environments built on": "tmpfs (/dev/shm/x)"}, quick=True)
    on_disk = bench_env.markdown(env_result(), {"environments built on": "ext4 (/srv/x)"}, quick=True)
    assert "- Built on a tmpfs:" in on_tmpfs and "--env-dir .cache/bench" in on_tmpfs
    assert "tmpfs" not in on_disk


def test_env_builds_on_the_tmpfs_only_when_it_has_room(tmp_path):
    bench = load_bench()
    assert bench.filesystem(Path("/dev/shm"))[0] == "tmpfs", "Debian mounts a tmpfs on /dev/shm"
    bench.ENV_TMPFS_ROOM = 0
    assert bench.default_env_dir(tmp_path) == Path("/dev/shm/prefect-fleet-bench")
    bench.ENV_TMPFS_ROOM = 1 << 60  # more than any machine has free
    assert bench.default_env_dir(tmp_path) == tmp_path
