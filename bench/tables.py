"""Figures with median, min and max, printed as aligned tables (what every bench section prints)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Figure:
    label: str
    unit: str
    values: list[float]
    target: str = ""
    met: bool | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def row(self) -> list[str]:
        verdict = "" if self.met is None else ("met" if self.met else "MISSED")
        return [
            self.label,
            fmt(self.median),
            fmt(min(self.values)),
            fmt(max(self.values)),
            self.unit,
            self.target,
            verdict,
        ]


FIGURE_HEADER = ["figure", "median", "min", "max", "unit", "target", "verdict"]


def fmt(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def print_figures(title: str, figures: Sequence[Figure]) -> None:
    print_table(title, FIGURE_HEADER, [f.row() for f in figures])
