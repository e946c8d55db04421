"""Kernel strings in a report are data: no control or format character acts on a reader."""

from __future__ import annotations

from bpfrun.report.blocks import visible


def test_c0_c1_and_bidi_overrides_are_shown_not_acted_on() -> None:
    # A comm or file name may hold ESC sequences, C1 CSI (0x9b) or a right-to-left override
    # that would reverse what follows it in a viewer: each is shown as its escape.
    assert visible("a\x1b[31mb\u202ec\x9bd\ne") == "a\\x1b[31mb\\u202ec\\x9bd\\x0ae"
    assert visible("plain café") == "plain café"
