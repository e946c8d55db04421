"""Parser of the expression language (runbook-language.md §8) and of `${{ expr }}` templates.

`parse` turns one expression into the syntax tree of bpfrun.expr.nodes; `parse_template`
splits a string into literal text and embedded expressions. Every node records the span of
source text it came from, and every mistake raises ExprSyntaxError at a precise offset with
a short hint on how to fix it. Binary operators use C precedence (lowest first):
`||`, `&&`, `|`, `^`, `&`, `== !=`, `< <= > >= in`, `<< >>`, `+ -`, `* / %`; then unary
`! -`, postfix `.name` `[index]`, calls `name(args)`, and primaries. `-1` is Unary("-", 1).
Parentheses produce no node of their own: the inner node's span is widened to cover them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from bpfrun.expr.lexer import ExprSyntaxError, Lexer, Token
from bpfrun.expr.nodes import Attr, Binary, Call, In, Index, Literal, Name, Node, Unary

__all__ = ["ExprSyntaxError", "TemplateExpr", "children", "parse", "parse_template", "walk"]

_PREC = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6,
         "<": 7, "<=": 7, ">": 7, ">=": 7, "<<": 8, ">>": 8,
         "+": 9, "-": 9, "*": 10, "/": 10, "%": 10}
_IN_PREC = 7
_COMPARISON_LEVELS = (6, 7)
# Bounds keep the recursive-descent parser, and the recursive visitors downstream, far from
# Python's recursion limit whatever a runbook contains.
MAX_NESTING = 32
MAX_DEPTH = 200

_OPERAND_START_KINDS = ("name", "int", "str", "duration", "size")
_UNIT_NAMES = frozenset({"ns", "us", "ms", "s", "m", "h", "B", "KB", "MB", "GB", "KiB", "MiB",
                         "GiB"})


@dataclass(frozen=True)
class TemplateExpr:
    """An expression found inside `${{ ... }}`; `offset` is where `text` starts in the template,
    and the node's offsets are relative to the whole template string too."""

    node: Node
    text: str
    offset: int


def parse(text: str) -> Node:
    """The syntax tree of `text`, which must hold exactly one expression."""
    return _Parser(text, 0, len(text)).parse_all()


def parse_template(text: str) -> list[str | TemplateExpr]:
    """Split "p99 is ${{ dist.p99 }} ms" into literal strings and TemplateExpr pieces.

    Empty literal pieces are left out; text without `${{` gives [text].
    """
    pieces: list[str | TemplateExpr] = []
    literal_start = 0
    while True:
        opening = text.find("${{", literal_start)
        if opening < 0:
            break
        closing = _find_template_close(text, opening + 3)
        if closing < 0:
            raise ExprSyntaxError("unterminated '${{': close it with '}}'", opening, 3)
        if opening > literal_start:
            pieces.append(text[literal_start:opening])
        start, end = opening + 3, closing
        while start < end and text[start] in " \t\r\n":
            start += 1
        while end > start and text[end - 1] in " \t\r\n":
            end -= 1
        if start == end:
            raise ExprSyntaxError("empty '${{ }}': put an expression inside, as in "
                                  "${{ params.duration }}", opening, closing + 2 - opening)
        node = _Parser(text, start, end).parse_all()
        pieces.append(TemplateExpr(node, text[start:end], start))
        literal_start = closing + 2
    if literal_start < len(text) or not pieces:
        pieces.append(text[literal_start:])
    return pieces


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of `node`, in source order."""
    if isinstance(node, Attr):
        return (node.obj,)
    if isinstance(node, Index):
        return (node.obj, node.index)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.item, *node.options)
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree in pre-order (a node before its children, children in order)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def _find_template_close(text: str, pos: int) -> int:
    """Index of the `}}` ending a template expression, skipping `}}` inside string literals."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == '"':
            end = _string_end(text, pos)
            # An unterminated string is left for the lexer to report precisely.
            pos = end if end > 0 else pos + 1
        elif text.startswith("}}", pos):
            return pos
        else:
            pos += 1
    return -1


def _string_end(text: str, pos: int) -> int:
    """Index just past the string literal opening at `pos`, or -1 if it is not closed."""
    i = pos + 1
    while i < len(text) and text[i] not in "\r\n":
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return -1


