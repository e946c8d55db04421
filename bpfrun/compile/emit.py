"""Emit: a lowered Program → BCC C text through one Jinja2 template.

The template only lays out pieces that lowering built and escaped; StrictUndefined turns a
missing piece into an error instead of silently empty C. Which helpers the program needs is
read from what the handlers recorded, never from their C. Same input, byte-identical output.
"""

from __future__ import annotations

import jinja2

from bpfrun import __version__
from bpfrun.compile.cstr import c_comment
from bpfrun.compile.cvalue import EVENT_CACHES
from bpfrun.compile.program import Program

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bpfrun.compile", "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # C, not HTML: every value placed here was escaped by lowering
)
RINGBUF_PAGES = 256  # 1 MiB: room for bursts between polls
STREQ_BYTES = 128  # bytes bpfrun_streq() compares at most (an unrolled loop)


def render(prog: Program, runbook: str, source: str) -> str:
    text = _ENV.get_template("program.c.j2").render(
        version=__version__,
        runbook=c_comment(runbook),
        step=c_comment(prog.step_id),
        source=c_comment(source),
        structs=prog.structs,
        maps=prog.maps,
        fill_maps=len(prog.fill_maps),
        handlers=prog.handlers,
        functions=prog.functions,
        caches=[cache.define for name, cache in EVENT_CACHES.items()
                if any(name in h.caches for h in prog.handlers)],
        streq=STREQ_BYTES if any(h.string_compare for h in prog.handlers) else 0,
        user_mode=any(h.user_mode_check for h in prog.handlers),
        stop_after=bool(prog.stop_after),
        stacks=prog.stack_storage if prog.uses_stacks else 0,
        user_stacks=prog.user_stacks,
        unwind=prog.unwind_user,
        events=len(prog.events),
        ringbuf_pages=RINGBUF_PAGES,
        ringbuf=prog.event_buffer == "ringbuf",
        # Perf-event handlers take a struct bpf_perf_event_data * (declared, never read).
        perf_event=any(a.kind in ("profile", "software") for a in prog.attaches),
    )
    return text
