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
