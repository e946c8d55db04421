"""Emit: a lowered Program → BCC C text through one Jinja2 template.

The template only lays out pieces that lower.py built and escaped; StrictUndefined turns a
missing piece into an error instead of silently empty C. Same input, byte-identical output.
"""

from __future__ import annotations

import jinja2

from bpfrun import __version__
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.cvalue import EVENT_CACHES
from bpfrun.compile.lower import Program

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bpfrun.compile", "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # C, not HTML: every value placed here was escaped by lower.py
)
RINGBUF_PAGES = 256  # 1 MiB: room for bursts between polls


def render(prog: Program, runbook: str, source: str) -> str:
    text = _ENV.get_template("program.c.j2").render(
        version=__version__,
        runbook=c_comment(runbook),
        step=c_comment(prog.step_id),
        source=c_comment(source),
        structs=prog.structs,
        maps=prog.maps,
        handlers=prog.handlers,
        functions=prog.functions,
        caches=[define for use, (_, define) in EVENT_CACHES.items()
                if any(use in line for h in prog.handlers for line in h.body)],
        streq=128 if any("bpfrun_streq(" in line for h in prog.handlers for line in h.body)
        else 0,
        user_mode=any("BPFRUN_IN_USER_MODE(" in line for h in prog.handlers for line in h.body),
        stop_after=bool(prog.stop_after),
        stacks=prog.stack_storage if prog.uses_stacks else 0,
        user_stacks=prog.user_stacks,
        events=len(prog.events),
        ringbuf_pages=RINGBUF_PAGES,
        ringbuf=prog.event_buffer == "ringbuf",
        # Perf-event handlers take a struct bpf_perf_event_data * (declared, never read).
        perf_event=any(a.kind in ("profile", "software") for a in prog.attaches),
    )
    return text
