"""Durations and sizes: parsing the runbook's literals and formatting values for readers.

Durations are kept in nanoseconds and sizes in bytes, as typed values, so that a duration
compares with a duration whatever unit a histogram displays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}
_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024,
               "MiB": 1024**2, "GiB": 1024**3}
_NUM = r"(\d+(?:\.\d+)?)"
DURATION_RE = re.compile(_NUM + r"(ns|us|µs|ms|s|m|h)")
SIZE_RE = re.compile(_NUM + r"(B|KB|MB|GB|KiB|MiB|GiB)")


@dataclass(frozen=True, order=True)
class Duration:
    ns: int

    def __str__(self) -> str:
        return format_duration(self.ns)


@dataclass(frozen=True, order=True)
class Size:
    bytes: int

    def __str__(self) -> str:
        return format_size(self.bytes)


# What a kernel program can hold: durations and sizes are u64 there.
U64_MAX = 2**64 - 1
_MAX_DIGITS = 40  # more digits than any u64 in any unit: refused before arithmetic on them


def parse_duration(text: str) -> int:
    """'250us' -> 250000 (ns). Raises ValueError with the accepted forms."""
    m = DURATION_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a duration (use e.g. 250us, 1ms, 10s, 2m)")
    return _scaled(m.group(1), _DURATION_UNITS[m.group(2)], "duration", text)


def parse_size(text: str) -> int:
    """'4KiB' -> 4096 (bytes). Raises ValueError with the accepted forms."""
    m = SIZE_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size (use e.g. 512B, 4KiB, 1MB)")
    return _scaled(m.group(1), _SIZE_UNITS[m.group(2)], "size", text)


def _scaled(number: str, scale: int, what: str, text: str) -> int:
    """`number` × `scale` exactly (decimal, never through a float: 9007199254740993ns stays
    itself), a whole number of the base unit (ns or bytes), within 64 bits."""
    whole, _, frac = number.partition(".")
    shown = text.strip() if len(text.strip()) <= 24 else f"{text.strip()[:20]}…"
    if len(whole) > _MAX_DIGITS:
        raise ValueError(f"{shown!r} is out of range: a {what} must fit in 64 bits")
    frac = frac[:_MAX_DIGITS]
    exact = Fraction(int(whole + frac), 10 ** len(frac)) * scale
    if exact.denominator != 1:
        base = "nanoseconds" if what == "duration" else "bytes"
        raise ValueError(f"{shown!r} is not a whole number of {base}")
    value = int(exact)
    if value > U64_MAX:
        raise ValueError(f"{shown!r} is out of range: a {what} must fit in 64 bits")
    return value


def format_duration(ns: float) -> str:
    """A short human form: 1500 -> '1.5us', 2_000_000 -> '2ms'."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g}{unit}" if ns % scale else f"{int(ns // scale)}{unit}"
    return f"{int(ns)}ns"


def format_size(n: float) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}" if n % scale else f"{int(n // scale)}{unit}"
    return f"{int(n)}B"


# Display units of histograms: how many base units (ns or bytes) one display unit is.
HIST_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "bytes": 1,
              "KiB": 1024, "MiB": 1024**2}
