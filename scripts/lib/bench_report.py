"""What every section of docs/benchmarks.md shares (scripts/bench and its bench_* modules)."""

from __future__ import annotations


def machine_line(facts: dict[str, str]) -> str:
    """The section's last line: the machine and the moment it was measured on."""
    return "Machine: " + "; ".join(f"{k} {v}" for k, v in facts.items()) + "."
