"""Load a runbook's YAML into plain data, remembering where every key and value came from.

PyYAML only composes the node graph; the data is built from it here, so that every value keeps
its file:line:col and scalars follow YAML 1.2 core rules (`0777` and `1:30` stay what they
look like). Rejected, with a fix: YAML 1.1 booleans such as `no` as values (a key is always a
name), duplicate and non-string keys, merge keys (`<<`, dropped by YAML 1.2), tags other than
!!str/!!seq/!!map, and aliases expanding past MAX_EXPANDED_NODES ("billion laughs").
An aliased value is placed at its alias (a Loc of style ALIAS_STYLE: a position inside it is
the alias itself), the values inside an aliased list or mapping at their anchored original.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import BaseResolver

from bpfrun.errors import ALIAS_STYLE, Diagnostic, Loc, ValidationError
from bpfrun.frontend.source import MAX_RUNBOOK_BYTES, read_runbook

MAX_EXPANDED_NODES = 10_000
MAX_DEPTH = 64  # nesting of lists and mappings; runbooks need about ten

KeyPath = tuple[str | int, ...]

_PLAIN = "bpfrun:plain"  # tag given to untagged plain scalars, resolved below (YAML 1.2 core)
_STR, _SEQ, _MAP = (BaseResolver.DEFAULT_SCALAR_TAG, BaseResolver.DEFAULT_SEQUENCE_TAG,
                    BaseResolver.DEFAULT_MAPPING_TAG)
_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_YAML11_BOOLS = {"yes": "true", "y": "true", "on": "true", "no": "false", "n": "false",
                 "off": "false"}
# YAML 1.2 core schema resolution of plain scalars; whatever matches none of these is a str.
_CORE: list[tuple[re.Pattern[str], Callable[[str], Any]]] = [
    (re.compile(r"[-+]?[0-9]+"), int),
    (re.compile(r"0o[0-7]+"), lambda t: int(t[2:], 8)),
    (re.compile(r"0x[0-9a-fA-F]+"), lambda t: int(t[2:], 16)),
    (re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"), float),
    (re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"), lambda t: float(t.replace(".", ""))),
]
# Friendlier wording for PyYAML's most common complaints: (fragment, message, hint).
_SYNTAX_HINTS = [
    ("cannot start any token", "a tab or reserved character where YAML expects content",
     "indent with spaces, never tabs; quote values that start with @ or `"),
    ("mapping values are not allowed here", "unexpected ':' in a value",
     "quote the value when it contains ': ', or fix the indentation of this key"),
    ("could not find expected ':'", "expected 'key: value' here",
     "check the indentation, and close any quote or bracket opened above"),
    ("expected <block end>", "the indentation of this line does not fit the lines above",
     "line it up with the keys or list items it belongs to"),
    ("found duplicate anchor", "this anchor name is already used",
     "give each anchor (&name) its own name"),
    ("expected a single document", "a runbook file holds a single YAML document",
     "remove the second '---' and what follows, or move it into its own file"),
]


@dataclass
class Document:
    """A runbook's plain data (dict/list/str/int/float/bool/None) and where each part came from.

    `locs` maps a path of keys and list indexes, e.g. ("steps", 0, "probes", 1, "where"), to
    the Loc of that value; `key_locs` maps the same path to the Loc of its mapping key.
    """

    path: str
    text: str
    data: Any
    locs: dict[KeyPath, Loc] = field(default_factory=dict)
    key_locs: dict[KeyPath, Loc] = field(default_factory=dict)
    findings: list[Diagnostic] = field(default_factory=list)

    def loc(self, path: Sequence[str | int]) -> Loc:
        """Loc of the value at `path`, or of its nearest known ancestor; 1:1 for the root."""
        for n in range(len(path), -1, -1):
            if tuple(path[:n]) in self.locs:
                return self.locs[tuple(path[:n])]
        return Loc(self.path, 1, 1)

    def key_loc(self, path: Sequence[str | int]) -> Loc:
        """Loc of the mapping key that introduces `path`, falling back to loc()."""
        return self.key_locs.get(tuple(path)) or self.loc(path)


@dataclass
class _Alias:
    """Stands in for the node an alias refers to, so that its own position is not lost."""

    anchor: str
    target: Node
    mark: Any


class _Loader(yaml.SafeLoader):
    """Composes only (its constructor is never used); plain scalars keep a marker tag."""

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)

    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event, target = self.peek_event(), super().compose_node(parent, index)
            assert target is not None  # the composer raises on undefined aliases
            return _Alias(event.anchor, target, event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:  # before Python's own recursion limit, with a place
                raise _TooDeepError(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_file(path: str | os.PathLike[str], keep_findings: bool = False) -> Document:
    """Read and parse one runbook file; see load_text. Raises UnreadableRunbook for what is
    no runbook text at all: a folder, a pipe or device, a file too large, not UTF-8."""
    display = os.fspath(path)
    return load_text(read_runbook(display), display, keep_findings)


def load_text(text: str, path: str = "<string>", keep_findings: bool = False) -> Document:
    """Parse one runbook; raises ValidationError listing every problem found.

    With `keep_findings`, strictness findings that leave the data usable (YAML 1.1 booleans,
    duplicate keys, tags, merge keys) are kept in Document.findings instead of raised, so
    that later checks can report their own problems in the same pass.
    """
    if len(text) > MAX_RUNBOOK_BYTES:
        _fail(path, "", [Diagnostic(f"the runbook is larger than {MAX_RUNBOOK_BYTES // 1024} "
                                    "KiB; a runbook is a short text file", Loc(path, 1, 1))])
    doc = _load(text, path)
    if doc.findings and not keep_findings:
        _fail(path, text, doc.findings)
    return doc


def _load(text: str, path: str) -> Document:
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # the Reader already rejects unprintable characters here
        root = loader.get_single_node()
    except _TooDeepError as e:
        _fail(path, text, [Diagnostic(f"the document is nested more than {MAX_DEPTH} levels "
                                      "deep", Loc(path, e.mark.line + 1, e.mark.column + 1),
                                      "a runbook needs about ten levels; check the brackets")])
    except yaml.MarkedYAMLError as e:
        _fail(path, text, [_syntax_diagnostic(e, path, text)])
    except ReaderError as e:
        line, col = text.count("\n", 0, e.position), e.position - text.rfind("\n", 0, e.position)
        _fail(path, text, [Diagnostic(f"character #x{e.character:04x} is not allowed in YAML",
                                      Loc(path, line + 1, col), "remove it or escape it")])
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or (root.tag == _PLAIN and root.value in _NULLS):
        _fail(path, text, [Diagnostic("empty runbook", Loc(path, 1, 1), "a runbook needs at "
                                      "least apiVersion, name, title and steps")])
    builder = _Builder(Document(path, text, None))
    builder.check_aliases(root)  # before building: expanding a billion laughs would hang
    if builder.errors:
        _fail(path, text, builder.errors)
    builder.doc.data = builder.build(root, ())
    if not isinstance(builder.doc.data, dict):
        what = "a list" if isinstance(builder.doc.data, list) else "a single value"
        builder.error(root, f"a runbook must be a mapping (apiVersion: ..., name: ..., "
                      f"steps: ...), not {what}")
        _fail(path, text, builder.errors)
    builder.doc.findings = sorted(builder.errors, key=_position)
    return builder.doc


def _position(d: Diagnostic) -> tuple[int, int]:
    return (d.loc.line, d.loc.col) if d.loc else (0, 0)


def _fail(path: str, text: str, diagnostics: list[Diagnostic]) -> NoReturn:
    diagnostics.sort(key=_position)
    raise ValidationError(diagnostics=diagnostics, sources={path: text})


def _syntax_diagnostic(e: yaml.MarkedYAMLError, path: str, text: str) -> Diagnostic:
    mark = e.problem_mark or e.context_mark
    problem = (e.problem or e.context or "invalid YAML").strip()
    message = f"invalid YAML: {problem.replace('<stream end>', 'the end of the file')}"
    hint = None
    what = (e.context or "").strip().removeprefix("while parsing ").removeprefix("while scanning ")
    if e.context_mark and what in ("a flow sequence", "a flow mapping", "a quoted scalar") \
            and ("stream end" in problem or "end of stream" in problem):
        # Pointing past the last line helps nobody; point at what was left open.
        return Diagnostic(f"invalid YAML: {what} that starts here is never closed",
                          Loc(path, e.context_mark.line + 1, e.context_mark.column + 1),
                          "close it (] } or the quote), or check the indentation")
    if e.context and e.context_mark and e.problem_mark and e.context_mark != e.problem_mark:
        cm = e.context_mark
        message += f" ({e.context.strip()} at line {cm.line + 1}, col {cm.column + 1})"
    for fragment, better, fix in _SYNTAX_HINTS:
        if fragment in f"{e.problem} {e.context}":
            message, hint = f"invalid YAML: {better}", fix
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    lines = text.rstrip().splitlines()
    if lines and line > len(lines):  # at the end of the file: show its last line instead
        line, col = len(lines), len(lines[-1]) + 1
    return Diagnostic(message, Loc(path, line, col), hint)


class _Builder:
    """Turns the node graph into plain data, recording Locs and collecting problems."""

    def __init__(self, doc: Document) -> None:
        self.doc, self.lines = doc, doc.text.splitlines()
        self.errors: list[Diagnostic] = []

    def loc(self, node: Node | _Alias) -> Loc:
        mark = node.mark if isinstance(node, _Alias) else node.start_mark
        style, length = "", 1
        if isinstance(node, ScalarNode):
            style = node.style or ""
            if style in ("|", ">"):
                length = 1
            elif node.end_mark.line == mark.line:
                length = max(1, node.end_mark.column - mark.column)
            elif mark.line < len(self.lines):
                length = max(1, len(self.lines[mark.line].rstrip()) - mark.column)
        elif isinstance(node, _Alias):
            length = len(node.anchor) + 1
        return Loc(self.doc.path, mark.line + 1, mark.column + 1, style, length)

    def error(self, node: Node | _Alias, message: str, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(message, self.loc(node), hint))

    def check_aliases(self, root: Node) -> None:
        """Stop documents whose aliases expand past MAX_EXPANDED_NODES, before building them."""
        sizes: dict[int, int] = {}  # expanded size of each node walked so far
        total = 0

        def walk(node: Node) -> int:
            # An anchor precedes its aliases, so a target is either walked or still open.
            nonlocal total
            total, n = total + 1, 1
            for child in _children(node):
                if not isinstance(child, _Alias):
                    n += walk(child)
                    continue
                if id(child.target) not in sizes:
                    self.error(child, f"alias '*{child.anchor}' refers to a node that contains "
                               "it; recursive structures are not allowed")
                    raise _StopError
                n, total = n + sizes[id(child.target)], total + sizes[id(child.target)]
                if total > MAX_EXPANDED_NODES:
                    self.error(child, f"alias '*{child.anchor}' expands the document beyond "
                               f"{MAX_EXPANDED_NODES} nodes", "write the values out instead of "
                               "nesting anchors and aliases")
                    raise _StopError
            sizes[id(node)] = n
            return n

        with contextlib.suppress(_StopError):
            walk(root)

    def build(self, node: Node | _Alias, path: KeyPath) -> Any:
        if isinstance(node, _Alias):
            # The value is the anchored node's, but a problem with it here is shown at the
            # alias (`*name`), not at the anchor, which may be in another step.
            value = self.build(node.target, path)
            at = self.loc(node)
            self.doc.locs[path] = Loc(at.file, at.line, at.col, ALIAS_STYLE, at.length)
            return value
        self.doc.locs[path] = self.loc(node)
        if node.tag not in (_PLAIN, _STR, _SEQ, _MAP):
            tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
            self.error(node, f"YAML tag '{tag}' is not supported",
                       "remove the tag; quote the value if it should be a string")
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path)
        return self.scalar(node) if isinstance(node, ScalarNode) else None

    def build_mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node)
            if key is None:
                continue
            if key in out:
                first = self.doc.key_locs[(*path, key)]
                self.error(key_node, f"duplicate key '{key}' (first at line {first.line}, "
                           f"col {first.col})", "remove one of them; YAML keeps only one")
                continue
            self.doc.key_locs[(*path, key)] = self.loc(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def key(self, node: Node | _Alias) -> str | None:
        target = node.target if isinstance(node, _Alias) else node
        if not isinstance(target, ScalarNode) or target.tag not in (_PLAIN, _STR):
            self.error(node, "a mapping key must be a plain string, not a list, mapping or tag")
        elif target.tag == _PLAIN and target.value == "<<":
            self.error(node, "merge keys ('<<') are not supported",
                       "write the keys out in each mapping")
        elif target.tag == _PLAIN and not isinstance(_resolve_plain(target.value), str):
            self.error(node, f"key {target.value!r} is not a string",
                       f'quote it ("{target.value}") if it is meant as a name')
        else:
            return str(target.value)
        return None

    def scalar(self, node: ScalarNode) -> Any:
        try:  # YAML's "\ud800" escape makes a lone surrogate, which no C string can hold
            node.value.encode("utf-8")
        except UnicodeEncodeError as e:
            self.error(node, f"a lone surrogate (\\u{ord(node.value[e.start]):04x}) is not "
                       "valid Unicode text", "write the character itself, or its \\U escape")
            return node.value.encode("utf-8", "replace").decode("utf-8")
        if node.tag != _PLAIN:
            return node.value
        fix = _YAML11_BOOLS.get(node.value.lower())
        if fix:
            self.error(node, f"'{node.value}' is a YAML 1.1 boolean; write {fix} for a boolean "
                       f'or quote it ("{node.value}") for a string')
        return _resolve_plain(node.value)


class _StopError(Exception):
    pass


class _TooDeepError(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("too deep")
        self.mark = mark


def _children(node: Node) -> list[Any]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _resolve_plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    for pattern, convert in _CORE:
        if pattern.fullmatch(text):
            return convert(text)
    return text
