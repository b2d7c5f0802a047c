"""scripts/reliability writes docs/reliability.md's table from the recorded cases and
catches a document that no longer matches them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts/reliability"
DOC = "# Title\n\nHand-written text.\n\n<!-- cases:begin -->\n\n<!-- cases:end -->\n\nMore text.\n"


def case(suite: str, case: str, result: str = "passed", kind: str = "fault", detail: str = "") -> dict:
    return {"kind": kind, "suite": suite, "subject": "thing", "test": "test_x.py::test_y", "case": case,
            "expected": "It | works.", "result": result, "detail": detail}


def run(tmp_path: Path, mode: str, cases: list[dict], doc: Path) -> subprocess.CompletedProcess:
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "reliability.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    return subprocess.run([sys.executable, str(SCRIPT), mode, "--reports", str(reports), "--doc", str(doc)],
                          capture_output=True, text=True)


def test_write_then_check_passes_and_keeps_the_hand_written_text(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(DOC)
    cases = [case("molecule faults", "a", detail="exposure 1.2"), case("pytest", "b", kind="bad input")]
    assert run(tmp_path, "--write", cases, doc).returncode == 0
    text = doc.read_text()
    assert text.startswith("# Title\n\nHand-written text.") and text.endswith("More text.\n")
    assert text.index("### pytest") < text.index("### molecule faults")
    assert "| fault | thing | a | It \\| works. | passed (exposure 1.2) |" in text
    assert run(tmp_path, "--check", cases, doc).returncode == 0
    # A run of one suite checks that suite only.
    assert run(tmp_path, "--check", cases[:1], doc).returncode == 0


def test_check_fails_on_a_new_case_a_missing_case_or_another_result(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(DOC)
    cases = [case("molecule faults", "a"), case("molecule faults", "b")]
    run(tmp_path, "--write", cases, doc)
    for changed in ([*cases, case("molecule faults", "c")], cases[:1],
                    [cases[0], case("molecule faults", "b", result="failed")],
                    [*cases, case("molecule other", "z")]):
        result = run(tmp_path, "--check", changed, doc)
        assert result.returncode == 1, changed
        assert "does not match" in result.stderr


def test_a_failed_case_is_written_plainly(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(DOC)
    run(tmp_path, "--write", [case("pytest", "a", result="failed")], doc)
    assert "**FAILED**" in doc.read_text() and "1 failed" in doc.read_text()


def test_no_recorded_cases_is_an_error(tmp_path):
    doc = tmp_path / "reliability.md"
    doc.write_text(DOC)
    result = run(tmp_path, "--check", [], doc)
    assert result.returncode == 1 and "no cases recorded" in result.stderr
