"""The chart of a scripts/bench run: one horizontal bar panel per benchmark that ran.

    .venv/bin/python scripts/lib/bench_chart.py OUT.png < chart.json

chart.json: {"caption": str, "panels": [{"title": str, "labels": [str, ...], "stacked": bool,
"series": {name: [seconds, one per label], ...}, "totals": [seconds, one per label]}, ...]}.
Series are drawn side by side, each bar labelled with its value, or end to end when stacked,
each row labelled with its total (stacked panels only: the median of the sums, which is not
the sum of the medians). It runs with the project's venv (matplotlib, Agg backend):
scripts/bench itself needs only the standard library.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

BAR_INCHES = 0.32


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def draw(ax, spec: dict) -> None:
    labels, series = spec["labels"], spec["series"]
    rows = range(len(labels))
    height = 0.8 if spec["stacked"] else 0.8 / len(series)
    left = [0.0] * len(labels)
    for n, (name, values) in enumerate(series.items()):
        offset = 0.0 if spec["stacked"] else (n - (len(series) - 1) / 2) * height
        ys = [y + offset for y in rows]
        bars = ax.barh(ys, values, height=height, left=left if spec["stacked"] else None, label=name)
        if spec["stacked"]:
            left = [a + b for a, b in zip(left, values)]
        else:
            ax.bar_label(bars, labels=[seconds(v) for v in values], padding=3, fontsize=8)
    if spec["stacked"]:
        ax.bar_label(bars, labels=[seconds(v) for v in spec["totals"]], padding=3, fontsize=8)
    ax.set_yticks(list(rows), labels)
    ax.invert_yaxis()
    ax.set_title(spec["title"], loc="left", fontsize=10)
    ax.set_xlabel("seconds")
    ax.margins(x=0.15)
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="lower right")


def main(out: Path, chart: dict) -> None:
    panels = chart["panels"]
    heights = [1.2 + BAR_INCHES * len(p["labels"]) * (1 if p["stacked"] else len(p["series"])) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, spec in zip(axes[:, 0], panels):
        draw(ax, spec)
    # Wrapped: a caption that names every benchmark is wider than the figure.
    fig.suptitle(textwrap.fill(chart["caption"], 130), fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), json.load(sys.stdin))
