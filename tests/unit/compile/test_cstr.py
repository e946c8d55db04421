"""Tests of the safe C text helpers (bpfrun.compile.cstr), including a real compile with gcc."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfrun.compile.cstr import BCC_RESERVED_PREFIXES, c_comment, c_identifier, c_string_literal

_OCTAL = "01234567"


def decode_c_literal(literal: str) -> bytes:
    """The bytes a C compiler makes of `literal`, accepting only the forms c_string_literal
    may emit: printable ASCII other than `"` `\\` `?`, the escapes \\\\ \\" \\?, and
    exactly-three-digit octal escapes. Anything else fails the test."""
    assert len(literal) >= 2 and literal[0] == '"' and literal[-1] == '"'
    body = literal[1:-1]
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            assert " " <= ch <= "~" and ch not in '"\\?', f"raw {ch!r} at {i}"
            out.append(ord(ch))
            i += 1
            continue
        assert i + 1 < len(body), "a backslash ends the literal"
        nxt = body[i + 1]
        if nxt in '\\"?':
            out.append(ord(nxt))
            i += 2
            continue
        digits = body[i + 1:i + 4]
        assert len(digits) == 3 and all(d in _OCTAL for d in digits), f"escape at {i}"
        value = int(digits, 8)
        assert value <= 0o377
        out.append(value)
        i += 4
    return bytes(out)


def test_examples() -> None:
    assert c_string_literal("comm") == '"comm"'
    assert c_string_literal('say "hi"') == '"say \\"hi\\""'
    assert c_string_literal("a\\b") == '"a\\\\b"'
    assert c_string_literal("??=") == '"\\?\\?="'
    assert c_string_literal("a\nb") == '"a\\012b"'
    assert c_string_literal("é") == '"\\303\\251"'
    assert c_string_literal(b"\x017") == '"\\0017"'  # octal stops after 3 digits
    assert c_string_literal(b"") == '""'


def test_lone_surrogates_are_rejected() -> None:
    with pytest.raises(ValueError):
        c_string_literal("\udc80")


@settings(max_examples=500)
@given(st.text())
def test_text_literal_decodes_to_its_utf8(value: str) -> None:
    literal = c_string_literal(value)
    assert "\n" not in literal and "\r" not in literal
    assert decode_c_literal(literal) == value.encode("utf-8")


@settings(max_examples=500)
@given(st.binary())
def test_bytes_literal_decodes_to_the_same_bytes(value: bytes) -> None:
    literal = c_string_literal(value)
    assert literal.isascii() and literal.isprintable()
    assert decode_c_literal(literal) == value
    # No unescaped quote can end the literal early.
    assert re.fullmatch(r'"(?:[^"\\]|\\.)*"', literal)


@settings(max_examples=300)
@given(st.text(), st.integers(10, 300))
def test_comment_text_is_inert(text: str, max_length: int) -> None:
    safe = c_comment(text, max_length)
    assert "*/" not in safe and "/*" not in safe
    assert all(" " <= ch <= "~" for ch in safe)
    assert len(safe) <= 2 * max_length


def test_comment_examples() -> None:
    assert c_comment("where: comm == \"x\"") == 'where: comm == "x"'
    assert c_comment("a */ int x; /* b") == "a * / int x; / * b"
    assert c_comment("line\nbreak\r\nµ") == "line break ?"
    assert c_comment("x" * 50, max_length=10) == "xxxxxxx..."


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@settings(max_examples=300)
@given(st.lists(st.text(max_size=12), max_size=4))
def test_identifier_is_always_valid(parts: list[str]) -> None:
    ident = c_identifier(*parts)
    assert _IDENT.fullmatch(ident)
    assert not ident.startswith(BCC_RESERVED_PREFIXES)


@pytest.mark.parametrize(("parts", "expected"), [
    (("runq", "dist"), "runq_dist"),
    (("slow-by", "args.next_comm"), "slow_by_args_next_comm"),
    (("9lives",), "bpfrun_9lives"),
    (("kprobe__vfs_read",), "bpfrun_kprobe__vfs_read"),
    (("tracepoint", "_sched__sched_switch"), "bpfrun_tracepoint__sched__sched_switch"),
    (("raw_tracepoint__", "x"), "bpfrun_raw_tracepoint___x"),
    (("syscall__openat",), "bpfrun_syscall__openat"),
    (("int",), "bpfrun_int"),
    ((), "bpfrun_"),
    (("", "a", ""), "a"),
    (("µs",), "_s"),
])
def test_identifier_examples(parts: tuple[str, ...], expected: str) -> None:
    assert c_identifier(*parts) == expected


_TRICKY: list[str | bytes] = [
    '"',
    "\\",
    "\\\\\"",
    "??=",
    "??/",
    "???????-",
    "line\nbreak\r\n",
    bytes(range(1, 256)),
    b"\x00embedded\x00nul",
    b"\x017\x0089",
    '"); system("x',
    "\"; } int evil(void) { return 1; } char *s = \"",
    "*/ /* // \\",
    "é€😀 µs",
    "\t\x7f\x1b[31m",
    "",
]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_gcc_compiles_literals_to_the_exact_bytes(tmp_path: Path) -> None:
    comment_texts = ["a */ int oops = ; /* b", "end with star *", "/", "x\n#include <nope.h>"]
    idents = [c_identifier("int"), c_identifier("9", "lives"), c_identifier("a-b.c"),
              c_identifier("kprobe__vfs_read"), c_identifier("")]
    lines = ["#include <stdio.h>"]
    lines += [f"/* {c_comment(text)} */" for text in comment_texts]
    lines += [f"static const char s{i}[] = {c_string_literal(v)};" for i, v in enumerate(_TRICKY)]
    lines.append("int main(void) {")
    lines += [f"    volatile int {ident} = {n}; (void){ident};" for n, ident in enumerate(idents)]
    lines += [f"    fwrite(s{i}, 1, sizeof(s{i}) - 1, stdout);" for i in range(len(_TRICKY))]
    lines += ["    return 0;", "}"]
    source = tmp_path / "lit.c"
    source.write_text("\n".join(lines) + "\n", encoding="ascii")
    binary = tmp_path / "lit"
    # -std=c99 turns trigraphs on, so an unescaped "??/" or "??=" would change the bytes.
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(binary),
                    str(source)], check=True, capture_output=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True).stdout
    expected = b"".join(v.encode("utf-8") if isinstance(v, str) else v for v in _TRICKY)
    assert out == expected
