"""Read a runbook file's text, refusing at once what is no runbook text at all.

A folder, a named pipe (reading it would block forever), a device such as /dev/zero (it
never ends), a file over MAX_RUNBOOK_BYTES, bytes that are not UTF-8 (a binary, UTF-16):
each is an error at its place (path:line:col), exit 2, before any parsing.
"""

from __future__ import annotations

import os
import stat

from bpfrun.errors import Diagnostic, Loc, UsageError

MAX_RUNBOOK_BYTES = 1024 * 1024  # a runbook is a page or two; anything this big is a mistake


def read_runbook(path: str) -> str:
    """The text of the runbook file at `path`; raises UnreadableRunbook."""
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise UnreadableRunbook(path, f"cannot read runbook {path}: {e.strerror or e}") from e
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise UnreadableRunbook(path, f"cannot read runbook {path}: it is a folder")
        if not stat.S_ISREG(mode):
            raise UnreadableRunbook(path, f"cannot read runbook {path}: not a regular file "
                                    "(a pipe, socket or device)")
        chunks: list[bytes] = []
        while sum(map(len, chunks)) <= MAX_RUNBOOK_BYTES:
            chunk = os.read(fd, MAX_RUNBOOK_BYTES + 1)
            if not chunk:
                break
            chunks.append(chunk)
        data = b"".join(chunks)
    except OSError as e:
        raise UnreadableRunbook(path, f"cannot read runbook {path}: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if len(data) > MAX_RUNBOOK_BYTES:
        raise UnreadableRunbook(path, f"{path} is larger than {MAX_RUNBOOK_BYTES // 1024} KiB; "
                                "a runbook is a short text file", "is this the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[:e.start].decode("utf-8", "replace")
        line, col = before.count("\n") + 1, e.start - (before.rfind("\n") + 1) + 1
        raise UnreadableRunbook(path, f"{path} is not UTF-8 text ({e.reason} at byte {e.start})",
                                "save it as UTF-8 (a runbook is a YAML text file)",
                                Loc(path, line, col)) from e


class UnreadableRunbook(UsageError):
    """A runbook file that is no YAML text: rendered at its place like a ValidationError."""

    def __init__(self, path: str, message: str, hint: str | None = None,
                 loc: Loc | None = None) -> None:
        super().__init__(message, hint)
        self.loc = loc or Loc(path, 1, 1)

    def render(self, sources: dict[str, str] | None = None) -> str:
        return Diagnostic(self.message, self.loc, self.hint).render()
