"""Numbers for a reader: measured values in their unit, durations and sizes humanized.

Shared by the report (`document`) and the flame graphs, so a value reads the same in a table,
a histogram summary and an SVG tooltip.
"""

from __future__ import annotations

from typing import Any

from bpfrun.units import HIST_UNITS, format_duration, format_size

DURATION_UNITS = frozenset({"ns", "us", "ms", "s"})
SIZE_UNITS = frozenset({"bytes", "KiB", "MiB"})


def format_amount(value: float, unit: str) -> str:
    """A value in `unit` for a reader: durations and sizes humanized, counts grouped."""
    if unit in DURATION_UNITS:
        ns = value * HIST_UNITS[unit]
        return f"{round(ns / 1e9)}s" if abs(ns) >= 1e11 else format_duration(ns)
    if unit in SIZE_UNITS:
        return format_size(value * HIST_UNITS[unit])
    number = f"{value:,}" if float(value).is_integer() else f"{value:,.2f}"
    return f"{number.removesuffix('.0')} {unit}".rstrip()


def fmt_num(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def fmt_value(value: Any, unit: str | None) -> str:
    """A measured value for a reader: durations and sizes humanized, with their unit."""
    if value is None:
        return "—"
    if not isinstance(value, int | float) or isinstance(value, bool) or not unit:
        return fmt_num(value)
    if unit in DURATION_UNITS or unit in SIZE_UNITS:
        return format_amount(value, unit)
    return f"{fmt_num(value)} {unit}"


def fmt_seconds(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    if seconds >= 120:
        return f"{int(seconds // 60)}m {seconds % 60:.0f}s"
    return f"{seconds:.1f}s" if seconds >= 1 else f"{seconds * 1000:.0f}ms"
