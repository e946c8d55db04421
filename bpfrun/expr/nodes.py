"""Expression syntax tree. Every node records where it came from inside the expression text.

`offset` and `length` are character positions in the expression string; combined with the
YAML scalar's Loc (Loc.inner) they give file:line:col for diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Node:
    offset: int
    length: int


@dataclass(frozen=True)
class Literal(Node):
    """kind: "int" | "str" | "bool" | "null" | "duration" (value in ns) | "size" (bytes)."""

    value: Any
    kind: str


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Attr(Node):
    obj: Node
    name: str


@dataclass(frozen=True)
class Index(Node):
    obj: Node
    index: Node


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "!" or "-"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # * / % + - << >> & ^ | < <= > >= == != && ||
    left: Node
    right: Node


@dataclass(frozen=True)
class In(Node):
    item: Node
    options: tuple[Node, ...]


def dotted(node: Node) -> str | None:
    """'args.filename' for Attr(Name('args'), 'filename'); None if not a plain dotted name."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Attr):
        base = dotted(node.obj)
        return f"{base}.{node.name}" if base is not None else None
    return None


def _quote(text: str) -> str:
    """A string literal the lexer reads back as `text` (it has no raw line breaks)."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\0": "\\0"}


def _postfix_operand(node: Node) -> str:
    """`(-x).f`, `(x in [1])[0]`: a prefix or `in` operand would otherwise bind differently."""
    text = unparse(node)
    return f"({text})" if isinstance(node, (Unary, In)) else text


def unparse(node: Node) -> str:
    """Canonical text of an expression (used for result keys and generated-code comments).

    Parsing the text gives back the same tree (up to offsets): binary operations are
    parenthesised, and so are the operands that would otherwise regroup.
    """
    if isinstance(node, Literal):
        if node.kind == "str":
            return _quote(str(node.value))
        if node.kind == "null":
            return "null"
        if node.kind == "bool":
            return "true" if node.value else "false"
        if node.kind == "int":
            return str(node.value)
        return f"{node.value}{'ns' if node.kind == 'duration' else 'B'}"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Attr):
        return f"{_postfix_operand(node.obj)}.{node.name}"
    if isinstance(node, Index):
        return f"{_postfix_operand(node.obj)}[{unparse(node.index)}]"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Unary):
        operand = unparse(node.operand)
        return f"{node.op}({operand})" if isinstance(node.operand, In) else f"{node.op}{operand}"
    if isinstance(node, Binary):
        left, right = (f"({unparse(n)})" if isinstance(n, In) else unparse(n)
                       for n in (node.left, node.right))
        return f"({left} {node.op} {right})"
    if isinstance(node, In):
        item = f"({unparse(node.item)})" if isinstance(node.item, In) else unparse(node.item)
        return f"{item} in [{', '.join(unparse(o) for o in node.options)}]"
    raise TypeError(node)
