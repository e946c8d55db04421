"""Error family and diagnostics: every user-facing problem carries a location and a fix.

Library code raises these; only the CLI prints them and maps them to exit codes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

# Exit codes of the CLI contract (runbook-language.md §10).
EXIT_CLEAN = 0
EXIT_FIRED = 1
EXIT_INVALID = 2
EXIT_MACHINE = 3
EXIT_STEP_FAILED = 4

# The `style` of a Loc that points at an alias (`*name`) rather than at the scalar's text.
ALIAS_STYLE = "*"
# Longest source line shown under a diagnostic; longer ones are cut around the culprit.
MAX_SHOWN_LINE = 200


@dataclass(frozen=True)
class Loc:
    """A position in a source file; line and col are 1-based.

    `style` is the YAML scalar style of the node it points at ("" plain, '"', "'", "|", ">"),
    so that a position inside an expression string can be mapped back to the file.
    `length` is how many characters to underline.
    """

    file: str
    line: int
    col: int
    style: str = ""
    length: int = 1

    def inner(self, offset: int, length: int = 1) -> Loc:
        """The position `offset` characters into the scalar this Loc points at."""
        if self.style == ALIAS_STYLE:  # the text is at the anchor; show the alias as a whole
            return Loc(self.file, self.line, self.col, "", self.length)
        if self.style in ("|", ">"):
            # Block scalars start on the next line; expressions there are rarely multi-line.
            return Loc(self.file, self.line + 1, self.col + 2 + offset, "", length)
        quote = 1 if self.style in ('"', "'") else 0
        return Loc(self.file, self.line, self.col + quote + offset, "", length)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    message: str
    loc: Loc | None = None
    hint: str | None = None
    severity: str = "error"

    def render(self, sources: dict[str, str] | None = None,
               lines: dict[str, list[str]] | None = None) -> str:
        """`path:line:col: error: message`, the source line and a caret under the culprit.

        `lines` holds sources already split into lines, so that printing many diagnostics
        of one large file splits it once (ValidationError.render), not once per diagnostic.
        """
        where = f"{self.loc}: " if self.loc else ""
        out = [f"{where}{self.severity}: {self.message}"]
        src_lines = None
        if self.loc is not None:
            src_lines = (lines or {}).get(self.loc.file)
            text = (sources or {}).get(self.loc.file)
            if src_lines is None and text is not None:
                src_lines = text.splitlines()
        if self.loc and src_lines is not None and 1 <= self.loc.line <= len(src_lines):
            src = src_lines[self.loc.line - 1]
            if len(src) > MAX_SHOWN_LINE:  # a 1 MiB line helps nobody: show its neighbourhood
                start = max(0, self.loc.col - 1 - MAX_SHOWN_LINE // 2)
                src, col = src[start:start + MAX_SHOWN_LINE], self.loc.col - start
            else:
                col = self.loc.col
            col = min(col, len(src) + 1)  # never past the end of the line shown
            out.append(f"  {src}")
            pad = "".join("\t" if c == "\t" else " " for c in src[: col - 1])
            width = max(1, min(self.loc.length, len(src) + 1 - (col - 1)))
            out.append(f"  {pad}^{'~' * (width - 1)}")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


class BpfrunError(Exception):
    """Base of every error bpfrun reports to its user."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self, sources: dict[str, str] | None = None) -> str:
        return Diagnostic(self.message, None, self.hint).render(sources)


class UsageError(BpfrunError):
    """Bad command line: unknown runbook, bad --param value. Nothing was loaded."""


@dataclass
class ValidationError(BpfrunError):
    """One or more problems in a runbook, reported together."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        first = self.diagnostics[0].message if self.diagnostics else "invalid runbook"
        BpfrunError.__init__(self, first)

    def render(self, sources: dict[str, str] | None = None) -> str:
        srcs = {**self.sources, **(sources or {})}
        lines = {path: text.splitlines() for path, text in srcs.items()}
        return "\n".join(d.render(srcs, lines) for d in self.diagnostics)


class MachineError(BpfrunError):
    """This machine cannot run the runbook: not root, no BCC, no headers, probe missing."""

    exit_code = EXIT_MACHINE


class StepError(BpfrunError):
    """A step failed while loading or running (clang, verifier, attach)."""

    exit_code = EXIT_STEP_FAILED


class Diagnostics:
    """Collects diagnostics of one pass so that all problems are reported at once."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, message: str, loc: Loc | None = None, hint: str | None = None) -> None:
        self.items.append(Diagnostic(message, loc, hint))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, sources: dict[str, str] | None = None) -> None:
        if self.items:
            raise ValidationError(diagnostics=list(self.items), sources=dict(sources or {}))


def shown(text: str, keep: str = "") -> str:
    """`text` for a terminal: control characters (C0 and C1, ESC/CSI included) and format
    characters such as bidi overrides escaped as \\xNN / \\uNNNN, except those in `keep`
    (e.g. "\\n\\t"), so a runbook's text cannot drive or garble the terminal it is printed on."""
    if text.isprintable():
        return text
    return "".join(c if c in keep or unicodedata.category(c) not in ("Cc", "Cf")
                   else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                   for c in text)
