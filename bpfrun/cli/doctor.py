"""The commands about bpfrun and this machine: doctor (can it run BPF) and version."""

from __future__ import annotations

from bpfrun import __version__
from bpfrun.cli.common import guarded
from bpfrun.errors import EXIT_MACHINE


def doctor() -> None:
    """Can this machine run BPF, and what to do if not. As root, also saves this kernel's
    tracepoint formats for bpfrun without root."""
    def body() -> int:
        from bpfrun.runtime.doctor import failures, render_checks, run_checks  # noqa: PLC0415

        checks = run_checks(refresh_cache=True)  # as root: saves the tracepoint formats
        print(render_checks(checks))
        return EXIT_MACHINE if failures(checks) else 0
    guarded(body)


def version() -> None:
    """Print bpfrun's version."""
    print(__version__)