def _span(first: Node | Token, last: Node | Token) -> tuple[int, int]:
    end = last.offset + last.length
    return first.offset, end - first.offset


class _Parser:
    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.start = start
        self.tokens = Lexer(text, start, end).tokens()
        self.pos = 0
        self.nesting = 0

    # --- token helpers -----------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.peek()
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def is_op(self, value: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "op" and tok.value == value

    def starts_operand(self, tok: Token) -> bool:
        return (tok.kind in _OPERAND_START_KINDS
                or (tok.kind == "kw" and tok.value != "in")
                or (tok.kind == "op" and tok.value in ("(", "!")))

    def enter(self, tok: Token) -> None:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise ExprSyntaxError(f"expression nested too deeply (more than {MAX_NESTING} "
                                  "levels of brackets): split it up", tok.offset)

    # --- grammar -----------------------------------------------------------------------

    def parse_all(self) -> Node:
        first = self.peek()
        if first.kind == "eof":
            raise ExprSyntaxError("empty expression: write a value or a condition, as in "
                                  "pid == 42", self.start)
        node = self.expression()
        tok = self.peek()
        if tok.kind != "eof":
            raise self.trailing(tok)
        if _depth(node) > MAX_DEPTH:
            raise ExprSyntaxError(f"expression too deep (more than {MAX_DEPTH} levels of "
                                  "operators): use x in [a, b, ...] or split it up",
                                  node.offset, node.length)
        return node

    def trailing(self, tok: Token) -> ExprSyntaxError:
        if tok.kind == "name" and tok.value in ("and", "or"):
            op = "&&" if tok.value == "and" else "||"
            return ExprSyntaxError(f"use {op} instead of '{tok.value}'", tok.offset, tok.length)
        prev = self.tokens[self.pos - 1] if self.pos > 0 else None
        number = self.text[prev.offset:prev.end] if prev is not None else ""
        if (tok.kind == "name" and prev is not None and prev.kind == "int"
                and tok.value in _UNIT_NAMES and not number.lower().startswith("0x")):
            return ExprSyntaxError(f"write {number}{tok.value} without a space",
                                   prev.offset, tok.end - prev.offset)
        if tok.kind == "op" and tok.value in (")", "]"):
            return ExprSyntaxError(f"unmatched '{tok.value}'", tok.offset)
        hint = ": is an operator such as && or == missing?" if self.starts_operand(tok) else ""
        return ExprSyntaxError(f"unexpected {tok.describe()} after the end of the "
                               f"expression{hint}", tok.offset, tok.length)

    def expression(self) -> Node:
        return self.binary(1)

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        last_prec = 0
        while True:
            tok = self.peek()
            if tok.kind == "kw" and tok.value == "in":
                prec = _IN_PREC
            elif tok.kind == "op" and tok.value in _PREC:
                prec = _PREC[tok.value]
            else:
                return left
            if prec < min_prec:
                return left
            if prec == last_prec and prec in _COMPARISON_LEVELS:
                raise ExprSyntaxError(f"comparisons do not chain: write a < b && b < c, or add "
                                      f"parentheses before '{tok.value}'", tok.offset, tok.length)
            self.advance()
            if tok.kind == "kw":
                left = self.in_list(left, tok)
            else:
                right = self.binary(prec + 1)
                left = Binary(*_span(left, right), op=tok.value, left=left, right=right)
            last_prec = prec

    def in_list(self, item: Node, in_tok: Token) -> Node:
        opening = self.peek()
        if not self.is_op("["):
            raise ExprSyntaxError("'in' needs a list in brackets, as in x in [1, 2]",
                                  opening.offset, opening.length)
        self.advance()
        self.enter(opening)
        if self.is_op("]"):
            raise ExprSyntaxError("empty list after 'in': give at least one value",
                                  self.peek().offset)
        options: list[Node] = []
        while True:
            options.append(self.expression())
            tok = self.advance()
            if tok.kind == "op" and tok.value == "," and self.is_op("]"):
                tok = self.advance()  # a trailing comma is allowed in lists
            if tok.kind == "op" and tok.value == "]":
                break
            if not (tok.kind == "op" and tok.value == ","):
                raise self.missing("]", "the list after 'in'", tok, comma=True)
        self.nesting -= 1
        return In(*_span(item, tok), item=item, options=tuple(options))

    def missing(self, closer: str, what: str, found: Token, comma: bool = False) -> ExprSyntaxError:
        if found.kind == "name" and found.value in ("and", "or"):
            return self.trailing(found)
        expected = f"',' or '{closer}'" if comma else f"'{closer}'"
        return ExprSyntaxError(f"expected {expected} to close {what}, found {found.describe()}",
                               found.offset, found.length)

    def unary(self) -> Node:
        ops: list[Token] = []
        while self.is_op("!") or self.is_op("-"):
            ops.append(self.advance())
        node = self.postfix()
        for op in reversed(ops):
            node = Unary(*_span(op, node), op=op.value, operand=node)
        return node

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            tok = self.peek()
            if self.is_op("."):
                self.advance()
                name = self.advance()
                if name.kind not in ("name", "kw"):
                    raise ExprSyntaxError(f"expected a field name after '.', found "
                                          f"{name.describe()}", name.offset, name.length)
                node = Attr(*_span(node, name), obj=node, name=name.value)
            elif self.is_op("["):
                self.advance()
                self.enter(tok)
                index = self.expression()
                closing = self.advance()
                if not (closing.kind == "op" and closing.value == "]"):
                    raise self.missing("]", "the '['", closing)
                self.nesting -= 1
                node = Index(*_span(node, closing), obj=node, index=index)
            elif self.is_op("("):
                raise ExprSyntaxError("only a function name can be called, as in "
                                      "str(args.filename); is an operator missing before '('?",
                                      tok.offset)
            else:
                return node

    def primary(self) -> Node:
        tok = self.advance()
        if tok.kind in ("int", "str", "duration", "size"):
            return Literal(tok.offset, tok.length, value=tok.value, kind=tok.kind)
        if tok.kind == "kw":
            if tok.value in ("true", "false"):
                return Literal(tok.offset, tok.length, value=tok.value == "true", kind="bool")
            if tok.value == "null":
                return Literal(tok.offset, tok.length, value=None, kind="null")
            raise ExprSyntaxError("'in' needs a value before it, as in x in [1, 2]",
                                  tok.offset, tok.length)
        if tok.kind == "name":
            if tok.value == "not" and self.starts_operand(self.peek()):
                raise ExprSyntaxError("use ! instead of 'not'", tok.offset, tok.length)
            if self.is_op("("):
                return self.call(tok)
            return Name(tok.offset, tok.length, name=tok.value)
        if tok.kind == "op" and tok.value == "(":
            self.enter(tok)
            inner = self.expression()
            closing = self.advance()
            if not (closing.kind == "op" and closing.value == ")"):
                raise self.missing(")", "the '('", closing)
            self.nesting -= 1
            offset, length = _span(tok, closing)
            return dataclasses.replace(inner, offset=offset, length=length)
        raise self.no_operand(tok)

    def call(self, name: Token) -> Node:
        opening = self.advance()
        self.enter(opening)
        args: list[Node] = []
        closing = self.peek()
        if self.is_op(")"):
            self.advance()
        else:
            while True:
                args.append(self.expression())
                closing = self.advance()
                if closing.kind == "op" and closing.value == ")":
                    break
                if not (closing.kind == "op" and closing.value == ","):
                    raise self.missing(")", f"the call of {name.value}(", closing, comma=True)
        self.nesting -= 1
        return Call(*_span(name, closing), func=name.value, args=tuple(args))

    def no_operand(self, tok: Token) -> ExprSyntaxError:
        # advance() stays on the eof token, so only for other tokens is pos one past `tok`.
        index = len(self.tokens) - 1 if tok.kind == "eof" else self.pos - 1
        prev = self.tokens[index - 1] if index > 0 else None
        after = f" after {prev.describe()}" if prev is not None else ""
        if tok.kind == "eof":
            return ExprSyntaxError(f"expected a value{after}, but the expression ends there",
                                   tok.offset)
        return ExprSyntaxError(f"unexpected {tok.describe()}{after}: expected a value "
                               "(a name, number, string or '(')", tok.offset, tok.length)


def _depth(node: Node) -> int:
    deepest = 0
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children(current))
    return deepest
