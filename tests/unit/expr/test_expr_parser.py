"""Tests of the expression lexer/parser and `${{ }}` templates (bpfrun.expr.parser)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfrun.expr.nodes import (
    Attr,
    Binary,
    Call,
    In,
    Index,
    Literal,
    Name,
    Node,
    Unary,
    unparse,
)
from bpfrun.expr.parser import ExprSyntaxError, TemplateExpr, parse, parse_template, walk


def strip(node: Node) -> Node:
    """The node with every offset and length zeroed, recursively, for comparing shapes."""
    changes: dict[str, Any] = {"offset": 0, "length": 0}
    for field in dataclasses.fields(node):
        value = getattr(node, field.name)
        if isinstance(value, Node):
            changes[field.name] = strip(value)
        elif isinstance(value, tuple):
            changes[field.name] = tuple(strip(v) for v in value)
    return dataclasses.replace(node, **changes)


def shape(text: str) -> Node:
    return strip(parse(text))


def N(name: str) -> Name:  # noqa: N802 - short constructors keep the expected trees readable
    return Name(0, 0, name)


def I(value: int) -> Literal:  # noqa: N802, E743
    return Literal(0, 0, value, "int")


def B(op: str, left: Node, right: Node) -> Binary:  # noqa: N802
    return Binary(0, 0, op, left, right)


def span(text: str, node: Node) -> str:
    return text[node.offset:node.offset + node.length]


# --- precedence and shapes ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("a || b && c", B("||", N("a"), B("&&", N("b"), N("c")))),
    ("a && b || c", B("||", B("&&", N("a"), N("b")), N("c"))),
    ("a == b && c < d", B("&&", B("==", N("a"), N("b")), B("<", N("c"), N("d")))),
    ("!x == y", B("==", Unary(0, 0, "!", N("x")), N("y"))),
    ("-1", Unary(0, 0, "-", I(1))),
    ("--x", Unary(0, 0, "-", Unary(0, 0, "-", N("x")))),
    ("a - b - c", B("-", B("-", N("a"), N("b")), N("c"))),
    ("a + b * c", B("+", N("a"), B("*", N("b"), N("c")))),
    ("(a + b) * c", B("*", B("+", N("a"), N("b")), N("c"))),
    ("a | b ^ c & d", B("|", N("a"), B("^", N("b"), B("&", N("c"), N("d"))))),
    ("a & b == c", B("&", N("a"), B("==", N("b"), N("c")))),
    ("a << 2 < b", B("<", B("<<", N("a"), I(2)), N("b"))),
    ("a + 1 >> 2", B(">>", B("+", N("a"), I(1)), I(2))),
    ("a % 2 != 0", B("!=", B("%", N("a"), I(2)), I(0))),
    ("a.b[0].c", Attr(0, 0, Index(0, 0, Attr(0, 0, N("a"), "b"), I(0)), "c")),
    ("f(x, y)", Call(0, 0, "f", (N("x"), N("y")))),
    ("f()", Call(0, 0, "f", ())),
    ("str(args.filename)", Call(0, 0, "str", (Attr(0, 0, N("args"), "filename"),))),
    ("x in [1, 2]", In(0, 0, N("x"), (I(1), I(2)))),
    ("x in [1, 2,]", In(0, 0, N("x"), (I(1), I(2)))),
    ("a + 1 in [2] && b", B("&&", In(0, 0, B("+", N("a"), I(1)), (I(2),)), N("b"))),
    ("-x.y", Unary(0, 0, "-", Attr(0, 0, N("x"), "y"))),
    ("begin.kstack", Attr(0, 0, N("begin"), "kstack")),
    ("x.in", Attr(0, 0, N("x"), "in")),
    ("true != false", B("!=", Literal(0, 0, True, "bool"), Literal(0, 0, False, "bool"))),
    ("x == null", B("==", N("x"), Literal(0, 0, None, "null"))),
    ("1.foo", Attr(0, 0, I(1), "foo")),
])
def test_shapes(text: str, expected: Node) -> None:
    assert shape(text) == expected


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("1ms", "duration", 1_000_000),
    ("250us", "duration", 250_000),
    ("250µs", "duration", 250_000),
    ("250μs", "duration", 250_000),  # Greek mu, as phones and some keyboards type it
    ("1.5s", "duration", 1_500_000_000),
    ("2m", "duration", 120_000_000_000),
    ("1h", "duration", 3_600_000_000_000),
    ("7ns", "duration", 7),
    ("0.1s", "duration", 100_000_000),
    ("1_000ms", "duration", 1_000_000_000),
    ("4KiB", "size", 4096),
    ("1MB", "size", 1_000_000),
    ("2GiB", "size", 2 * 1024**3),
    ("512B", "size", 512),
    ("1.5KiB", "size", 1536),
    ("42", "int", 42),
    ("0", "int", 0),
    ("1_000_000", "int", 1_000_000),
    ("0x1F", "int", 31),
    ("0XfF_fF", "int", 0xFFFF),
    ("0xffB", "int", 0xFFB),  # hex digits, not a size: hex has no units
    ("99999999999999999999999", "int", 99999999999999999999999),
])
def test_number_literals(text: str, kind: str, value: int) -> None:
    node = parse(text)
    assert node == Literal(0, len(text), value, kind)
    assert isinstance(node.value, int)


@pytest.mark.parametrize(("text", "value"), [
    ('""', ""),
    ('"bpfrun"', "bpfrun"),
    (r'"say \"hi\""', 'say "hi"'),
    (r'"a\\b"', "a\\b"),
    (r'"\n\t\0"', "\n\t\0"),
    (r'"\x41\x7f"', "A\x7f"),
    ('"µs ünïcode"', "µs ünïcode"),
    ('"}}"', "}}"),
])
def test_string_literals(text: str, value: str) -> None:
    assert parse(text) == Literal(0, len(text), value, "str")


def test_whitespace_and_newlines_are_ignored() -> None:
    assert shape("a\n  &&\tb") == B("&&", N("a"), N("b"))


# --- offsets -----------------------------------------------------------------------------


def test_offsets_of_binary_and_children() -> None:
    text = "pid == 42 && comm != \"x\""
    root = parse(text)
    assert isinstance(root, Binary)
    assert (root.offset, root.length) == (0, len(text))
    left, right = root.left, root.right
    assert isinstance(left, Binary) and isinstance(right, Binary)
    assert span(text, left) == "pid == 42"
    assert span(text, left.right) == "42"
    assert span(text, right) == 'comm != "x"'
    assert span(text, right.right) == '"x"'
    assert (right.offset, right.length) == (13, 11)


def test_offsets_of_postfix_call_unary_in() -> None:
    text = "  !f(a.b[i + 1], -x) in [1, 2ms]  "
    root = parse(text)
    assert isinstance(root, In)
    assert span(text, root) == "!f(a.b[i + 1], -x) in [1, 2ms]"
    unary = root.item
    assert isinstance(unary, Unary) and span(text, unary) == "!f(a.b[i + 1], -x)"
    call = unary.operand
    assert isinstance(call, Call) and span(text, call) == "f(a.b[i + 1], -x)"
    index, neg = call.args
    assert isinstance(index, Index) and span(text, index) == "a.b[i + 1]"
    assert span(text, index.obj) == "a.b"
    assert span(text, index.index) == "i + 1"
    assert span(text, neg) == "-x"
    assert [span(text, o) for o in root.options] == ["1", "2ms"]


def test_parentheses_widen_the_span_of_the_inner_node() -> None:
    text = "(a + b) * c"
    root = parse(text)
    assert isinstance(root, Binary)
    assert span(text, root.left) == "(a + b)"
    assert span(text, root) == text


def test_walk_is_preorder_in_source_order() -> None:
    text = "a.b + f(c, -d) in [e]"
    names = [unparse(n) for n in walk(parse(text))]
    assert names == ["(a.b + f(c, -d)) in [e]", "(a.b + f(c, -d))", "a.b", "a",
                     "f(c, -d)", "c", "-d", "d", "e"]


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "offset", "length", "message"), [
    ("", 0, 1, "empty expression"),
    ("   ", 0, 1, "empty expression"),
    ("a and b", 2, 3, "use &&"),
    ("a or b", 2, 2, "use ||"),
    ("f(a or b)", 4, 2, "use ||"),
    ("(a and b)", 3, 3, "use &&"),
    ("not x", 0, 3, "use !"),
    ("a = b", 2, 1, "use =="),
    ("comm == 'x'", 8, 1, "double quotes"),
    ("5x", 1, 1, "unknown unit 'x'"),
    ("x > 5 ms", 4, 4, "write 5ms without a space"),
    ("1.5", 0, 3, "needs a unit"),
    ("1.5B", 0, 4, "whole number of bytes"),
    ("007", 0, 3, "cannot start with 0"),
    ("1__0", 0, 4, "underscores go between digits"),
    ("1_", 0, 2, "underscores go between digits"),
    ("0x", 0, 2, "needs hex digits"),
    ("0x1g", 3, 1, "'g' is not a hex digit"),
    ('x == "abc', 5, 4, "unterminated string"),
    ('"ab\ncd"', 0, 3, "unterminated string"),
    (r'"a\qb"', 2, 2, "unknown escape '\\q'"),
    (r'"\x4"', 1, 3, "two hex digits"),
    (r'"\xff"', 1, 4, "up to \\x7f"),
    ("(a + b", 6, 1, "expected ')'"),
    ("f(a, b", 6, 1, "expected ',' or ')'"),
    ("f(a b)", 4, 1, "expected ',' or ')'"),
    ("a[1", 3, 1, "expected ']'"),
    ("x in [1, 2", 10, 1, "expected ',' or ']'"),
    ("x in 1", 5, 1, "needs a list in brackets"),
    ("x in []", 6, 1, "empty list"),
    ("in [1]", 0, 2, "needs a value before it"),
    ("a foo", 2, 3, "unexpected 'foo' after the end of the expression"),
    ("a )", 2, 1, "unmatched ')'"),
    ("a &&", 4, 1, "expected a value after '&&'"),
    ("a &&  \n ", 4, 1, "expected a value after '&&'"),
    ("a && || b", 5, 2, "unexpected '||' after '&&'"),
    ("* 2", 0, 1, "unexpected '*'"),
    ("a < b < c", 6, 1, "comparisons do not chain"),
    ("a == b != c", 7, 2, "comparisons do not chain"),
    ("a.b(1)", 3, 1, "only a function name can be called"),
    ("a.1", 2, 1, "expected a field name"),
    ("$x", 0, 1, "unexpected character '$'"),
    ("${{ x }}", 0, 1, "unexpected character '$'"),
    ("{x}", 0, 1, "only for templates"),
    ("~x", 0, 1, "'~' is not supported"),
    ("a @ b", 2, 1, "unexpected character '@'"),
    ("(" * 40 + "a" + ")" * 40, 32, 1, "nested too deeply"),
    ("+".join(["a"] * 300), 0, 599, "too deep"),
])
def test_errors(text: str, offset: int, length: int, message: str) -> None:
    with pytest.raises(ExprSyntaxError) as info:
        parse(text)
    err = info.value
    assert message in err.message
    assert (err.offset, err.length) == (offset, length)
    assert str(err) == err.message


def test_parenthesised_comparisons_may_be_combined() -> None:
    assert shape("(a < b) == (c < d)") == B("==", B("<", N("a"), N("b")), B("<", N("c"), N("d")))


# --- templates ---------------------------------------------------------------------------


def test_template_with_two_expressions() -> None:
    text = "p99 is ${{ dist.p99 }} (limit ${{params.threshold}})"
    pieces = parse_template(text)
    assert len(pieces) == 5
    assert pieces[0] == "p99 is " and pieces[2] == " (limit " and pieces[4] == ")"
    first, second = pieces[1], pieces[3]
    assert isinstance(first, TemplateExpr) and isinstance(second, TemplateExpr)
    assert (first.text, first.offset) == ("dist.p99", 11)
    assert (second.text, second.offset) == ("params.threshold", 33)
    # Node offsets are relative to the whole template string.
    assert span(text, first.node) == "dist.p99"
    assert span(text, second.node) == "params.threshold"
    assert isinstance(second.node, Attr) and span(text, second.node.obj) == "params"
    assert strip(first.node) == Attr(0, 0, N("dist"), "p99")


def test_template_edge_cases() -> None:
    assert parse_template("") == [""]
    assert parse_template("no expressions, $$ and {{ }} }}") == ["no expressions, $$ and {{ }} }}"]
    only = parse_template("${{ params.duration }}")
    assert len(only) == 1 and isinstance(only[0], TemplateExpr)
    assert only[0].text == "params.duration" and only[0].offset == 4
    # A "}}" inside a string literal does not end the expression.
    pieces = parse_template('x ${{ f("}}") }} y')
    assert pieces[0] == "x " and pieces[2] == " y"
    assert isinstance(pieces[1], TemplateExpr) and pieces[1].text == 'f("}}")'
    assert strip(pieces[1].node) == Call(0, 0, "f", (Literal(0, 0, "}}", "str"),))
    adjacent = parse_template("${{a}}${{b}}")
    assert [p.text for p in adjacent if isinstance(p, TemplateExpr)] == ["a", "b"]
    assert len(adjacent) == 2


@pytest.mark.parametrize(("text", "offset", "length", "message"), [
    ("limit ${{ params.x", 6, 3, "unterminated '${{'"),
    ("a ${{  }} b", 2, 7, "empty '${{ }}'"),
    ("ok ${{ a }} then ${{ a b }}", 23, 1, "unexpected 'b'"),
    ('${{ "abc }}', 4, 4, "unterminated string"),
    ("${{ a = 1 }}", 6, 1, "use =="),
    ("${{ ${{ a }} }}", 4, 1, "unexpected character '$'"),
])
def test_template_errors(text: str, offset: int, length: int, message: str) -> None:
    with pytest.raises(ExprSyntaxError) as info:
        parse_template(text)
    assert message in info.value.message
    assert (info.value.offset, info.value.length) == (offset, length)


# --- properties --------------------------------------------------------------------------

_RESERVED = {"true", "false", "null", "in", "and", "or", "not"}
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
names = identifiers.filter(lambda s: s not in _RESERVED)
field_names = identifiers  # keywords are fine after '.'

literals = st.one_of(
    st.integers(0, 2**64).map(lambda v: Literal(0, 0, v, "int")),
    st.integers(0, 10**15).map(lambda v: Literal(0, 0, v, "duration")),
    st.integers(0, 2**40).map(lambda v: Literal(0, 0, v, "size")),
    st.booleans().map(lambda v: Literal(0, 0, v, "bool")),
    st.just(Literal(0, 0, None, "null")),
    # nodes.unparse writes other characters raw, and a raw line break ends a string.
    st.text(st.characters(exclude_characters="\r\n", codec="utf-8"),
            max_size=8).map(lambda v: Literal(0, 0, v, "str")),
)
_LOW_OPS = ["==", "!=", "&", "^", "|", "&&", "||"]  # below the comparison level of `in`
_HIGH_OPS = ["<", "<=", ">", ">=", "<<", ">>", "+", "-", "*", "/", "%"]


def _trees() -> st.SearchStrategy[Node]:
    """Random ASTs, restricted to those nodes.unparse writes unambiguously.

    unparse parenthesises Binary but not Unary or In, so a Unary or In may not be the object
    of a postfix, an In may not be a Unary's operand or an In's item (`in` does not chain),
    and an In may only be the operand of operators that bind less tightly than `in`.
    """
    anything = st.deferred(lambda: st.one_of(unary_safe, in_nodes))
    binaries = st.one_of(
        st.builds(lambda op, lhs, rhs: Binary(0, 0, op, lhs, rhs),
                  st.sampled_from(_LOW_OPS), anything, anything),
        st.builds(lambda op, lhs, rhs: Binary(0, 0, op, lhs, rhs),
                  st.sampled_from(_HIGH_OPS), st.deferred(lambda: unary_safe),
                  st.deferred(lambda: unary_safe)),
    )
    postfix_safe: st.SearchStrategy[Node] = st.deferred(lambda: st.one_of(
        literals,
        names.map(lambda n: Name(0, 0, n)),
        st.builds(lambda o, n: Attr(0, 0, o, n), postfix_safe, field_names),
        st.builds(lambda o, i: Index(0, 0, o, i), postfix_safe, anything),
        st.builds(lambda f, a: Call(0, 0, f, tuple(a)), names,
                  st.lists(anything, max_size=3)),
        binaries,
    ))
    unary_safe = st.one_of(
        postfix_safe,
        st.builds(lambda op, o: Unary(0, 0, op, o), st.sampled_from(["!", "-"]),
                  st.deferred(lambda: unary_safe)),
    )
    in_nodes = st.builds(lambda i, o: In(0, 0, i, tuple(o)), unary_safe,
                         st.lists(anything, min_size=1, max_size=3))
    return anything


trees = _trees()


@settings(max_examples=400, deadline=None)
@given(trees)
def test_parse_unparse_round_trip(tree: Node) -> None:
    text = unparse(tree)
    parsed = parse(text)
    assert strip(parsed) == tree
    # Every node's span is exactly the text of that sub-expression.
    assert (parsed.offset, parsed.length) == (0, len(text))
    for node in walk(parsed):
        assert strip(parse(span(text, node))) == strip(node)


@settings(max_examples=300, deadline=None)
@given(trees, st.text(" \t\n", max_size=2), st.text(" ", max_size=2))
def test_round_trip_inside_a_template(tree: Node, pad_left: str, pad_right: str) -> None:
    expr_text = unparse(tree)
    text = "a ${{" + pad_left + expr_text + pad_right + "}} b"
    pieces = parse_template(text)
    assert pieces[0] == "a " and pieces[-1] == " b" and len(pieces) == 3
    piece = pieces[1]
    assert isinstance(piece, TemplateExpr)
    assert piece.text == expr_text.strip(" \t\r\n")
    assert text[piece.offset:piece.offset + len(piece.text)] == piece.text
    assert strip(piece.node) == strip(parse(piece.text))
    assert span(text, piece.node) == piece.text


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_parse_only_raises_syntax_errors(text: str) -> None:
    try:
        parse(text)
    except ExprSyntaxError as err:
        assert 0 <= err.offset <= len(text) and err.length >= 1 and err.message


_GRAMMAR_ALPHABET = 'ab01x.()[], "\\!-+*/%<=>&|^ inmsuKiB_µ${}\''


@settings(max_examples=1000, deadline=None)
@given(st.text(_GRAMMAR_ALPHABET, max_size=30))
def test_grammar_soup_only_raises_syntax_errors(text: str) -> None:
    for attempt in (parse, parse_template):
        try:
            attempt(text)
        except ExprSyntaxError as err:
            assert 0 <= err.offset <= len(text) and err.length >= 1 and err.message
