"""The reliability record: which fault, bad-input and security cases ran, and their results.

Tests mark a case with ``@pytest.mark.reliability(KIND, subject=..., title=...)`` (KIND is
one of KINDS; a module may mark all its tests through ``pytestmark``). The pytest hooks
of tests/conftest.py and molecule/conftest.py call :func:`record`, which appends one JSON
line per case to ``$PREFECT_FLEET_REPORTS/reliability.jsonl`` (scripts/test sets that
directory; nothing is written without it). ``scripts/reliability`` turns the lines into
the table of docs/reliability.md, or checks that table against them.

A case's row: its kind, the suite that ran it (pytest, or the molecule scenario), the
subject (a role, a module, a unit), the case (the parameter id of a parametrized test,
else the title), what is expected (the marker's ``title``, else the test's docstring,
else its module's), and the result. A test may add a detail to its result (a measured
figure) with ``record_property("reliability_detail", "...")``.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

KINDS = ("fault", "bad input", "security")
MARKER_HELP = ("reliability(kind, subject=None, title=None): a case listed in docs/reliability.md; "
               "kind is one of " + ", ".join(KINDS))
RESULTS_NAME = "reliability.jsonl"


def first_sentence(text: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    if not text:
        return ""
    paragraph = inspect.cleandoc(text).split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def suite_name() -> str:
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME")
    return f"molecule {scenario}" if scenario else "pytest"


def case_id(callspec) -> str:
    """The parameter ids of a parametrized test, without testinfra's host (podman://NAME)."""
    if callspec is None:
        return ""
    ids = getattr(callspec, "_idlist", None) or [callspec.id]
    return "-".join(i for i in ids if "://" not in i)


def case_of(item) -> dict | None:
    """The case a test item stands for, or None when it is not marked."""
    marker = item.get_closest_marker("reliability")
    if marker is None:
        return None
    kind = marker.args[0] if marker.args else marker.kwargs.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{item.nodeid}: reliability kind must be one of {KINDS}, got {kind!r}")
    function = getattr(item, "function", None)
    expected = marker.kwargs.get("title") or first_sentence(getattr(function, "__doc__", None)) \
        or first_sentence(getattr(item.module, "__doc__", None))
    callspec = getattr(item, "callspec", None)
    name = item.originalname if hasattr(item, "originalname") else item.name
    return {
        "kind": kind,
        "suite": suite_name(),
        "subject": marker.kwargs.get("subject", ""),
        "test": f"{item.path.name}::{name}",
        "case": case_id(callspec),
        "expected": expected,
    }


def record(item, report) -> None:
    """Called from pytest_runtest_makereport: write the case's line once its test ends."""
    reports_dir = os.environ.get("PREFECT_FLEET_REPORTS")
    if not reports_dir:
        return
    case = case_of(item)
    if case is None:
        return
    outcomes = item.stash.setdefault(_OUTCOMES, [])
    outcomes.append("skipped" if report.skipped else report.outcome)
    if report.when != "teardown":
        return
    if "failed" in outcomes:
        result = "failed"
    elif "skipped" in outcomes:
        result = "skipped"
    else:
        result = "passed"
    details = [str(value) for key, value in item.user_properties if key == "reliability_detail"]
    case.update(result=result, detail="; ".join(details))
    path = Path(reports_dir) / RESULTS_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(case) + "\n")


try:  # the stash key lives here so both conftests share it
    import pytest

    _OUTCOMES = pytest.StashKey[list]()
except ImportError:  # scripts/reliability reads results without pytest installed
    _OUTCOMES = None
