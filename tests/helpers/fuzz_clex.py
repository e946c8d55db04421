"""Just enough of a C lexer to tell code from comments and literals in bpfrun's C.

There is no clang on the test machines (and gcc cannot parse BPF C), so the fuzz tests
check the emitted C this way: every comment and literal must be closed, and the code outside
them, with literals and numbers blanked, must not change when the runbook's strings do.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"""
    (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>\b(?:0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b)
  | (?P<word>[A-Za-z_]\w*)
  | (?P<space>\s+)
  | (?P<punct>[-+*/%=<>!&|^~?:;,.(){}\[\]#\\])
""", re.VERBOSE | re.DOTALL)


class CLexError(AssertionError):
    pass


def tokens(c_text: str) -> list[tuple[str, str]]:
    """(kind, text) of every token; raises CLexError at an unclosed comment or literal, or
    any character C has no use for outside them (a stray quote, a backtick)."""
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(c_text):
        m = _TOKEN.match(c_text, pos)
        if m is None or m.end() == pos:
            around = c_text[max(0, pos - 40):pos + 40]
            raise CLexError(f"cannot lex the C at {pos}: {around!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def skeleton(c_text: str) -> list[str]:
    """The code of `c_text` with every comment, literal and number blanked."""
    blank = {"comment": "/**/", "string": '""', "char": "''", "number": "0"}
    return [blank.get(kind, text) for kind, text in tokens(c_text)]


def code_only(c_text: str) -> str:
    """The code outside comments and literals, one token per space."""
    return " ".join(text for kind, text in tokens(c_text)
                    if kind not in ("comment", "string", "char"))
