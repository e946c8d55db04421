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


def unparse(node: Node) -> str:
    """Canonical text of an expression (used for result keys and generated-code comments)."""
    if isinstance(node, Literal):
        if node.kind == "str":
            return '"' + str(node.value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        if node.kind == "null":
            return "null"
        if node.kind == "bool":
            return "true" if node.value else "false"
        return str(node.value) if node.kind == "int" else f"{node.value}{'ns' if node.kind == 'duration' else 'B'}"
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Attr):
        return f"{unparse(node.obj)}.{node.name}"
    if isinstance(node, Index):
        return f"{unparse(node.obj)}[{unparse(node.index)}]"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Unary):
        return f"{node.op}{unparse(node.operand)}"
    if isinstance(node, Binary):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, In):
        return f"{unparse(node.item)} in [{', '.join(unparse(o) for o in node.options)}]"
    raise TypeError(node)
