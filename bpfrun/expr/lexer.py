"""Tokenizer of the expression language (runbook-language.md §8).

Turns a slice of a string into tokens that carry absolute offsets into that string, so that
an expression embedded in a `${{ ... }}` template reports positions in the whole template.
Literals are decoded here (numbers, durations, sizes, strings); every lexical mistake raises
ExprSyntaxError with the offset of the culprit and a hint on how to write it instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bpfrun import units


class ExprSyntaxError(Exception):
    """A syntax error at `offset` (characters into the text given to the parser)."""

    def __init__(self, message: str, offset: int, length: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.length = max(1, length)

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Token:
    """kind: "op" (value is the operator text), "name", "int", "str", "duration", "size",
    "kw" (true false null in; value is the keyword) or "eof"."""

    kind: str
    value: Any
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length

    def describe(self) -> str:
        """How to name this token in an error message."""
        if self.kind == "eof":
            return "end of the expression"
        if self.kind == "str":
            return "string"
        if self.kind in ("name", "kw"):
            return f"'{self.value}'"
        if self.kind == "op":
            return f"'{self.value}'"
        return "number"


KEYWORDS = frozenset({"true", "false", "null", "in"})

# Longest first, so that "<<" wins over "<" and "||" over "|".
_OPERATORS = ("||", "&&", "==", "!=", "<=", ">=", "<<", ">>",
              "|", "^", "&", "<", ">", "+", "-", "*", "/", "%", "!", ".", ",", "(", ")", "[", "]")

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEX_RE = re.compile(r"0[xX]([0-9A-Za-z_]*)")
# A fraction needs a digit right after the dot, so that `1.foo` stays `1` `.foo`.
_DEC_RE = re.compile(r"[0-9][0-9_]*(?:\.[0-9][0-9_]*)?")
_DIGITS_OK = re.compile(r"[0-9]+(?:_[0-9]+)*")
_HEX_OK = re.compile(r"[0-9A-Fa-f]+(?:_[0-9A-Fa-f]+)*")
# A unit glued to a number; µ (micro sign) and μ (Greek mu) both mean micro.
_UNIT_RE = re.compile(r"[A-Za-z_µμ][A-Za-z0-9_µμ]*")

_DURATION_UNITS = ("ns", "us", "µs", "ms", "s", "m", "h")
_SIZE_UNITS = ("B", "KB", "MB", "GB", "KiB", "MiB", "GiB")
_UNIT_HELP = "durations use ns us µs ms s m h, sizes use B KB MB GB KiB MiB GiB"

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "0": "\0"}
_ESCAPE_HELP = 'use \\" \\\\ \\n \\t \\0 or \\xHH'


class Lexer:
    """Tokens of text[start:end]; offsets stay relative to the whole `text`."""

    def __init__(self, text: str, start: int = 0, end: int | None = None) -> None:
        self.text = text
        self.start = start
        self.end = len(text) if end is None else end

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        pos = self.start
        while True:
            pos = self._skip_space(pos)
            if pos >= self.end:
                # Right after the last token, so that a caret for "missing value" or "missing
                # ')'" lands next to the text rather than after trailing blanks.
                out.append(Token("eof", None, out[-1].end if out else self.start, 1))
                return out
            tok = self._token_at(pos)
            out.append(tok)
            pos = tok.end

    def _skip_space(self, pos: int) -> int:
        while pos < self.end and self.text[pos] in " \t\r\n":
            pos += 1
        return pos

    def _token_at(self, pos: int) -> Token:
        ch = self.text[pos]
        if ch.isascii() and ch.isdigit():
            return self._number(pos)
        if ch == '"':
            return self._string(pos)
        m = _IDENT_RE.match(self.text, pos, self.end)
        if m:
            word = m.group()
            return Token("kw" if word in KEYWORDS else "name", word, pos, len(word))
        for op in _OPERATORS:
            if self.text.startswith(op, pos) and pos + len(op) <= self.end:
                return Token("op", op, pos, len(op))
        raise self._bad_char(pos)

    def _bad_char(self, pos: int) -> ExprSyntaxError:
        ch = self.text[pos]
        if ch == "=":
            return ExprSyntaxError("use == to compare (a single = is not an operator)", pos)
        if ch == "'":
            return ExprSyntaxError('strings use double quotes: "like this"', pos)
        if ch == "~":
            return ExprSyntaxError("'~' is not supported: use ^ with a mask, or !", pos)
        if ch in "{}":
            return ExprSyntaxError(f"unexpected '{ch}': ${{{{ }}}} is only for templates "
                                   "inside text; write the expression bare here", pos)
        shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
        return ExprSyntaxError(f"unexpected character '{shown}' in expression", pos)

    # --- numbers ---------------------------------------------------------------------------

    def _number(self, pos: int) -> Token:
        m = _HEX_RE.match(self.text, pos, self.end)
        if m:
            return self._hex(pos, m)
        m = _DEC_RE.match(self.text, pos, self.end)
        assert m is not None  # text[pos] is a digit
        num = m.group()
        intpart, _, frac = num.partition(".")
        for part in (intpart, frac) if "." in num else (intpart,):
            if not _DIGITS_OK.fullmatch(part):
                raise ExprSyntaxError("misplaced '_' in number: underscores go between digits, "
                                      "as in 1_000_000", pos, len(num))
        if len(intpart) > 1 and intpart[0] == "0":
            raise ExprSyntaxError("a number cannot start with 0 (there is no octal): write it "
                                  "without the leading zeros, or as hex like 0x1ed", pos, len(num))
        unit_m = _UNIT_RE.match(self.text, m.end(), self.end)
        digits = num.replace("_", "")
        if len(intpart) > _MAX_DIGITS:
            raise _out_of_range(pos, m.end() if unit_m is None else unit_m.end())
        if unit_m is None:
            if "." in num:
                raise ExprSyntaxError("a number with a fraction needs a unit, as in 1.5ms or "
                                      "2.5KiB (plain numbers are integers)", pos, len(num))
            return Token("int", int(digits), pos, len(num))
        unit = unit_m.group().replace("μ", "µ")
        length = unit_m.end() - pos
        if unit in _DURATION_UNITS:
            kind, scale = "duration", units.parse_duration("1" + unit)
        elif unit in _SIZE_UNITS:
            kind, scale = "size", units.parse_size("1" + unit)
        else:
            raise ExprSyntaxError(f"unknown unit '{unit_m.group()}' after {num}: {_UNIT_HELP} "
                                  "(put a space before an operator or name)",
                                  unit_m.start(), len(unit_m.group()))
        exact = Decimal(digits) * scale
        if exact != exact.to_integral_value():
            what = "nanoseconds" if kind == "duration" else "bytes"
            raise ExprSyntaxError(f"{self.text[pos:pos + length]} is not a whole number of "
                                  f"{what}", pos, length)
        if exact > units.U64_MAX:  # ints are checked where they are used (cexpr.py)
            what = "nanoseconds" if kind == "duration" else "bytes"
            raise ExprSyntaxError(f"{self.text[pos:pos + length]} does not fit in 64 bits (as "
                                  f"{what})", pos, length)
        return Token(kind, int(exact), pos, length)

    def _hex(self, pos: int, m: re.Match[str]) -> Token:
        body = m.group(1)
        if not body:
            raise ExprSyntaxError("'0x' needs hex digits after it, as in 0xff", pos, 2)
        if not _HEX_OK.fullmatch(body):
            bad = next((i for i, c in enumerate(body) if c not in "0123456789abcdefABCDEF_"),
                       None)
            if bad is not None and body[:bad] and _HEX_OK.fullmatch(body[:bad]):
                raise ExprSyntaxError(f"'{body[bad]}' is not a hex digit (hex numbers take "
                                      "0-9 a-f and have no unit)", m.start(1) + bad)
            raise ExprSyntaxError("malformed hex number: use 0x followed by hex digits, with "
                                  "'_' only between digits", pos, m.end() - pos)
        if len(body) > _MAX_DIGITS:
            raise _out_of_range(pos, m.end())
        return Token("int", int(body.replace("_", ""), 16), pos, m.end() - pos)

    # --- strings ---------------------------------------------------------------------------

    def _string(self, pos: int) -> Token:
        out: list[str] = []
        i = pos + 1
        while True:
            if i >= self.end or self.text[i] in "\r\n":
                raise ExprSyntaxError('unterminated string: add a closing "', pos,
                                      max(1, i - pos))
            ch = self.text[i]
            if ch == '"':
                return Token("str", "".join(out), pos, i + 1 - pos)
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= self.end:
                raise ExprSyntaxError('unterminated string: add a closing "', pos, i + 1 - pos)
            esc = self.text[i + 1]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 2
            elif esc == "x":
                hh = self.text[i + 2:min(i + 4, self.end)]
                if len(hh) != 2 or any(c not in "0123456789abcdefABCDEF" for c in hh):
                    good = len(hh) - len(hh.lstrip("0123456789abcdefABCDEF"))
                    raise ExprSyntaxError("\\x needs two hex digits, as in \\x41", i,
                                          2 + good)
                code = int(hh, 16)
                if code > 0x7F:
                    # Above 0x7f a \x escape would be ambiguous (one byte, or the UTF-8 of
                    # U+00HH?); non-ASCII text is written as itself instead.
                    raise ExprSyntaxError("\\x escapes go up to \\x7f; write non-ASCII "
                                          "characters directly", i, 4)
                out.append(chr(code))
                i += 4
            else:
                shown = esc if esc.isprintable() else f"U+{ord(esc):04X}"
                raise ExprSyntaxError(f"unknown escape '\\{shown}' in string: {_ESCAPE_HELP}",
                                      i, 2)


# Numbers are what a kernel program can hold: 64 bits (cexpr.py says so of a value past
# that). Digit strings longer than any such number are refused before converting them:
# Python refuses past 4300 digits, and converts slowly below that.
_MAX_DIGITS = 40


def _out_of_range(start: int, end: int) -> ExprSyntaxError:
    return ExprSyntaxError(f"a number of more than {_MAX_DIGITS} digits does not fit in 64 "
                           "bits", start, end - start)

