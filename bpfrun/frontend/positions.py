"""Where each character of a YAML scalar's value stands in the file.

An expression's error points at a character of the parsed value; the caret must point at
the same character in the file. That is a plain offset only for a plain or quoted scalar on
one line without escapes. Block scalars drop indentation, double quotes have escapes (`\\t`
is two characters in the file, one in the value), single quotes double their quote, and
multi-line flow scalars fold their line breaks into spaces. Each function returns one
(line, col) per character of the value, or () when the layout is not one it can follow, in
which case Loc.inner's plain offset is used.
"""

from __future__ import annotations

from bpfrun.errors import ALIAS_STYLE, Loc

CharLocs = tuple[tuple[int, int], ...]
# Length in the file of a double-quoted escape, by the character after the backslash.
_ESCAPE_LENGTHS = {"x": 4, "u": 6, "U": 10}


def char_locs(lines: list[str], loc: Loc, value: str) -> CharLocs:
    if loc.style == ALIAS_STYLE:
        return ()  # an alias: its value is written elsewhere
    if loc.style in ("|", ">"):
        return block_char_locs(lines, loc, value)
    if loc.style == '"':
        return _double_quoted(lines, loc, value)
    if loc.style == "'":
        return _single_quoted(lines, loc, value)
    return _plain(lines, loc, value)


def block_char_locs(lines: list[str], loc: Loc, value: str) -> CharLocs:
    """The value's lines are the source lines after the indicator, less their indentation;
    a literal block (|) joins them with newlines, a folded one (>) with spaces. Each joining
    character is placed at the end of the line before it."""
    out: list[tuple[int, int]] = []
    indent = None
    for lineno in range(loc.line + 1, len(lines) + 1):
        if len(out) >= len(value):
            break
        text = lines[lineno - 1]
        if not text.strip():
            continue
        here = len(text) - len(text.lstrip(" "))
        indent = here if indent is None else indent
        if here < indent:
            break
        if out:
            out.append((lineno - 1, len(lines[lineno - 2]) + 1))  # the joining character
        out += [(lineno, indent + 1 + j) for j in range(len(text) - indent)]
    if out and len(out) >= len(value.rstrip("\n")):  # `|` keeps the final newline
        out += [out[-1]] * (len(value) - len(out))
        return tuple(out)
    return ()


def _double_quoted(lines: list[str], loc: Loc, value: str) -> CharLocs:
    if not 1 <= loc.line <= len(lines):
        return ()
    src, i = lines[loc.line - 1], loc.col  # loc.col is the quote's column: i indexes after it
    out: list[tuple[int, int]] = []
    while i < len(src) and src[i] != '"':
        width = 1
        if src[i] == "\\" and i + 1 < len(src):
            width = _ESCAPE_LENGTHS.get(src[i + 1], 2)
        out.append((loc.line, i + 1))
        i += width
    return tuple(out) if len(out) == len(value) else ()


def _single_quoted(lines: list[str], loc: Loc, value: str) -> CharLocs:
    if not 1 <= loc.line <= len(lines):
        return ()
    src, i = lines[loc.line - 1], loc.col
    out: list[tuple[int, int]] = []
    while i < len(src):
        if src[i] == "'":
            if src[i + 1:i + 2] != "'":
                break
            out.append((loc.line, i + 1))
            i += 2
            continue
        out.append((loc.line, i + 1))
        i += 1
    return tuple(out) if len(out) == len(value) else ()


def _plain(lines: list[str], loc: Loc, value: str) -> CharLocs:
    """A plain scalar folded over several lines: each line break became one space."""
    if "\n" in value or not 1 <= loc.line <= len(lines):
        return ()
    first = lines[loc.line - 1][loc.col - 1:].rstrip()
    if len(first) >= len(value):
        return ()  # on one line: the plain offset is right
    out = [(loc.line, loc.col + j) for j in range(len(first))]
    lineno = loc.line
    while len(out) < len(value) and lineno < len(lines):
        lineno += 1
        text = lines[lineno - 1]
        stripped = text.strip()
        if not stripped:
            return ()
        out.append((lineno - 1, len(lines[lineno - 2].rstrip()) + 1))  # the folded space
        start = len(text) - len(text.lstrip())
        out += [(lineno, start + 1 + j) for j in range(len(stripped))]
    return tuple(out) if len(out) == len(value) else ()
