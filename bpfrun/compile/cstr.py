"""Safe C text: string literals, comments and identifiers built from untrusted data.

Runbook values and strings read from the kernel (comm, file names) end up in generated BCC C.
These helpers are the only way such data enters C source: whatever the input, the output is
inert (a literal that compiles to exactly the input's bytes, a comment that cannot close
early, an identifier that cannot trigger BCC's auto-attach or collide with a C keyword).
"""

from __future__ import annotations

import re

# Escapes needed even among printable ASCII: the quote and backslash end or start escapes,
# and `?` could otherwise form a trigraph (`??/` is a backslash in C with -trigraphs).
_PRINTABLE_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("?"): "\\?"}


def c_string_literal(value: str | bytes) -> str:
    """A double-quoted C string literal that compiles to exactly the UTF-8 bytes of `value`.

    Every byte outside printable ASCII becomes a three-digit octal escape: unlike `\\xHH`,
    an octal escape stops after three digits, so a following digit cannot be swallowed.
    The result never contains a newline. A str with lone surrogates raises
    UnicodeEncodeError (a ValueError), since it has no UTF-8 bytes.
    """
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    out = ['"']
    for byte in data:
        if byte in _PRINTABLE_ESCAPES:
            out.append(_PRINTABLE_ESCAPES[byte])
        elif 0x20 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    out.append('"')
    return "".join(out)


def c_comment(text: str, max_length: int = 200) -> str:
    """`text` made safe to place between `/* ` and ` */`: one line of printable ASCII.

    Line breaks become spaces, other characters outside printable ASCII become `?`,
    `*/` and `/*` are broken up, and text longer than `max_length` is cut with "...".
    """
    flat = re.sub(r"[\r\n]+", " ", text)
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in flat)
    if len(safe) > max_length:
        safe = safe[: max(0, max_length - 3)] + "..."
    # One pass already suffices (the inserted space separates the pair); looping makes the
    # guarantee evident without having to argue it.
    while "*/" in safe or "/*" in safe:
        safe = safe.replace("*/", "* /").replace("/*", "/ *")
    return safe


# BCC attaches any function whose name starts with one of these to the probe the rest of the
# name spells, and rewrites `syscall__` functions; a generated name must never do that.
BCC_RESERVED_PREFIXES = ("kprobe__", "kretprobe__", "kfunc__", "kretfunc__", "lsm__",
                         "syscall__", "tracepoint__", "raw_tracepoint__", "kmod_ret__")

_C_KEYWORDS = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local", "asm",
    "typeof",
))

_PREFIX = "bpfrun_"


def c_identifier(*parts: str) -> str:
    """A C identifier made of `parts` joined by `_`, with other characters replaced by `_`.

    The result starts with a letter or `_`, is never a C keyword, and never starts with one of
    BCC's auto-attach prefixes (those cases get a `bpfrun_` prefix). Distinct inputs can give
    the same identifier ("a-b" and "a_b"): callers that need uniqueness must check for it.
    """
    joined = "_".join(part for part in parts if part)
    ident = re.sub(r"[^A-Za-z0-9_]", "_", joined)
    if (not ident or ident[0].isdigit() or ident in _C_KEYWORDS
            or ident.startswith(BCC_RESERVED_PREFIXES)):
        ident = _PREFIX + ident
    return ident


# clang merges a chain of 16 or more comparisons of adjacent bytes into a call to bcmp, which
# a BPF program cannot make: BCC then fails to load it ("Argument list too long"), e.g. for a
# 15-character name compared with comm (15 bytes and the terminator) or any longer string.
# An empty asm statement between groups of 8 keeps the chain apart and costs nothing.
_CHAIN_GROUP = 8
_CHAIN_BARRIER = ' && ({ asm volatile(""); 1; }) && '


def byte_chain(checks: list[str]) -> str:
    """`checks` joined with &&, in groups clang cannot merge into a library call."""
    return _CHAIN_BARRIER.join(" && ".join(checks[i:i + _CHAIN_GROUP])
                               for i in range(0, len(checks), _CHAIN_GROUP))
