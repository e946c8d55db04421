"""Load one BCC C file, attach its functions, wait for SIGINT/SIGTERM: the smallest possible
user space around a BPF program, so prototypes of generated code can be measured on their own.

    bccprog.py FILE.c tp:CATEGORY:EVENT=FUNCTION raw:EVENT=FUNCTION ...

Tokens `OFF__<struct>__<member>` in the C text are defined as the member's byte offset in the
running kernel (from its BTF), so raw-tracepoint code can read kernel structs correctly even
when BCC compiles against another kernel's headers. Prints "bench: attached" on stdout once
every function is attached, and on exit the number of entries of each map (a check that the
program saw events).
"""

from __future__ import annotations

import re
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import btf  # noqa: E402 (needs the path above)

_MAP = re.compile(r"^BPF_[A-Z_]+\(\s*(\w+)", re.M)
_OFF = re.compile(r"\bOFF__([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)__([A-Za-z0-9_]+)\b")


def offsets_cflags(text: str) -> list[str]:
    wanted: dict[str, set[str]] = {}
    for m in _OFF.finditer(text):
        wanted.setdefault(m.group(1), set()).add(m.group(2))
    flags = []
    for struct_name, members in wanted.items():
        for member, off in btf.member_offsets(struct_name, sorted(members)).items():
            flags.append(f"-DOFF__{struct_name}__{member}={off}")
    return flags


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    from bcc import BPF  # noqa: PLC0415 (system BCC, only on the machine that runs this)

    text = Path(argv[0]).read_text()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    b = BPF(text=text.encode(), cflags=["-Wno-unused-value", *offsets_cflags(text)])
    try:
        for spec in argv[1:]:
            kind, _, rest = spec.partition(":")
            target, _, fn = rest.partition("=")
            if kind == "tp":
                b.attach_tracepoint(tp=target, fn_name=fn)
            elif kind == "raw":
                b.attach_raw_tracepoint(tp=target, fn_name=fn)
            else:
                print(f"bccprog: unknown attach kind in {spec!r}", file=sys.stderr)
                return 2
        print("bench: attached", flush=True)
        while not stop.wait(0.5):
            pass
        sizes = []
        for name in _MAP.findall(text):
            try:
                sizes.append(f"{name}={len(b[name].items())}")
            except Exception:  # noqa: BLE001 (stack and ring tables cannot be listed)
                continue
        print("bench: entries " + " ".join(sizes), flush=True)
    finally:
        b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
