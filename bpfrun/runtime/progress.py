"""Progress of a run on stderr: what step is running, how long it has left, events so far.

The runner calls a `Progress` at fixed points of each step (`step_started`, `attached`,
`tick`, `step_done`, and `note` for anything else). Where it goes depends on stderr:

- a terminal (and not TERM=dumb): one Rich live line per step, redrawn in place
  ("runq ▸ measuring 3.2s left · 1234 events"), replaced by a one-line outcome when the step
  ends;
- anything else (a pipe, a file, a CI log): plain lines, one per event, each starting with
  "bpfrun: " (e.g. "bpfrun: step runq: attached 2 probe(s), measuring for 3s"); tests and
  scripts wait for the `step <id>: attached` part, so it is stable;
- quiet: nothing (`--quiet`; the CLI also passes quiet for `--json`).

Everything shown is data, never Rich markup: a comm like "[red]x" is printed as such.
Uses `rich` directly (already installed as a dependency of typer).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from bpfrun.errors import shown

PREFIX = "bpfrun: "
_OUTCOMES = {"ran": ("✓", "green"), "skipped": ("–", "dim"), "failed": ("✗", "bold red"),
             "interrupted": ("!", "yellow")}


def visible(text: str) -> str:
    """A reason or title on one line: every control or format character shown, not acted on."""
    return shown(text)


def _left(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{seconds:.1f}s"


class Progress:
    """The runner's progress callback (see the module docstring for the three modes).

    `live=None` picks the live line when `stream` is a terminal; `force_terminal=True` makes
    Rich treat `stream` as one (tests, `script` captures). Calling the object with a string
    is the same as `note`, so it also serves where a plain `Callable[[str], None]` is expected.
    """

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False,
                 live: bool | None = None, force_terminal: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.clock = clock
        self.console = Console(file=self.stream, force_terminal=force_terminal, highlight=False,
                               markup=False, emoji=False, soft_wrap=True)
        terminal = self.console.is_terminal and not self.console.is_dumb_terminal
        self.live_mode = not quiet and (terminal if live is None else live)
        self._live: Live | None = None
        self._spinner = Spinner("dots")
        self._step = ""
        self._title = ""
        self._deadline: float | None = None
        self._probes = 0
        self._events: int | None = None

    @classmethod
    def for_cli(cls, *, quiet: bool, json_output: bool) -> Progress:
        """What `bpfrun run` wants: nothing with --quiet or --json, else by stderr's kind."""
        return cls(quiet=quiet or json_output)

    # -- the callbacks ---------------------------------------------------------------------
    def step_started(self, step_id: str, title: str | None = None) -> None:
        """A step begins (its BPF program is about to be compiled and loaded)."""
        self._step, self._title = step_id, title or ""
        self._deadline, self._probes, self._events = None, 0, None
        if self.quiet:
            return
        if not self.live_mode:
            about = f" ({visible(title)})" if title else ""
            self._plain(f"step {step_id}: compiling{about}")
            return
        self._stop_live()
        self._live = Live(console=self.console, get_renderable=self._render, transient=True,
                          refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def attached(self, step_id: str, n_probes: int, seconds: float) -> None:
        """The probes are attached; the step now measures for `seconds`."""
        self._step, self._probes = step_id, n_probes
        self._deadline = self.clock() + seconds
        if self.quiet:
            return
        if not self.live_mode:
            self._plain(f"step {step_id}: attached {n_probes} probe(s), measuring for {seconds:g}s")
        elif self._live is not None:
            self._live.refresh()

    def tick(self, events_so_far: int | None) -> None:
        """Called while measuring (a few times a second); None when events are not counted."""
        self._events = events_so_far
        if self._live is not None:
            self._live.refresh()

    def step_done(self, step_id: str, status: str, seconds: float,
                  detail: str | None = None) -> None:
        """The step ended: `status` is ran, skipped, failed or interrupted; `detail` says why
        (a skip or failure reason) and is shown after it."""
        if self.quiet:
            return
        self._stop_live()
        if status == "ran":
            what = f"done in {seconds:.1f}s"
        elif seconds:
            what = f"{status} after {seconds:.1f}s"
        else:
            what = status
        if self._events is not None and self._step == step_id and status != "skipped":
            what += f", {self._events:,} events"
        if detail:
            what += f" ({visible(detail)})"
        if not self.live_mode:
            self._plain(f"step {step_id}: {what}")
            return
        mark, style = _OUTCOMES.get(status, ("•", ""))
        line = Text(f"{mark} ", style=style)
        line.append(step_id, style="bold")
        line.append(f" {what}")
        self.console.print(line)

    def note(self, msg: str) -> None:
        """Anything else worth a line (a warning, a fallback taken)."""
        if self.quiet:
            return
        if self.live_mode:
            self.console.print(Text(msg))  # above the live line, which Live redraws below it
        else:
            self._plain(msg)

    __call__ = note

    def close(self) -> None:
        """Take the live line off the screen; call it however the run ends."""
        self._stop_live()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- rendering -------------------------------------------------------------------------
    def status_line(self) -> str:
        """The live line's text: "runq ▸ measuring 3.2s left · 1234 events"."""
        if self._deadline is None:
            about = f" · {self._title}" if self._title else ""
            return f"{self._step} ▸ compiling{about}"
        left = self._deadline - self.clock()
        what = f"measuring {_left(left)} left" if left > 0 else "reading results"
        count = (f"{self._events:,} events" if self._events is not None
                 else f"{self._probes} probe{'s' if self._probes != 1 else ''}")
        return f"{self._step} ▸ {what} · {count}"

    def _render(self) -> Spinner:
        self._spinner.update(text=Text(visible(self.status_line())))
        return self._spinner

    def _plain(self, text: str) -> None:
        try:
            self.stream.write(f"{PREFIX}{text}\n")
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed (a broken pipe): progress is optional
            pass

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
