"""Seconds BCC takes to compile and load C files (no attaching): median of N tries each.

    compiletime.py N FILE.c ...   → prints one line per file: "compile FILE SECONDS"

Run in a separate process by run.py's `compile` section, which feeds it the C that
`bpfrun compile` generates and variants of it with #include lines removed: most of bpfrun's
start-up is clang parsing headers the program does not use.
"""

from __future__ import annotations

import statistics
import sys
import time


def main(argv: list[str]) -> int:
    from bcc import BPF  # noqa: PLC0415 (system BCC)

    n = int(argv[0])
    for path in argv[1:]:
        with open(path, "rb") as f:
            text = f.read()
        times = []
        for _ in range(n):
            t0 = time.monotonic()
            b = BPF(text=text, cflags=["-Wno-unused-value"])
            times.append(time.monotonic() - t0)
            b.cleanup()
        print(f"compile {path} {statistics.median(times):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
