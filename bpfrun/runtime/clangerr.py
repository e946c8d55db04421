"""Clang's and libbpf's words about a step's program, pointed back at the runbook.

BCC's clang and libbpf write to fd 2 directly: `StderrCapture` catches it, and
`clang_errors` turns the log into one line per error naming the runbook line the generated
C came from (the template writes `(runbook FILE:LINE:COL)` comments above each part).
"""

from __future__ import annotations

import os
import re
import tempfile

_CLANG_LINE = re.compile(r"^/virtual/main\.c:(\d+):(\d+): (error|warning): (.*)$")
_RUNBOOK_REF = re.compile(r"runbook ([^)]+)\)")



def clang_errors(c_text: str, log: str) -> str:
    """Clang's errors, each pointed back at the runbook line the C came from."""
    lines = c_text.splitlines()
    out = []
    for entry in log.splitlines():
        m = _CLANG_LINE.match(entry)
        if not m or m.group(3) != "error":
            continue
        lineno = int(m.group(1))
        origin = next((r.group(1) for i in range(min(lineno, len(lines)) - 1, -1, -1)
                       if (r := _RUNBOOK_REF.search(lines[i]))), None)
        where = f" (from {origin})" if origin else ""
        out.append(f"generated C line {lineno}{where}: {m.group(4)}")
    return "; ".join(out[:5]) or log.strip()[-2000:] or "clang failed"


class StderrCapture:
    """BCC's clang and libbpf write to fd 2 directly; capture it to report it properly."""

    def __enter__(self) -> StderrCapture:
        self.file = tempfile.TemporaryFile(mode="w+b")
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")
        self.file.close()
