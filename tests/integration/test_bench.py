"""scripts/bench runs end to end and writes its report (timings are reported, not asserted)."""

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_quick_checkout_bench_writes_its_report(tmp_path):
    existing = tmp_path / "benchmarks.md"
    existing.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkept\n<!-- END other -->\n")
    # The repository's own report draws its chart from .cache/bench: a report elsewhere keeps
    # its history beside it and leaves that one alone.
    repo_history = REPO / ".cache/bench/last-checkout.json"
    before = repo_history.stat().st_mtime_ns if repo_history.exists() else None
    result = subprocess.run([str(REPO / "scripts/bench"), "--quick", "--only", "checkout", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for method in ("clone-full", "clone-depth1", "isolated", "shared-cached"):
        assert method in result.stdout
    assert "isolated / clone-full median" in result.stdout
    report = existing.read_text()
    assert "<!-- BEGIN other -->\nkept\n<!-- END other -->" in report, "other sections are left alone"
    section = report.split("<!-- BEGIN checkout:", 1)[1].split("<!-- END checkout:", 1)[0]
    for text in ("| clone-full |", "| isolated |", "| shared-cached |", "cores", "memory", "git 2.", "date"):
        assert text in section, text
    assert report.index("<!-- BEGIN chart -->") < report.index("<!-- BEGIN other -->"), "the chart comes first"
    assert "](benchmarks.png)" in report
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    assert not list((REPO / ".cache/bench").glob("bench-run.*")), "the bench cleans up its runs"
    assert (tmp_path / ".bench-history/last-checkout.json").exists()
    assert (repo_history.stat().st_mtime_ns if repo_history.exists() else None) == before, \
        "a report elsewhere must not write the repository report's history"
